"""One patient's week as the rules see it: records sorted, checked and grouped once.

The engine builds a WeekView per patient and week; strategies and safety rules only read it.
Records are put in a canonical order first, so that results never depend on the order in
which records arrived. Derived figures are computed once and cached: several rules read them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, groupby, repeat
from operator import attrgetter, lt
from typing import NamedTuple

from progressor.core._fast import LazyTuple, cached_property, dict_setter, tuple_new
from progressor.core.models import (
    Dose,
    Exercise,
    ExerciseState,
    History,
    Outcome,
    PainReport,
    Prescription,
    Record,
    Scalar,
    SetAside,
)
from progressor.core.rounding import round_half_up

SessionMet = Callable[[Dose, Sequence[Outcome]], bool]
EachMet = Callable[[Dose, Sequence[Outcome]], list[bool]]


class SessionCheckFailed(Exception):
    """An exercise type's `session_met` raised or gave something other than a bool."""

    def __init__(self, exercise: str, error: BaseException) -> None:
        super().__init__(f"{exercise}: {error!r}")
        self.exercise, self.error = exercise, error


def never_met(dose: Dose, outcomes: Sequence[Outcome]) -> bool:
    """The fail-safe's session check: when an exercise type fails, nothing counts as met."""
    return False


def never_each_met(dose: Dose, outcomes: Sequence[Outcome]) -> list[bool]:
    """The fail-safe's check of one-outcome sessions (see `never_met`)."""
    return [False] * len(outcomes)


class Session(NamedTuple):
    """One exercise's outcomes on one day."""

    date: dt.date
    outcomes: tuple[Outcome, ...]
    scored: bool
    met: bool
    done: bool  # logged and not (only) skipped


class DailySessions(LazyTuple[Session]):
    """The sessions of the usual week (one outcome a day), made when first read: the usual
    strategies and rules only need the counts, and a session is a tuple to allocate.

    A read-only sequence of Session, equal to the tuple of the same sessions."""

    __slots__ = ("_parts",)

    def __init__(
        self,
        dates: list[dt.date],
        outcomes: tuple[Outcome, ...],
        scored: list[bool],
        met: list[bool],
        done: list[bool],
    ) -> None:
        self._made = None  # (LazyTuple's slot, set here: a super().__init__ call per exercise)
        self._parts = (dates, outcomes, scored, met, done)

    def _make(self) -> tuple[Session, ...]:
        dates, outcomes, scored, met, done = self._parts
        # At C speed: zip(outcomes) gives each outcome as a 1-tuple, a session's outcomes.
        return tuple(
            map(tuple_new, repeat(Session), zip(dates, zip(outcomes), scored, met, done))  # noqa: B905
        )

    def __len__(self) -> int:
        return len(self._parts[1])


class ExerciseWeek(NamedTuple):
    """One exercise's week: its dose, its strategy's memory, its sessions and their counts.

    `sessions` is a tuple of Session, or (for the usual week, one outcome a day) a
    DailySessions: a read-only sequence of them, made when first read, equal to the tuple."""

    exercise: Exercise
    dose: Dose
    memory: Mapping[str, Scalar]
    sessions: Sequence[Session]
    sessions_required: int
    outcomes: tuple[Outcome, ...]
    unscored: tuple[Outcome, ...]  # done without the pain scores a progression needs
    met_sessions: int
    done_sessions: int

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
    set_aside: tuple[SetAside, ...] = ()
    #: This week's outcomes naming an unknown exercise: never counted towards progress, but
    #: their pain scores and adverse events still count for safety.
    strays: tuple[Outcome, ...] = ()

    @property
    def history(self) -> History:
        return self.prescription.history

    @cached_property
    def any_session(self) -> bool:
        """Any exercise done (logged and not skipped) this week."""
        return any(exercise.done_sessions for exercise in self.exercises.values())

    @cached_property
    def pain_scores(self) -> tuple[float, ...]:
        """Every pain score of the week: from outcomes and from pain reports."""
        return _pain_scores(self.outcomes, self.strays, self.pain_reports)

    @cached_property
    def mean_pain(self) -> float | None:
        return _mean(self.pain_scores)


def _pain_scores(
    outcomes: tuple[Outcome, ...], strays: tuple[Outcome, ...], reports: tuple[PainReport, ...]
) -> tuple[float, ...]:
    scores = [
        p
        for o in chain(outcomes, strays)
        for p in (o.pain_before, o.pain_during, o.pain_after, o.pain_next_morning)
        if p is not None
    ]
    if reports:
        scores += [r.pain for r in reports]
    return tuple(scores)


def _mean(scores: tuple[float, ...]) -> float | None:
    return round_half_up(sum(scores) / len(scores), 2) if scores else None


_set_week_fields = dict_setter(WeekView)


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


_date = attrgetter("date")
_outcomes = attrgetter("outcomes")


def _day_side(o: Outcome) -> tuple[dt.date, str]:
    return (o.date, o.side or "")


