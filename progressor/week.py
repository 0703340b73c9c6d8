"""One patient's week as the rules see it: records sorted, checked and grouped once.

The engine builds a WeekView per patient and week; strategies and safety rules only read it.
Records are put in a canonical order first, so that results never depend on the order in
which records arrived.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean

from progressor.models import (
    Dose,
    Exercise,
    History,
    Outcome,
    PainReport,
    Prescription,
    Record,
    Scalar,
    SetAside,
)

SessionMet = Callable[[Dose, Sequence[Outcome]], bool]


@dataclass(frozen=True)
class Session:
    """One exercise's outcomes on one day."""

    date: dt.date
    outcomes: tuple[Outcome, ...]
    scored: bool
    met: bool

    @property
    def done(self) -> bool:
        """Logged and not (only) skipped."""
        return any(not o.skipped for o in self.outcomes)


@dataclass(frozen=True)
class ExerciseWeek:
    """One exercise's week: its dose, its strategy's memory and its sessions."""

    exercise: Exercise
    dose: Dose
    memory: Mapping[str, Scalar]
    sessions: tuple[Session, ...]
    sessions_required: int

    @property
    def outcomes(self) -> tuple[Outcome, ...]:
        return tuple(o for s in self.sessions for o in s.outcomes)

    @property
    def met_sessions(self) -> int:
        return sum(1 for s in self.sessions if s.met)

    @property
    def done_sessions(self) -> int:
        return sum(1 for s in self.sessions if s.done)

    @property
    def met(self) -> bool:
        """The full dose was done in enough sessions that carry pain scores."""
        return self.met_sessions >= self.sessions_required


@dataclass(frozen=True)
class WeekView:
    """Everything known about one patient's week, in canonical order."""

    prescription: Prescription
    exercises: Mapping[str, ExerciseWeek]
    outcomes: tuple[Outcome, ...]
    pain_reports: tuple[PainReport, ...]
    set_aside: tuple[SetAside, ...] = field(default=())

    @property
    def history(self) -> History:
        return self.prescription.history

    @property
    def any_session(self) -> bool:
        return any(not o.skipped for o in self.outcomes)

    def pain_scores(self) -> list[float]:
        """Every pain score of the week: from outcomes and from pain reports."""
        scores = [p for o in self.outcomes for p in o.pain_scores()]
        scores.extend(r.pain for r in self.pain_reports)
        return scores

    def mean_pain(self) -> float | None:
        scores = self.pain_scores()
        return round(fmean(scores), 2) if scores else None


def _none_low(value: float | None) -> float:
    return -1.0 if value is None else value


def outcome_key(o: Outcome) -> tuple[object, ...]:
    """A total order on outcomes, so that record order never changes a result."""
    return (
        o.date,
        o.exercise,
        o.side or "",
        o.skipped,
        o.reps,
        _none_low(o.hold_s),
        o.duration_s,
        _none_low(o.load_kg),
        _none_low(o.pain_before),
        _none_low(o.pain_during),
        _none_low(o.pain_after),
        _none_low(o.pain_next_morning),
        _none_low(o.rpe),
        o.adverse_event,
        o.flags,
        o.note,
        o.patient or "",
    )


def report_key(r: PainReport) -> tuple[object, ...]:
    return (r.date, r.pain, r.context, r.note, r.patient or "")


def _describe(record: Record) -> str:
    if isinstance(record, Outcome):
        return f"{record.date} outcome of {record.exercise!r}"
    return f"{record.date} pain report"


@dataclass(frozen=True)
class ExercisePlan:
    """What building a week needs to know about one exercise."""

    exercise: Exercise
    session_met: SessionMet
    sessions_required: int


def build_week(
    plans: Mapping[str, ExercisePlan],
    prescription: Prescription,
    records: Iterable[Record],
) -> WeekView:
    """Sort, check and group one patient's records for the prescription's week."""
    start, end = prescription.start, prescription.end
    outcomes: list[Outcome] = []
    reports: list[PainReport] = []
    set_aside: list[tuple[tuple[object, ...], SetAside]] = []

    def aside(record: Record, reason: str) -> None:
        key = outcome_key(record) if isinstance(record, Outcome) else report_key(record)
        set_aside.append(
            ((record.kind, *key), SetAside(source="week", reason=reason, record=_describe(record)))
        )

    for record in records:
        if record.patient is not None and record.patient != prescription.patient:
            aside(record, f"belongs to patient {record.patient!r}, not {prescription.patient!r}")
        elif not start <= record.date < end:
            aside(record, f"dated outside week {prescription.week} ({start} to {end})")
        elif isinstance(record, PainReport):
            reports.append(record)
        elif record.exercise not in plans:
            aside(record, f"unknown exercise {record.exercise!r}")
        else:
            outcomes.append(record)
    outcomes.sort(key=outcome_key)
    reports.sort(key=report_key)
    set_aside.sort(key=lambda pair: pair[0])

    by_exercise: dict[str, list[Outcome]] = {name: [] for name in plans}
    for outcome in outcomes:
        by_exercise[outcome.exercise].append(outcome)
    exercises = {
        name: _exercise_week(plan, prescription, by_exercise[name]) for name, plan in plans.items()
    }
    return WeekView(
        prescription=prescription,
        exercises=exercises,
        outcomes=tuple(outcomes),
        pain_reports=tuple(reports),
        set_aside=tuple(s for _, s in set_aside),
    )


def _exercise_week(
    plan: ExercisePlan, prescription: Prescription, outcomes: list[Outcome]
) -> ExerciseWeek:
    state = prescription.exercises[plan.exercise.id]
    sessions: list[Session] = []
    day: list[Outcome] = []
    for outcome in outcomes:
        if day and day[0].date != outcome.date:
            sessions.append(_session(plan, state.dose, day))
            day = []
        day.append(outcome)
    if day:
        sessions.append(_session(plan, state.dose, day))
    return ExerciseWeek(
        exercise=plan.exercise,
        dose=state.dose,
        memory=state.memory,
        sessions=tuple(sessions),
        sessions_required=plan.sessions_required,
    )


def _session(plan: ExercisePlan, dose: Dose, day: list[Outcome]) -> Session:
    usable = [o for o in day if o.scored and not o.skipped]
    scored = bool(usable) and all(o.scored for o in day if not o.skipped)
    met = scored and plan.session_met(dose, usable)
    return Session(date=day[0].date, outcomes=tuple(day), scored=scored, met=met)
