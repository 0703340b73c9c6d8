"""What the store hands out, and the small helpers its parts share."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import BaseModel

from progressor.core._fast import trusted
from progressor.core.models import (
    Decision,
    Dose,
    Enrollment,
    Exercise,
    Outcome,
    PainReport,
    Prescription,
    Record,
    SetAside,
    Status,
)

# (the timeline's, re-exported for the store's parts)
from progressor.core.timeline import ClinicianAction as ClinicianAction
from progressor.core.timeline import week_of as week_of
from progressor.errors import StoreError as StoreError


def canonical_json(value: BaseModel | Record | Any) -> str:
    """Sorted keys, no spaces, JSON mode: the same value always gives the same text."""
    modelled = isinstance(value, BaseModel | Outcome | PainReport)
    data = value.model_dump(mode="json") if modelled else value
    return _CANONICAL(data)


#: (One encoder for every call: json.dumps with options builds a new one each time.)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dose_json(dose: Dose) -> str:
    return canonical_json(dose.model_dump(mode="json", exclude_none=True))


def now_text() -> str:
    """Now, in local time with its offset: to the microsecond, so that an import and a
    clinician action a moment apart are told apart (the review compares them)."""
    return dt.datetime.now().astimezone().isoformat(timespec="microseconds")


def limit_problem(exercise: Exercise, dose: Dose) -> str | None:
    """Why `dose` is below the exercise's floor or above its ceiling, or None."""
    for name, low in exercise.floor.values().items():
        value = getattr(dose, name)
        if value is not None and value < low:
            return f"{exercise.id}: {name} {value:g} is below the floor {low:g}"
    for name, high in exercise.ceiling.values().items():
        value = getattr(dose, name)
        if value is not None and value > high:
            return f"{exercise.id}: {name} {value:g} is above the ceiling {high:g}"
    return None


# -- values the store hands out ---------------------------------------------------------------


@dataclass(frozen=True)
class ImportReport:
    """What one import did: records added, records already stored, lines set aside."""

    source: str
    added: int
    duplicates: int
    quarantined: tuple[SetAside, ...]
    patients: int  # patients who got new records


@dataclass(frozen=True)
class StoreStatus:
    schema_version: int
    programs: int
    patients: int
    outcomes: int
    pain_reports: int
    quarantined: int
    clinician_actions: int
    up_to_date: int  # patients whose results include every record and action
    stale: int  # patients with new records or actions since their last recompute
    failed: int  # patients whose last recompute failed
    paused: int  # latest prescription paused (the program or an exercise)
    flagged: int  # latest prescription carries flags
    alerts: int


@dataclass(frozen=True)
class ReviewItem:
    """A patient waiting for a clinician: latest prescription paused or flagged."""

    patient: str
    week: int
    status: Status
    reasons: tuple[str, ...]
    pending: bool  # records or clinician actions not yet recomputed
    program: str = ""  # the program the patient is enrolled on
    paused: bool = False  # the program or an exercise is paused: it waits for a resume
    flags: tuple[str, ...] = ()  # the codes and rules of its flags and alerts (for filters)


@dataclass(frozen=True)
class PatientInputs:
    """Everything recompute needs about one patient, read in one snapshot."""

    enrollment: Enrollment
    program_version: str
    toml: str
    data_version: int
    computed_weeks: int
    outcomes: tuple[str, ...]  # canonical JSON
    pain_reports: tuple[str, ...]
    actions: tuple[ClinicianAction, ...]  # by week, then in the order recorded
    # When each outcome and pain report arrived (its import), in the same order: a resume
    # recorded before data that changed why the week is paused does not lift that pause.
    outcomes_arrived: tuple[dt.datetime | None, ...] = ()
    pain_reports_arrived: tuple[dt.datetime | None, ...] = ()
    # Where each was imported from (file, line), in the same order: a record the rules set
    # aside is reported there.
    outcomes_from: tuple[tuple[str, int | None], ...] = ()
    pain_reports_from: tuple[tuple[str, int | None], ...] = ()
    read_at: str | None = None  # when these inputs were read (store time text)
    # The newest import these inputs saw: every record of an import up to it was read.
    read_import: int | None = None


