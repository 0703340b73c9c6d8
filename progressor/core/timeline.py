"""A patient's timeline: every road (the command line, the store, the dataset) folds a
patient's weeks here, and only does its own reading and writing.

`fold` takes the compiled program, the enrollment, the patient's records (each with the
moment it arrived, where that is known), the clinician's actions and the day of the run, and
returns every judged week, the prescription in force after each, the alerts that the week
under way already raises, and the records it set aside. Week arithmetic, the rule for
records dated in the future and the order in which clinician actions apply live here and
nowhere else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from itertools import repeat
from typing import TYPE_CHECKING, Literal, NamedTuple, cast

from progressor.core.models import (
    Alert,
    Dose,
    Enrollment,
    Flag,
    Prescription,
    Record,
    SetAside,
    StepResult,
)
from progressor.core.week import describe_record
from progressor.errors import ProgressorError

if TYPE_CHECKING:
    from progressor.core.engine import CompiledProgram

# -- weeks ------------------------------------------------------------------------------------

#: The notes of a pain the readers keep as of the day they read it (progressor.reading's
#: kept_as_of): from a record dated later than that day, or whose day could not be read.
KEPT_AS_OF_TODAY = "kept for safety, as of the day it was read, from a record dated later"
KEPT_UNDATED = "kept for safety, as of the day it was read, from a record whose day was unreadable"


def kept_as_of_read(record: Record) -> bool:
    """Whether `record` is a pain kept as of the day it was read, not a session of that day:
    it says nothing of which weeks were logged, and its alerts must not wait for its week."""
    return getattr(record, "note", None) in (KEPT_AS_OF_TODAY, KEPT_UNDATED)


def week_of(start: dt.date, day: dt.date) -> int:
    """The enrollment week (1-based) that contains `day`; days before the start count as 1
    (the step then sets such a record aside, with its reason)."""
    return max(1, (day - start).days // 7 + 1)


def ended_weeks(start: dt.date, day: dt.date) -> int:
    """How many weeks of an enrollment starting on `start` have ended by the day `day`."""
    return max(0, (day - start).days // 7)


def week_start(start: dt.date, week: int) -> dt.date:
    """The first day of enrollment week `week`: week k is [start + 7(k-1), start + 7k)."""
    return start + dt.timedelta(days=7 * (week - 1))


# -- clinician actions -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClinicianAction:
    """A clinician's resume, override or acknowledgement, applied from its week on."""

    id: int
    patient: str
    kind: Literal["resume", "override", "acknowledge"]
    exercise: str | None
    dose: Dose | None
    note: str
    who: str
    at: dt.datetime
    week: int  # the week whose prescription the action changes
    recorded_at: dt.datetime | None = None  # when it was stored (None: before schema 4)


class Arrived(NamedTuple):
    """A record, the moment it arrived (None: not known, or with the run) and where it was
    read (its file and line, where known): a record set aside is reported there. (A
    NamedTuple: one is made for every record a batch reads, at a quarter of a frozen
    dataclass's cost.)"""

    record: Record
    at: dt.datetime | None = None
    source: str = ""
    line: int | None = None


# -- the fold ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """Every judged week of one patient, and what the week under way already says."""

    enrollment: Enrollment
    #: The result of each judged week: results[k - 1] is week k's.
    results: tuple[StepResult, ...]
    #: The prescription in force for each week 1..len(results) + 1, clinician actions applied.
    prescriptions: tuple[Prescription, ...]
    #: Alerts raised by what is logged so far of the week under way (it is not judged yet).
    early_alerts: tuple[Alert, ...]
    #: Every record the judged weeks' steps set aside (an unknown exercise, a date before the
    #: start, another patient's), each at its file and line where known.
    set_aside: tuple[SetAside, ...]
    #: Records of the week under way, which wait for it to end, and those dated later.
    waiting: int
    later: int

    @property
    def current(self) -> Prescription:
        """The prescription in force now: that of the week under way."""
        return self.prescriptions[-1]