def canonical(outcomes: list[Outcome]) -> list[Outcome]:
    """One exercise's outcomes in canonical order: by day and side, then by every field.

    The full key is only needed when two outcomes share day and side, which is rare, and
    logs usually arrive in order already: both are checked before sorting.
    """
    keys = [(o.date, o.side or "") for o in outcomes]
    if all(map(lt, keys, keys[1:])):
        return outcomes
    if len(set(keys)) == len(keys):
        outcomes.sort(key=_day_side)
    else:
        outcomes.sort(key=outcome_key)
    return outcomes


def _days(outcomes: list[Outcome]) -> list[tuple[Outcome, ...]]:
    """One exercise's outcomes grouped into days (sessions); sorts `outcomes` in place.

    (_sessions handles the usual log, one outcome a day in order, without this.)"""
    return [tuple(day) for _, day in groupby(canonical(outcomes), _date)]


def report_key(r: PainReport) -> tuple[object, ...]:
    return (r.date, r.pain, r.context, r.flags, r.note, r.patient or "")


def describe_record(record: Record) -> str:
    """How a set-aside record is named in the step's SetAside.record."""
    if isinstance(record, Outcome):
        return f"{record.date} outcome of {record.exercise!r}"
    return f"{record.date} pain report"


@dataclass(frozen=True)
class ExercisePlan:
    """What building a week needs to know about one exercise."""

    exercise: Exercise
    session_met: SessionMet
    each_met: EachMet
    sessions_required: int


def build_week(
    plans: Mapping[str, ExercisePlan],
    prescription: Prescription,
    records: Iterable[Record],
) -> WeekView:
    """Sort, check and group one patient's records for the prescription's week."""
    by_exercise, reports, aside, strays = _sorted_out(plans, prescription, records)
    if len(reports) > 1:
        reports.sort(key=report_key)
    states = prescription.exercises
    exercises = {}
    for name, plan in plans.items():  # (a loop: a comprehension is a frame of its own)
        exercises[name] = _exercise_week(plan, states[name], by_exercise[name])
    any_session = False
    for exercise in exercises.values():
        if exercise.done_sessions:
            any_session = True
            break
    outcomes = tuple(chain.from_iterable(map(_outcomes, exercises.values())))
    kept_reports = tuple(reports)
    kept_strays = tuple(sorted(strays, key=outcome_key)) if strays else ()
    # Every step reads the pain scores (pain-flare, which no program is without) and their
    # mean (the week's history): computed here, not through two cached properties' calls.
    scores = _pain_scores(outcomes, kept_strays, kept_reports)
    # What WeekView(...) sets, in one go (a frozen dataclass sets each field through
    # object.__setattr__: a microsecond a week), with the cached properties' values.
    week = object.__new__(WeekView)
    _set_week_fields(
        week,
        {
            "prescription": prescription,
            "exercises": exercises,
            "outcomes": outcomes,
            "pain_reports": kept_reports,
            "set_aside": _set_aside(aside) if aside else (),
            "strays": kept_strays,
            "any_session": any_session,
            "pain_scores": scores,
            "mean_pain": _mean(scores),
        },
    )
    return week


def _sorted_out(
    plans: Mapping[str, ExercisePlan], prescription: Prescription, records: Iterable[Record]
) -> tuple[dict[str, list[Outcome]], list[PainReport], list[tuple[Record, str]], list[Outcome]]:
    """Each record looked at on its own: set aside (with its reason), or kept."""
    start, end, patient = prescription.start, prescription.end, prescription.patient
    by_exercise: dict[str, list[Outcome]] = {}
    for name in plans:
        by_exercise[name] = []
    reports: list[PainReport] = []
    aside: list[tuple[Record, str]] = []
    strays: list[Outcome] = []
    for record in records:
        if (owner := record.patient) is not None and owner != patient:
            aside.append((record, f"belongs to patient {owner!r}, not {patient!r}"))
        elif not start <= record.date < end:
            last = prescription.last_day
            reason = f"dated outside week {prescription.week} ({start} to {last})"
            if prescription.week == 1 and record.date < start:
                # Before the enrollment's first day (a year typed wrong?): not counted towards
                # progress, but a flare or an adverse event in it must still reach safety.
                reason += "; its pain scores and adverse events still count for safety"
                if isinstance(record, PainReport):
                    reports.append(record)
                else:
                    strays.append(record)
            aside.append((record, reason))
        # isinstance() that fails on a pydantic class goes through ABCMeta (~50 ns): outcomes,
        # by far the most records, skip it.
        elif type(record) is not Outcome and isinstance(record, PainReport):
            reports.append(record)
        elif record.exercise in by_exercise:  # (no call: cheaper than .get for every outcome)
            by_exercise[record.exercise].append(record)
        else:
            aside.append((record, f"unknown exercise {record.exercise!r}"))
            strays.append(record)
    return by_exercise, reports, aside, strays


