"""`make demo`: a synthetic clinic on the seed program, everyone's next week in a table."""

from __future__ import annotations

import datetime as dt
import tempfile
from importlib import resources
from pathlib import Path

from progressor.core.engine import Engine
from progressor.core.models import Program
from progressor.reading import load_program, parse_program
from progressor.report import table
from progressor.store.batch import recompute
from progressor.store.database import Store
from progressor.synth import DEFAULT_START, SyntheticPatient, log_line, synthesize_clinic

SEED_PROGRAM = "low-back-pain.toml"
MARK = {"progress": "+", "hold": "=", "regress": "-", "pause": "||"}


#: Shipped programs that need no plugin: the synthetic cohorts use these.
SHIPPED = ("low-back-pain", "achilles-tendinopathy", "graded-walking")


def shipped_text(name: str) -> str:
    """The TOML text of a program shipped inside the package (programs/NAME.toml)."""
    return resources.files("progressor").joinpath("programs", f"{name}.toml").read_text("utf-8")


def seed_program() -> Program:
    """The embedded low back pain program (programs/low-back-pain.toml)."""
    return parse_program(shipped_text("low-back-pain"), f"programs/{SEED_PROGRAM}")


def run_demo(
    engine: Engine,
    program_path: Path | None,
    patients: int,
    weeks: int,
    seed: int,
    store_path: Path | None = None,
) -> str:
    """A synthetic clinic through the whole clinic path: store, import, recompute, report."""
    program = load_program(program_path) if program_path else seed_program()
    text = program_path.read_text("utf-8") if program_path else shipped_text("low-back-pain")
    compiled = engine.compile(program)
    clinic = synthesize_clinic(compiled, patients, weeks, seed)
    as_of = DEFAULT_START + dt.timedelta(days=7 * weeks)
    with tempfile.TemporaryDirectory(prefix="progressor-demo-") as scratch:
        path = store_path or Path(scratch) / "clinic.db"
        with Store.init(path) as store:
            store.add_program(program, text)
            store.enroll_many((p.enrollment for p in clinic), program)
            lines = [log_line(p.enrollment.patient, r) for p in clinic for r in p.records]
            imported = store.import_records(lines, source="demo", today=as_of)
        summary = recompute(path, as_of=as_of, engine_factory=lambda: engine, workers=1)
        with Store.open(path) as store:
            rows, flagged = _rows(store, clinic, program)
    header = ["patient", "profile", "status", *(e.id for e in program.exercises), "flags"]
    counts = ", ".join(f"{a} {summary.actions.get(a, 0)}" for a in MARK)
    paused = sum(1 for row in rows if row[2] == "paused")
    footer = (
        f"{patients} patients on {program.id} {program.version}: {imported.added} records "
        f"imported into {'the store ' + str(store_path) if store_path else 'a scratch store'}, "
        f"{weeks} weeks recomputed; next week is week {weeks + 1}.\n"
        f"week {weeks}'s decisions: {counts}; patients paused now: {paused}; "
        f"flagged in any week: {flagged}; alerts in week {weeks}: {summary.alerts}\n"
        "legend: + progress, = hold, - step back, || paused (a clinician must resume)"
    )
    return f"{table(header, rows)}\n\n{footer}"


def _rows(
    store: Store, clinic: list[SyntheticPatient], program: Program
) -> tuple[list[list[str]], int]:
    rows, flagged = [], 0
    for patient in clinic:
        name = patient.enrollment.patient
        history = store.prescriptions(name)
        latest = history[-1]
        decisions = {d.exercise: d for _, d in store.decisions(name, latest.week - 1)}
        flags = sorted({f.code for p in history for f in p.flags})
        flagged += bool(flags)
        cells = []
        for exercise in program.exercises:
            decision = decisions[exercise.id]
            cells.append(f"{MARK[decision.action]} {decision.dose_after.describe()}")
        rows.append([name, patient.archetype, latest.status, *cells, ", ".join(flags) or "-"])
    return rows, flagged