def fold(
    compiled: CompiledProgram,
    enrollment: Enrollment,
    records: Iterable[Record | Arrived],
    *,
    as_of: dt.date,
    weeks: int | None = None,
    actions: Sequence[ClinicianAction] = (),
) -> Timeline:
    """Weeks 1..`weeks` of a patient (default: every week that ended by `as_of`) as a fold
    over the step, the clinician's actions applied at their weeks.

    Records dated after the day they were read are the reader's business
    (progressor.reading.records: set aside at their line, their pain kept as of that day).
    The week after the last judged one is the week under way: its records are not judged,
    but the alerts they already raise are returned. A record the step sets aside is reported
    at its file and line (`Arrived`).
    """
    arrived = _arrived(records)
    if weeks is None:
        weeks = ended_weeks(enrollment.start, as_of)
    by_week = _by_week(arrived, enrollment.start)
    by_action_week: dict[int, list[ClinicianAction]] = {}
    for action in actions:
        by_action_week.setdefault(action.week, []).append(action)
    first = compiled.first_week(enrollment)
    prescription = apply_actions(compiled, enrollment, first, by_action_week.get(1, ()))
    prescriptions = [prescription]
    results: list[StepResult] = []
    for week in range(1, weeks + 1):
        result = compiled.step(prescription, by_week.get(week, ()))
        results.append(result)
        prescription = _next_prescription(
            compiled, enrollment, arrived, actions, results, by_action_week.get(week + 1, [])
        )
        prescriptions.append(prescription)
    under_way = by_week.get(weeks + 1, [])
    early = compiled.step(prescription, under_way).alerts if under_way else ()
    # A pain kept as of the day the records were read lies after the week under way when the
    # weeks judged stop short of that day (`next` judges the log's own weeks; a store's
    # recompute may be for an earlier week): it is stepped in its own week, with the
    # prescription in force, so that a flare typed with next year's date raises its alert now,
    # as the week under way's (the week whose prescription, handout and review it must stop).
    for week in sorted(w for w in by_week if w > weeks + 1):
        kept = [r for r in by_week[week] if kept_as_of_read(r)]
        if kept:
            there = {"week": week, "start": week_start(enrollment.start, week)}
            raised = compiled.step(prescription.model_copy(update=there), kept).alerts
            early += tuple(a.model_copy(update={"week": weeks + 1}) for a in raised)
    later = sum(len(v) for k, v in by_week.items() if k > weeks + 1)
    stepped = [s for r in results for s in r.set_aside]
    located = locate(stepped, arrived) if stepped else []
    return Timeline(
        enrollment,
        tuple(results),
        tuple(prescriptions),
        early,
        tuple(located),
        len(under_way),
        later,
    )


#: The rule the alert of records that reach no enrolled patient is raised under (a dataset's
#: records without a usable enrollment, the store's quarantined lines of an id enrolled
#: nowhere).
NOBODYS_RULE = "enrollment"


def raised_by_any(
    programs: Iterable[CompiledProgram], records: Sequence[Record]
) -> tuple[Alert, ...]:
    """The alerts the safety rules of any of `programs` raise on `records` that reach no
    enrolled patient (an id enrolled nowhere, records with no usable enrollment): each
    program enrolls them from their first day, since whose they are is not known for sure
    (they are read as nobody's). Whether such records are urgent is the rules' own verdict,
    on every road that meets them (a dataset's partition, the store's quarantine)."""
    anyone = [dc_replace(r, patient=None) for r in records]
    if not anyone:
        return ()
    start = min(r.date for r in anyone)
    weeks = max(week_of(start, r.date) for r in anyone)
    raised: list[Alert] = []
    for compiled in programs:
        enrollment = Enrollment(patient="unknown", program=compiled.program.id, start=start)
        timeline = fold(compiled, enrollment, anyone, as_of=start, weeks=weeks)
        raised += [a for r in timeline.results for a in r.alerts]
    return tuple(raised)


def locate(stepped: Sequence[SetAside], arrived: Sequence[Arrived]) -> list[SetAside]:
    """The step's set-asides (which name a record by its date and exercise) at the file and
    line of the record they name. Records described alike are alike: any of their lines
    will do, each used once."""
    at: dict[str, list[Arrived]] = {}
    for item in arrived:
        at.setdefault(describe_record(item.record), []).append(item)
    found = []
    for aside in stepped:
        alike = at.get(aside.record)
        if alike:
            item = alike.pop(0)
            aside = aside.model_copy(
                update={"source": item.source or aside.source, "line": item.line}
            )
        found.append(aside)
    return found


def _arrived(records: Iterable[Record | Arrived]) -> list[Arrived]:
    given = list(records)
    if all(map(isinstance, given, repeat(Arrived))):  # (a C loop: the usual case)
        return cast(list[Arrived], given)
    return [r if isinstance(r, Arrived) else Arrived(r) for r in given]


def _by_week(records: Sequence[Arrived], start: dt.date) -> dict[int, list[Record]]:
    by_week: dict[int, list[Record]] = {}
    weeks: dict[dt.date, int] = {}  # (a patient's records fall on a handful of days)
    for item in records:
        record = item.record
        week = weeks.get(record.date)
        if week is None:
            week = weeks[record.date] = week_of(start, record.date)
        by_week.setdefault(week, []).append(record)
    return by_week


def _next_prescription(
    compiled: CompiledProgram,
    enrollment: Enrollment,
    records: Sequence[Arrived],
    actions: Sequence[ClinicianAction],
    history: Sequence[StepResult],
    todo: list[ClinicianAction],
) -> Prescription:
    """The prescription after `history`'s last week, with the next week's actions applied.

    A resume recorded before data that changed why the week is paused (a late diary with an
    adverse event, say) is not applied: the week stays paused with a `resume-not-applied`
    flag, unless a resume recorded later covers it (the clinician saw it all then)."""
    dropped = []
    for action in [a for a in todo if a.kind == "resume"]:
        unseen = _unseen(compiled, enrollment, records, actions, history, action)
        if unseen:
            todo = [a for a in todo if a is not action]
            dropped.append((action, unseen))
    applied = [a for a in todo if a.kind == "resume"]
    flags = [
        _not_applied(action, len(history) + 1, unseen)
        for action, unseen in dropped
        if not any(_covers(later, action) for later in applied)
    ]
    prescription = apply_actions(compiled, enrollment, history[-1].prescription, todo)
    if flags:
        prescription = prescription.model_copy(update={"flags": (*prescription.flags, *flags)})
    return prescription


