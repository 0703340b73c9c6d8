"""Synthetic patients for the demo, the tests and the benchmarks.

Each patient follows an archetype (steady, struggling, flare, new pain, drop-out, forgetful)
and, week by week, logs what that archetype would do with the dose the engine prescribed.
Seeded per patient, so the same seed always gives the same clinic.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from progressor.core.engine import CompiledProgram
from progressor.core.models import Dose, Enrollment, Outcome, PainReport, Prescription, Record
from progressor.core.rounding import round_whole
from progressor.dataset.run import DatasetWriter
from progressor.store.database import Store

#: Adherence from excellent to drop-out; pain that improves, plateaus or flares.
ARCHETYPES = (
    "excellent",
    "steady",
    "steady",
    "improving",
    "plateau",
    "struggling",
    "flare",
    "new-pain",
    "adverse-event",
    "drop-out",
    "forgetful",
)
SESSIONS_PER_WEEK = {
    "excellent": (6, 7),
    "steady": (4, 6),
    "improving": (4, 6),
    "struggling": (1, 3),
    "forgetful": (3, 6),
}
DEFAULT_START = dt.date(2026, 1, 5)


def start_ending_by(day: dt.date, weeks: int) -> dt.date:
    """The first day of `weeks` synthetic weeks that end by `day`: a recompute as of `day`
    then judges those weeks, not months of empty ones since a fixed start."""
    return day - dt.timedelta(days=7 * weeks)


@dataclass(frozen=True)
class SyntheticPatient:
    enrollment: Enrollment
    archetype: str
    records: tuple[Record, ...]


def _performed(dose: Dose, rng: random.Random, short: bool) -> dict[str, object]:
    sets = dose.sets or 1
    reps = dose.reps or 0
    done: dict[str, object] = {}
    if dose.reps is not None:
        last = reps - 1 if short else reps + rng.choice((0, 0, 1, 2, 3))
        done["reps"] = [reps] * (sets - 1) + [max(last, 0)]
    if dose.hold_s is not None:
        done["hold_s"] = dose.hold_s - (2 if short else 0)
    if dose.duration_s is not None:
        scale = 0.8 if short else rng.uniform(1.0, 1.6)
        done["duration_s"] = [round_whole(dose.duration_s * scale)] * sets
    if dose.load_kg is not None:
        done["load_kg"] = dose.load_kg
    return done


def _week(
    prescription: Prescription, archetype: str, rng: random.Random, baseline: float
) -> list[Record]:
    week = prescription.week
    if archetype == "drop-out" and week > 2:
        return []
    if archetype == "improving":  # pain settles by about half a point a week
        baseline = max(0.0, baseline - 0.5 * (week - 1))
    days = SESSIONS_PER_WEEK.get(archetype, (3, 6))
    session_days = sorted(rng.sample(range(7), rng.randint(*days)))
    events = _Events.of(archetype, week, session_days)
    records: list[Record] = []
    for day in session_days:
        date = prescription.start + dt.timedelta(days=day)
        records += _session(prescription, events.on(day, date), archetype, rng, baseline)
        if day == events.flare:
            records.append(
                PainReport(
                    date=date, pain=8, context="flare", note="back locked up after gardening"
                )
            )
    return records


@dataclass(frozen=True)
class _Day:
    """One session day, and the archetype's events on it."""

    date: dt.date
    new_pain: bool  # pain during the exercises rises by 2
    adverse: bool  # the day's first exercise logs an adverse event


@dataclass(frozen=True)
class _Events:
    """The day (0-6) of the week on which each of an archetype's events happens, or None."""

    adverse: int | None
    flare: int | None
    new_pain: int | None

    @classmethod
    def of(cls, archetype: str, week: int, session_days: Sequence[int]) -> _Events:
        first = session_days[0] if session_days else None
        last = session_days[-1] if session_days else None
        return cls(
            adverse=first if archetype == "adverse-event" and week == 2 else None,
            flare=last if archetype == "flare" and week == 3 else None,
            new_pain=first if archetype == "new-pain" and week == 2 else None,
        )

    def on(self, day: int, date: dt.date) -> _Day:
        return _Day(date, new_pain=day == self.new_pain, adverse=day == self.adverse)


def _session(
    prescription: Prescription, day: _Day, archetype: str, rng: random.Random, baseline: float
) -> list[Record]:
    """One day's outcomes: each exercise not paused, done as the archetype would do it."""
    records: list[Record] = []
    adverse = day.adverse
    for name, state in prescription.exercises.items():
        if state.status == "paused":
            continue
        scores, short = _scores(archetype, rng, baseline, day.new_pain)
        extra: dict[str, object] = {"rpe": rng.choice((3, 4, 5, 6, 7))}
        if adverse:
            extra.update(adverse_event=True, note="felt dizzy and had to lie down")
            adverse = False
        performed = _performed(state.dose, rng, short)
        records.append(
            Outcome.model_validate(
                {"date": day.date, "exercise": name, **performed, **scores, **extra}
            )
        )
    return records