def _set_aside(aside: list[tuple[Record, str]]) -> tuple[SetAside, ...]:
    def key(pair: tuple[Record, str]) -> tuple[object, ...]:
        record = pair[0]
        full = outcome_key(record) if isinstance(record, Outcome) else report_key(record)
        return (record.kind, *full)

    return tuple(
        SetAside(source="week", reason=reason, record=describe_record(record))
        for record, reason in sorted(aside, key=key)
    )


def _exercise_week(
    plan: ExercisePlan, state: ExerciseState, outcomes: list[Outcome]
) -> ExerciseWeek:
    # (A model's field is read once: each read of a BaseModel's field is a slow lookup.)
    dose, memory = state.dose, state.memory
    try:
        dates = [o.date for o in outcomes]
        if all(map(lt, dates, dates[1:])):  # one outcome a day, in order: the usual log
            return _daily_week(plan, dose, memory, tuple(outcomes), dates)
        sessions: list[Session] = []
        unscored: list[Outcome] = []
        met_sessions, done_sessions = _sessions(
            outcomes, dose, plan.session_met, sessions, unscored
        )
    except Exception as error:  # the exercise type is a plugin: its failure names it
        raise SessionCheckFailed(plan.exercise.id, error) from error
    return tuple_new(
        ExerciseWeek,
        (
            plan.exercise,
            dose,
            memory,
            tuple(sessions),
            plan.sessions_required,
            tuple(outcomes),
            tuple(unscored),
            met_sessions,
            done_sessions,
        ),
    )


def _daily_week(
    plan: ExercisePlan,
    dose: Dose,
    memory: Mapping[str, Scalar],
    outcomes: tuple[Outcome, ...],
    dates: list[dt.date],
) -> ExerciseWeek:
    """The usual week, one outcome a day in order: each outcome is a session of its own, and
    the exercise type checks the scored ones in one call (`ExerciseType.each_met`)."""
    # One loop for both lists (a comprehension is a frame of its own); Outcome.scored,
    # inlined: a property call for every outcome costs more than the test.
    done: list[bool] = []
    scored: list[bool] = []
    for o in outcomes:
        performed = not o.skipped
        done.append(performed)
        scored.append(
            performed
            and o.pain_before is not None
            and (o.pain_during is not None or o.pain_after is not None)
        )
    scored_count = scored.count(True)
    if scored_count == len(outcomes):
        met = _answers(plan.each_met, dose, outcomes)
        unscored: tuple[Outcome, ...] = ()
    else:
        answers = iter(
            _answers(plan.each_met, dose, [o for o, s in zip(outcomes, scored, strict=True) if s])
        )
        met = [next(answers) if s else False for s in scored]
        unscored = tuple([o for o, d, s in zip(outcomes, done, scored, strict=True) if d and not s])
    sessions = DailySessions(dates, outcomes, scored, met, done)
    return tuple_new(
        ExerciseWeek,
        (
            plan.exercise,
            dose,
            memory,
            sessions,
            plan.sessions_required,
            outcomes,
            unscored,
            met.count(True),
            done.count(True),
        ),
    )


def _answers(each_met: EachMet, dose: Dose, outcomes: Sequence[Outcome]) -> list[bool]:
    """What an exercise type's `each_met` says of `outcomes`, checked (for every plugin, the
    built-ins too): True or False (exactly: not 1, not 1.0), one per outcome."""
    if not outcomes:
        return []
    given = each_met(dose, outcomes)
    if type(given) is list and len(given) == len(outcomes):
        # The usual answer, checked without building anything (a loop: cheaper than a set of
        # types for a week's handful); a copy, so that the type keeps its own list.
        for answer in given:
            if answer is not True and answer is not False:
                break
        else:
            return given[:]
    try:
        met = list(given)  # any other iterable of bools will do
    except TypeError:
        met = []
    if len(met) != len(outcomes) or {*map(type, met)} - {bool}:
        raise TypeError(f"each_met gave {given!r}, not True or False for each outcome")
    return met


def _sessions(
    outcomes: list[Outcome],
    dose: Dose,
    session_met: SessionMet,
    sessions: list[Session],
    unscored: list[Outcome],
) -> tuple[int, int]:
    """Fill `sessions` and `unscored`, day by day in canonical order (several outcomes on a
    day, or out of order); the number of sessions that met the dose, and done."""
    met_count = done_count = 0
    for day in _days(outcomes):
        performed = [o for o in day if not o.skipped]
        missing = [o for o in performed if not o.scored]
        unscored.extend(missing)
        done = bool(performed)
        scored = done and not missing
        met = scored and session_met(dose, performed)
        if met is not True and met is not False:
            raise TypeError(f"session_met gave {met!r}, not True or False")
        sessions.append(tuple_new(Session, (day[0].date, day, scored, met, done)))
        met_count += met
        done_count += done
    return met_count, done_count