class PrescriptionRow(NamedTuple):
    week: int
    start: str
    status: str
    paused: int  # paused exercises
    flags: int
    prescription: str


def prescription_row(prescription: Prescription | dict[str, Any]) -> PrescriptionRow:
    """A prescription as its row in `prescriptions`. Given as the model or as its JSON-mode
    fields (`model_dump(mode="json")`, or its JSON read back: the column engine's rows)."""
    data = prescription if isinstance(prescription, dict) else prescription.model_dump(mode="json")
    paused = sum(s["status"] == "paused" for s in data["exercises"].values())
    return PrescriptionRow(
        data["week"], data["start"], data["status"], paused, len(data["flags"]), _CANONICAL(data)
    )


class DecisionRow(NamedTuple):
    week: int
    exercise: str
    action: str
    rule: str
    plugin: str
    reason: str
    decision: str


def decision_row(week: int, decision: Decision | dict[str, Any]) -> DecisionRow:
    """A decision of `week` as its row in `decisions` (the model, or its JSON-mode fields as
    `prescription_row` takes them)."""
    d = decision if isinstance(decision, dict) else decision.model_dump(mode="json")
    return DecisionRow(
        week, d["exercise"], d["action"], d["rule"], d["plugin"], d["reason"], _CANONICAL(d)
    )


class AlertRow(NamedTuple):
    week: int
    rule: str
    plugin: str
    message: str
    urgent: int


class UnheardRecord(NamedTuple):
    """A discharged patient's stored record that no computation of theirs read
    (`Results.unheard_records`): whose, on which program version, its visible id (`o12`,
    `p3`), its canonical JSON and where it was imported from."""

    patient: str
    program: str
    program_version: str
    id: str
    record: str
    source: str
    line: int | None


@dataclass(frozen=True)
class PatientResults:
    """One patient's recomputed rows, or the error that stopped the computation."""

    patient: str
    data_version: int
    weeks: int
    prescriptions: tuple[PrescriptionRow, ...] = ()
    decisions: tuple[DecisionRow, ...] = ()
    alerts: tuple[AlertRow, ...] = ()
    set_aside: tuple[SetAside, ...] = ()  # records the rules set aside, at file and line
    error: str | None = None
    computed_at: str | None = None  # when the inputs they were computed from were read
    computed_import: int | None = None  # the newest import those inputs saw (read_import)


#: The columns of `clinician_actions`, in the order action_of_row reads them.
ACTION_COLUMNS = "id, patient, kind, exercise, dose, note, who, at, week, recorded_at"


def enrollment_of_row(patient: str, program: str, start: str, overrides: str) -> Enrollment:
    """An enrollment from its row in `patients`."""
    # The id is taken as stored: a store made before ids were checked (models.
    # patient_id_problem) may hold one now refused, and that patient must still be computed.
    checked = _checked_enrollment(program, start, overrides)
    # (The checked fields with the stored id and an overrides dict of its own, the checked
    # enrollment being shared: what model_copy(update=...) gives, at a fraction of its cost.)
    fields = {**checked.__dict__, "patient": patient, "overrides": dict(checked.overrides)}
    return trusted(Enrollment, fields)


@functools.lru_cache(maxsize=1024)
def _checked_enrollment(program: str, start: str, overrides: str) -> Enrollment:
    """An enrollment's fields but its id, validated once for each program, start day and
    overrides (a clinic's patients share a few hundred: recompute reads one for every due
    patient); the caller copies its fields."""
    return Enrollment(
        patient="stored", program=program, start=start, overrides=json.loads(overrides)
    )


def action_of_row(row: Sequence[Any]) -> ClinicianAction:
    """A clinician action from its row (ACTION_COLUMNS) in `clinician_actions`."""
    id_, patient, kind, exercise, dose, note, who, at, week, recorded_at = row
    return ClinicianAction(
        id_,
        patient,
        kind,
        exercise,
        Dose.model_validate_json(dose) if dose else None,
        note,
        who,
        dt.datetime.fromisoformat(at),
        week,
        dt.datetime.fromisoformat(recorded_at) if recorded_at else None,
    )