def _scores(
    archetype: str, rng: random.Random, baseline: float, new_pain: bool
) -> tuple[dict[str, object], bool]:
    """One outcome's pain scores (none when a forgetful patient forgot them), and whether
    the exercise was done short of the dose."""
    before = max(0.0, min(10.0, round_whole(baseline + rng.choice((-1, 0, 0, 1)))))
    during = max(0.0, before - rng.choice((0, 0, 1)))
    if new_pain:
        during = min(10.0, before + 2)
    short = archetype == "struggling" and rng.random() < 0.5
    if archetype == "forgetful" and rng.random() < 0.3:
        return {}, short
    return {"pain_before": before, "pain_during": during, "pain_after": during}, short


def synthesize_patient(
    compiled: CompiledProgram, patient: str, weeks: int, seed: int, start: dt.date = DEFAULT_START
) -> SyntheticPatient:
    """One patient's `weeks` weeks of logs, each week logged against the prescribed dose."""
    rng = random.Random(f"{seed}:{patient}")
    archetype = rng.choice(ARCHETYPES)
    baseline = rng.uniform(0.5, 3.5)
    enrollment = Enrollment(patient=patient, program=compiled.program.id, start=start)
    prescription = compiled.first_week(enrollment)
    records: list[Record] = []
    for _ in range(weeks):
        week = _week(prescription, archetype, rng, baseline)
        records.extend(week)
        prescription = compiled.step(prescription, week).prescription
    return SyntheticPatient(enrollment, archetype, tuple(records))


def synthesize_clinic(
    compiled: CompiledProgram, patients: int, weeks: int, seed: int, start: dt.date = DEFAULT_START
) -> list[SyntheticPatient]:
    """`patients` synthetic patients on one program, named p0001, p0002, ..."""
    width = max(4, len(str(patients)))
    return [
        synthesize_patient(compiled, f"p{n:0{width}d}", weeks, seed, start)
        for n in range(1, patients + 1)
    ]


def synthesize_dataset(
    location: str,
    programs: Sequence[tuple[CompiledProgram, str]],
    patients: int,
    weeks: int,
    seed: int,
    partitions: int,
    start: dt.date = DEFAULT_START,
    prefix: str = "",
    fmt: str = "jsonl",
) -> None:
    """A partitioned dataset of `patients` patients spread over `programs` (program, TOML).

    Patients are named PREFIX + p0001, p0002, ... `fmt` "parquet" writes Parquet partitions
    (progressor.dataset.parquet.to_parquet of the JSONL ones, made in a temporary folder).
    """
    if fmt == "parquet":
        import tempfile

        from progressor.dataset.parquet import to_parquet

        with tempfile.TemporaryDirectory(prefix="progressor-synth-") as staging:
            synthesize_dataset(staging, programs, patients, weeks, seed, partitions, start, prefix)
            to_parquet(staging, location)
        return
    writer = DatasetWriter(location, partitions)
    try:
        for compiled, text in programs:
            writer.program(compiled.program.id, text)
        width = max(4, len(str(patients)))
        for n in range(1, patients + 1):
            compiled = programs[n % len(programs)][0]
            name = f"{prefix}p{n:0{width}d}"
            patient = synthesize_patient(compiled, name, weeks, seed, start)
            writer.patient(patient.enrollment, patient.records)
    finally:
        writer.close()


def synthesize_into_store(
    store: Store,
    programs: Sequence[tuple[CompiledProgram, str]],
    patients: int,
    weeks: int,
    seed: int,
    start: dt.date = DEFAULT_START,
) -> str:
    """Enroll `patients` synthetic patients in the store and import their logs."""
    width = max(4, len(str(patients)))
    cohorts: dict[int, list[SyntheticPatient]] = {}
    for n in range(1, patients + 1):
        index = n % len(programs)
        patient = synthesize_patient(programs[index][0], f"p{n:0{width}d}", weeks, seed, start)
        cohorts.setdefault(index, []).append(patient)
    lines: list[str] = []
    for index, cohort in sorted(cohorts.items()):
        compiled, text = programs[index]
        store.add_program(compiled.program, text)
        store.enroll_many((p.enrollment for p in cohort), compiled.program)
        for patient in cohort:
            lines.extend(log_line(patient.enrollment.patient, r) for r in patient.records)
    # The synthetic clinic's today is the end of its weeks: none of its records is from the
    # future, whatever the machine's date (a recent --start and several weeks, say).
    end = start + dt.timedelta(days=7 * weeks)
    report = store.import_records(lines, source=f"synth:seed={seed}", today=end)
    return f"{report.added} records added, {report.duplicates} already stored"


def log_line(patient: str, record: Record) -> str:
    """One record as a JSONL line of a clinic's log (with its patient)."""
    data = record.model_dump(mode="json", exclude_defaults=True)
    return json.dumps({"kind": record.kind, "patient": patient, **data}, separators=(",", ":"))
