"""/v1/patients: enroll, post records, read results, and a clinician's actions, on the store.

Records go through the one reader and the quarantine of `progressor import`
(`Store.import_records`); results are what the last `progressor recompute` stored. An action is
recorded with the calling token's name as who: never a name taken from the body.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from progressor.core.models import (
    Decision,
    Dose,
    Enrollment,
    Prescription,
    StartDay,
    patient_id_problem,
)
from progressor.serve.auth import requires
from progressor.serve.bodies import Pairs, record_line
from progressor.serve.catalog import Catalog
from progressor.serve.compute import (
    ProgramRef,
    SetAsideRecord,
    compiled_program,
    positions,
)
from progressor.serve.problems import ProblemError
from progressor.serve.stored import known, opened
from progressor.serve.tokens import TokenEntry
from progressor.store.database import Store
from progressor.store.values import ClinicianAction

router = APIRouter(prefix="/v1/patients", tags=["patients"])
Reader = Annotated[TokenEntry, Depends(requires("read"))]
Submitter = Annotated[TokenEntry, Depends(requires("submit"))]
Clinician = Annotated[TokenEntry, Depends(requires("act"))]
Week = Annotated[int | None, Query(ge=1, description="A week (default: the newest).")]

#: The media types of a records body, and the reader's format for each.
FORMATS = {
    "application/json": "json",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "text/plain": "jsonl",
    "text/csv": "csv",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- enroll ------------------------------------------------------------------------------------


class EnrollRequest(_Strict):
    patient: str
    program: str = Field(description="A program of the service's --programs, by id.")
    version: str | None = Field(None, description="Default: the newest version.")
    start: StartDay
    overrides: dict[str, Dose] = Field({}, description="Starting doses, by exercise id.")

    @field_validator("patient")
    @classmethod
    def _patient_id(cls, patient: str) -> str:
        problem = patient_id_problem(patient)
        if problem:
            raise ValueError(problem)
        return patient


class Enrolled(_Strict):
    patient: str
    program: str
    version: str
    start: dt.date
    added: bool = Field(description="False: the patient was enrolled so already.")


@router.post("", response_model=Enrolled, status_code=201, responses={200: {"model": Enrolled}})
def enroll(body: EnrollRequest, request: Request, response: Response, _: Submitter) -> Enrolled:
    """Enroll a patient on one of the service's programs (stored with them)."""
    compiled = compiled_program(request, ProgramRef(id=body.program, version=body.version))
    catalog: Catalog = request.app.state.catalog
    program = compiled.program
    enrollment = Enrollment(
        patient=body.patient, program=program.id, start=body.start, overrides=body.overrides
    )
    with opened(request) as store:
        store.add_program(program, catalog.text(compiled))
        added = store.enroll(enrollment, program, compiled)
    response.status_code = 201 if added else 200
    return Enrolled(
        patient=body.patient,
        program=program.id,
        version=program.version,
        start=body.start,
        added=added,
    )


# -- records -----------------------------------------------------------------------------------


class Imported(_Strict):
    added: int
    duplicates: int = Field(description="Records already stored (not added again).")
    set_aside: list[SetAsideRecord] = Field(
        description="Lines kept in the quarantine, each with its reason; a pain that can be "
        "made out of one is stored and reaches the safety rules all the same."
    )
    recompute: str = "the patient's results change at the next `progressor recompute`"


_RECORDS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The records: a JSON array of records, JSONL text, or CSV with a header "
        "(as `progressor import` reads them). A record without `patient` is this patient's.",
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


@router.post("/{patient}/records", response_model=Imported, openapi_extra=_RECORDS_BODY)
async def post_records(patient: str, request: Request, caller: Submitter) -> Imported:
    """Store a patient's records, as `progressor import` does: bad lines are set aside."""
    records, lines, fmt = _records(await request.body(), request)
    limit: int = request.app.state.settings.max_records
    count = sum(1 for line in lines if line.strip()) - (fmt == "csv")
    if count > limit:
        detail = f"{count} records: at most {limit} in one request"
        raise ProblemError(413, "too-many-records", "Too many records", detail)

    def store_them() -> Imported:
        with opened(request) as store:
            known(store, patient)
            report = store.import_records(lines, f"http:{caller.name}", fmt, patient=patient)
        return Imported(
            added=report.added,
            duplicates=report.duplicates,
            set_aside=positions(records, list(report.quarantined)),
        )

    return await run_in_threadpool(store_them)


def _records(body: bytes, request: Request) -> tuple[list[Any] | str, list[str], str]:
    """(the records as sent, their lines, the reader's format) of a body, by its media type."""
    kind, _, options = request.headers.get("content-type", "").partition(";")
    fmt = FORMATS.get(kind.strip().lower())
    if fmt is None:
        detail = f"a records body is one of: {', '.join(FORMATS)} (not {kind.strip() or 'none'})"
        raise ProblemError(415, "unsupported-media-type", "Unsupported media type", detail)
    charset = options.partition("charset=")[2].strip().strip('"') or "utf-8"
    try:
        text = body.decode(charset)
    except (LookupError, UnicodeDecodeError) as exc:
        detail = f"the body is not {charset} text ({exc}); send UTF-8 or name its charset"
        raise ProblemError(400, "bad-encoding", "Bad encoding", detail) from None
    if fmt != "json":
        return text, text.split("\n"), fmt
    try:
        records = json.loads(text, object_pairs_hook=Pairs.of)
    except (ValueError, RecursionError) as exc:
        raise ProblemError(400, "bad-json", "Bad JSON", f"the body is not JSON: {exc}") from None
    if not isinstance(records, list):
        detail = "a JSON body is an array of records (or send JSONL: application/x-ndjson)"
        raise ProblemError(422, "invalid-request", "Invalid request", detail)
    return records, [record_line(r) for r in records], "jsonl"