def apply_actions(
    compiled: CompiledProgram,
    enrollment: Enrollment,
    prescription: Prescription,
    actions: Sequence[ClinicianAction],
) -> Prescription:
    """The week's prescription after the clinician's actions, in the order they were taken."""
    for action in actions:
        if action.kind == "acknowledge":  # flags reviewed: the prescription is unchanged
            continue
        if action.kind == "resume":
            names = (action.exercise,) if action.exercise else ()
            prescription = compiled.resume(prescription, names)
            continue
        name = action.exercise or ""
        state = prescription.exercises.get(name)
        if state is None or action.dose is None:
            raise ProgressorError(f"clinician action {action.id}: no exercise {name!r} to override")
        # The engine checks a starting dose against the exercise type, the strategy and the
        # limits; an override must pass the same checks (it raises ProgressorError if not).
        compiled.first_week(enrollment.model_copy(update={"overrides": {name: action.dose}}))
        exercises = dict(prescription.exercises)
        exercises[name] = state.model_copy(update={"dose": action.dose})
        prescription = prescription.model_copy(update={"exercises": exercises})
    return prescription


def _local(moment: dt.datetime) -> dt.datetime:
    """An aware time (a naive one is taken as local time, as the store writes them)."""
    return moment if moment.tzinfo is not None else moment.astimezone()


def _recorded(action: ClinicianAction) -> dt.datetime:
    return _local(action.recorded_at or action.at)


def _unseen(
    compiled: CompiledProgram,
    enrollment: Enrollment,
    records: Sequence[Arrived],
    actions: Sequence[ClinicianAction],
    history: Sequence[StepResult],
    resume: ClinicianAction,
) -> list[str]:
    """Why the week after `history` is paused that the clinician could not see when recording
    `resume`: reasons (pausing decisions and alerts of any week so far) brought by records of
    those weeks that arrived after it. Empty when none arrived later or they brought no new
    reason."""
    recorded = _recorded(resume)
    ends = week_start(enrollment.start, len(history) + 1)
    if not any(r.at and _local(r.at) > recorded and r.record.date < ends for r in records):
        return []
    seen = _as_known(compiled, enrollment, records, actions, len(history), recorded)
    return sorted(_pause_reasons(history) - _pause_reasons(seen))


def _as_known(
    compiled: CompiledProgram,
    enrollment: Enrollment,
    records: Sequence[Arrived],
    actions: Sequence[ClinicianAction],
    weeks: int,
    moment: dt.datetime,
) -> list[StepResult]:
    """Weeks 1..`weeks` stepped from the records that had arrived and the actions recorded
    by `moment`: what a clinician then saw (earlier actions applied as recorded)."""
    known = [r for r in records if r.at is None or _local(r.at) <= moment]
    by_week = _by_week(known, enrollment.start)
    by_action_week: dict[int, list[ClinicianAction]] = {}
    for action in actions:
        if _recorded(action) <= moment:
            by_action_week.setdefault(action.week, []).append(action)
    first = compiled.first_week(enrollment)
    prescription = apply_actions(compiled, enrollment, first, by_action_week.get(1, ()))
    results = []
    for week in range(1, weeks + 1):
        results.append(compiled.step(prescription, by_week.get(week, ())))
        prescription = apply_actions(
            compiled, enrollment, results[-1].prescription, by_action_week.get(week + 1, ())
        )
    return results


def _covers(later: ClinicianAction, resume: ClinicianAction) -> bool:
    """Whether `later`, a resume of the same week, was recorded after `resume` and resumes
    at least what it resumed."""
    after = _recorded(later) > _recorded(resume)
    return after and (later.exercise is None or later.exercise == resume.exercise)


def _pause_reasons(results: Sequence[StepResult]) -> set[str]:
    """Why a patient is paused after `results`: the pausing decisions (not those that only
    say the pause goes on) and the alerts, of every week."""
    reasons = set()
    for result in results:
        reasons |= {
            f"{d.exercise}: {d.reason}"
            for d in result.decisions
            if d.action == "pause" and d.rule != "awaiting-clinician"
        }
        reasons |= {f"{a.rule}: {a.message}" for a in result.alerts}
    return reasons


def _not_applied(resume: ClinicianAction, week: int, unseen: Sequence[str]) -> Flag:
    recorded = _recorded(resume).isoformat(timespec="minutes")
    return Flag(
        code="resume-not-applied",
        rule="clinician-resume",
        plugin="progressor",
        message=(
            f"the resume recorded {recorded} for week {week} was not applied: data that "
            f"arrived after it changed why the week is paused ({'; '.join(unseen)}); review "
            "and resume again if it is safe"
        ),
        exercise=resume.exercise,
    )
