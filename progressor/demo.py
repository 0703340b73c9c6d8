"""`make demo`: a synthetic clinic on the seed program, everyone's next week in a table."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from importlib import resources
from pathlib import Path

from progressor.engine import Engine
from progressor.loading import load_program, parse_program
from progressor.models import Program
from progressor.report import table
from progressor.synth import synthesize_clinic

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
    engine: Engine, program_path: Path | None, patients: int, weeks: int, seed: int
) -> str:
    program = load_program(program_path) if program_path else seed_program()
    compiled = engine.compile(program)
    clinic = synthesize_clinic(compiled, patients, weeks, seed)
    header = ["patient", "profile", "status", *(e.id for e in program.exercises), "flags"]
    rows, actions, statuses = [], Counter[str](), Counter[str]()
    for patient in clinic:
        until = patient.enrollment.start + dt.timedelta(days=7 * weeks)
        results = compiled.replay(patient.enrollment, patient.records, until=until)
        last = results[-1]
        flags = sorted({f.code for r in results for f in r.prescription.flags})
        cells = [f"{MARK[d.action]} {d.dose_after.describe()}" for d in last.decisions]
        actions.update(d.action for d in last.decisions)
        statuses[last.prescription.status] += 1
        rows.append(
            [
                patient.enrollment.patient,
                patient.archetype,
                last.prescription.status,
                *cells,
                ", ".join(flags) or "-",
            ]
        )
    summary = (
        f"{patients} patients on {program.id} {program.version}, {weeks} weeks logged; "
        f"next week is week {weeks + 1}.\n"
        f"decisions: " + ", ".join(f"{a} {actions[a]}" for a in MARK) + "; "
        f"patients paused: {statuses['paused']}\n"
        "legend: + progress, = hold, - step back, || paused (a clinician must resume)"
    )
    return f"{table(header, rows)}\n\n{summary}"