# -- results -----------------------------------------------------------------------------------


class WeekDecision(_Strict):
    week: int = Field(description="The week the decision judged (its prescription's week).")
    decision: Decision


def _prescriptions(store: Store, patient: str) -> list[Prescription]:
    known(store, patient)
    history = store.prescriptions(patient)
    if not history:
        detail = f"nothing computed yet for patient {patient!r}: results come with recompute"
        raise ProblemError(404, "not-computed", "Not computed", detail)
    return history


@router.get("/{patient}/prescription", response_model=Prescription)
def prescription(patient: str, request: Request, _: Reader, week: Week = None) -> Prescription:
    """The patient's newest prescription (the week under way), or that of `week`."""
    with opened(request) as store:
        history = _prescriptions(store, patient)
    if week is None:
        return history[-1]
    found = [p for p in history if p.week == week]
    if not found:
        detail = f"patient {patient!r} has no prescription for week {week}"
        raise ProblemError(404, "no-such-week", "No such week", f"{detail}: weeks 1-{len(history)}")
    return found[0]


@router.get("/{patient}/history", response_model=list[Prescription])
def history(patient: str, request: Request, _: Reader) -> list[Prescription]:
    """Every stored prescription of the patient, week 1 first."""
    with opened(request) as store:
        return _prescriptions(store, patient)


@router.get("/{patient}/decisions", response_model=list[WeekDecision])
def decisions(patient: str, request: Request, _: Reader, week: Week = None) -> list[WeekDecision]:
    """The audit trail: every decision (or those of `week`), by week, then exercise."""
    with opened(request) as store:
        known(store, patient)
        return [WeekDecision(week=w, decision=d) for w, d in store.decisions(patient, week)]


# -- clinician actions -------------------------------------------------------------------------


class Action(_Strict):
    """A clinician's action as the store keeps it."""

    id: int
    patient: str
    kind: str
    exercise: str | None
    dose: Dose | None
    note: str
    who: str = Field(description="The name of the token that recorded it.")
    at: dt.datetime
    week: int = Field(description="The week whose prescription it changes.")
    recorded_at: dt.datetime | None


def _action(action: ClinicianAction) -> Action:
    return Action.model_validate(dataclasses.asdict(action))


@router.get("/{patient}/actions", response_model=list[Action])
def actions(patient: str, request: Request, _: Reader) -> list[Action]:
    """The patient's clinician actions, in the order recompute applies them."""
    with opened(request) as store:
        known(store, patient)
        return [_action(a) for a in store.actions(patient)]


_WEEK = Field(None, ge=1, description="Default: the newest computed week (the one reviewed).")
_NOTE = Field(min_length=1, description="Why: kept with the action in the audit trail.")


class ResumeRequest(_Strict):
    note: str = _NOTE
    exercises: list[str] = Field([], description="Only these exercises (default: all).")
    week: int | None = _WEEK


class OverrideRequest(_Strict):
    exercise: str
    dose: Dose = Field(description="The exercise's whole new dose.")
    note: str = _NOTE
    week: int | None = _WEEK


class AcknowledgeRequest(_Strict):
    note: str = _NOTE
    week: int | None = _WEEK


@router.post("/{patient}/resume", response_model=list[Action], status_code=201)
def resume(patient: str, body: ResumeRequest, request: Request, caller: Clinician) -> list[Action]:
    """Resume a paused patient (or exercises); the next recompute applies it."""
    with opened(request) as store:
        done = store.resume(
            patient, body.note, caller.name, exercises=body.exercises, week=body.week
        )
    return [_action(a) for a in done]


@router.post("/{patient}/override", response_model=Action, status_code=201)
def override(patient: str, body: OverrideRequest, request: Request, caller: Clinician) -> Action:
    """Set one exercise's dose from a week on; checked as a starting dose would be."""
    catalog: Catalog = request.app.state.catalog
    with opened(request) as store:
        compiled = catalog.engine.compile(store.program_of(patient))
        done = store.override(
            patient,
            body.exercise,
            body.dose,
            body.note,
            caller.name,
            week=body.week,
            compiled=compiled,
        )
    return _action(done)


@router.post("/{patient}/acknowledge", response_model=Action, status_code=201)
def acknowledge(
    patient: str, body: AcknowledgeRequest, request: Request, caller: Clinician
) -> Action:
    """Record that the patient's flags were seen and nothing changes (never lifts a pause)."""
    with opened(request) as store:
        return _action(store.acknowledge(patient, body.note, caller.name, week=body.week))
