"""FHIR R4 over HTTP: a Bundle of Observations in, a PlanDefinition and CarePlans out.

Every conversion is progressor.fhir's (`read_bundle`, `plan_definition`, `care_plan`), the
same the command line uses: a Bundle's Observations go through the one record reader, an
entry with a bad code, unit or range is set aside at its Bundle element and its pain scores
still reach the safety rules. With a store, an imported Bundle is stored as `import` stores a
log (the same quarantine); without one, the records are only returned.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from progressor.core.models import Alert, Decision, Prescription, SetAside, StepResult
from progressor.errors import ProgressorError
from progressor.fhir import FhirError, Imported, care_plan, plan_definition, read_bundle
from progressor.serve.auth import requires
from progressor.serve.catalog import Catalog
from progressor.serve.compute import ProgramRef, compiled_program, within_limit
from progressor.serve.folded import stored_patient
from progressor.serve.problems import LocatedProblem, ProblemError
from progressor.serve.settings import ServeSettings
from progressor.serve.tokens import TokenEntry
from progressor.store.database import Store

FHIR_JSON = "application/fhir+json"
#: How a Bundle sent to the service is named in reasons and in the store's imports.
SOURCE = "bundle"
_log = logging.getLogger("progressor.serve")

router = APIRouter(prefix="/v1/fhir", tags=["fhir"])
#: Who may send patient data (the records of a Bundle, a step's result) and who may read.
Sender = Annotated[TokenEntry, Depends(requires("compute"))]
Reader = Annotated[TokenEntry, Depends(requires("read"))]
_FHIR_RESOURCE = {200: {"content": {FHIR_JSON: {"schema": {"type": "object"}}}}}
_BUNDLE_BODY = {
    "requestBody": {
        "required": True,
        "description": "A FHIR R4 Bundle of Observations (docs/fhir.md maps them).",
        "content": {
            FHIR_JSON: {"schema": {"type": "object"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BundleSetAside(_Strict):
    """An Observation that was not used, why, and where in the Bundle."""

    at: str | None = Field(description="The Bundle element, e.g. `Bundle.entry[3].resource`.")
    reason: str
    text: str = Field(description="The record the entry was read as.")


class Stored(_Strict):
    """What the store did with the records (as `progressor import` reports it)."""

    added: int
    duplicates: int
    quarantined: int
    patients: int


class ImportResponse(_Strict):
    records: list[dict[str, Any]] = Field(description="The records read (JSON, as a log's).")
    set_aside: list[BundleSetAside]
    stored: Stored | None = Field(None, description="With a store: what was stored.")


class CarePlanRequest(_Strict):
    """A step's result (the answer of POST /v1/step may be sent as it is)."""

    program: ProgramRef | None = Field(
        None, description="Default: the prescription's program and version."
    )
    prescription: Prescription
    decisions: list[Decision] = []
    alerts: list[Alert] = []
    set_aside: list[Any] = Field([], description="Not used (accepted with a step's answer).")


def _fhir(resource: BaseModel) -> Response:
    return Response(resource.model_dump_json(exclude_none=True), media_type=FHIR_JSON)


@router.post("/import", response_model=ImportResponse, openapi_extra=_BUNDLE_BODY)
async def import_bundle(request: Request, _: Sender) -> ImportResponse:
    """The records of a Bundle of Observations; with a store, stored as `import` does."""
    text = _text(await request.body())
    today = dt.date.today()
    try:
        imported = read_bundle(text, SOURCE, today=today)
    except FhirError as exc:
        raise _invalid_bundle(exc) from None
    within_limit(request, len(imported.lines))
    aside = [_bundle_aside(item) for item in imported.set_aside]
    settings: ServeSettings = request.app.state.settings
    stored = None if settings.store is None else _store(settings, imported, aside, today)
    records = [r.model_dump(mode="json", exclude_defaults=True) for r in imported.log.records]
    return ImportResponse(records=records, set_aside=aside, stored=stored)


def _text(body: bytes) -> str:
    try:
        text = body.decode("utf-8-sig")
        json.loads(text)
    except UnicodeDecodeError as exc:
        detail = f"the body is not UTF-8 text (byte {exc.start})"
        raise ProblemError(400, "bad-json", "Bad JSON", detail) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = f"the body is not valid JSON: {exc}"
        raise ProblemError(400, "bad-json", "Bad JSON", detail) from None
    return text


def _invalid_bundle(exc: FhirError) -> ProblemError:
    """Each of the Bundle's problems at its element (`Bundle.entry[0].resource.status`)."""
    problems = []
    for line in str(exc).splitlines():
        where, _, message = line.removeprefix(f"{SOURCE}: ").partition(": ")
        located = where.startswith("Bundle") and message
        problems.append(
            LocatedProblem(message=message if located else line, field=where if located else None)
        )
    detail = f"the Bundle is not valid: {len(problems)} problem(s)"
    return ProblemError(422, "invalid-bundle", "Invalid Bundle", detail, problems)


def _bundle_aside(item: SetAside) -> BundleSetAside:
    where, _, _ = item.reason.partition(": ")
    at = where if where.startswith("Bundle.") else None
    if at is None and item.line is not None:
        at = f"Bundle.entry[{item.line - 1}].resource"
    return BundleSetAside(at=at, reason=item.reason, text=item.record)


def _store(
    settings: ServeSettings, imported: Imported, aside: list[BundleSetAside], today: dt.date
) -> Stored:
    """The Bundle's records into the store, read there as `import` reads a log; what only the
    store sets aside (a patient not enrolled) is added to `aside`."""
    assert settings.store is not None
    try:
        with Store.open(settings.store, busy_timeout=10.0) as store:
            report = store.import_records(imported.lines, SOURCE, "jsonl", today=today)
    except (ProgressorError, sqlite3.Error) as exc:
        raise _store_unavailable(exc) from None
    known = {item.text for item in aside}
    aside += [_bundle_aside(q) for q in report.quarantined if q.record not in known]
    return Stored(
        added=report.added,
        duplicates=report.duplicates,
        quarantined=len(report.quarantined),
        patients=report.patients,
    )


def _store_unavailable(exc: Exception) -> ProblemError:
    _log.error("store: %s", exc)  # (the path is the operator's business, not the caller's)
    detail = "the store cannot be written; the service's log says why"
    return ProblemError(503, "store-unavailable", "Store unavailable", detail)


@router.get(
    "/PlanDefinition/{program}/{version}",
    response_class=Response,
    responses=_FHIR_RESOURCE,  # type: ignore[arg-type]
)
def get_plan_definition(program: str, version: str, request: Request, _: Reader) -> Response:
    """A program of the catalog as a PlanDefinition, an ActivityDefinition per exercise."""
    catalog: Catalog = request.app.state.catalog
    try:
        compiled = catalog.named(program, version)
    except LookupError as exc:
        detail = str(exc.args[0])
        problem = LocatedProblem(
            message=detail, field="program" if "no program" in detail else "version"
        )
        raise ProblemError(404, "unknown-program", "Unknown program", detail, [problem]) from None
    return _fhir(plan_definition(compiled.program))


@router.post(
    "/careplan",
    response_class=Response,
    responses=_FHIR_RESOURCE,  # type: ignore[arg-type]
)
def post_care_plan(body: CarePlanRequest, request: Request, _: Sender) -> Response:
    """A step's result (next week's prescription and its decisions) as a CarePlan."""
    prescription = body.prescription
    given = body.program or ProgramRef(
        id=prescription.program, version=prescription.program_version
    )
    program = compiled_program(request, given).program
    mismatch = _mismatch(program.id, [e.id for e in program.exercises], prescription)
    if mismatch is not None:
        field, detail = mismatch
        problem = LocatedProblem(message=detail, field=field)
        raise ProblemError(422, "invalid-request", "Invalid request", detail, [problem])
    try:
        result = StepResult(
            prescription=prescription, decisions=tuple(body.decisions), alerts=tuple(body.alerts)
        )
    except ValidationError as exc:
        detail = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        problem = LocatedProblem(message=detail, field="decisions")
        raise ProblemError(422, "invalid-request", "Invalid request", detail, [problem]) from None
    return _fhir(care_plan(program, result))


def _mismatch(
    program: str, exercises: list[str], prescription: Prescription
) -> tuple[str, str] | None:
    """Why `prescription` is not one of `program` (the field and a sentence), or None."""
    if prescription.program != program:
        return "prescription.program", (
            f"the prescription is on {prescription.program!r}, the program is {program!r}"
        )
    if sorted(prescription.exercises) != sorted(exercises):
        return "prescription.exercises", (
            f"the prescription's exercises ({', '.join(sorted(prescription.exercises))}) are "
            f"not the program's ({', '.join(sorted(exercises))})"
        )
    return None


@router.get(
    "/CarePlan/{patient}",
    response_class=Response,
    responses=_FHIR_RESOURCE,  # type: ignore[arg-type]
)
def get_care_plan(patient: str, request: Request, _: Reader) -> Response:
    """A stored patient's prescription in force now, with the decisions behind it, as a
    CarePlan (folded now from the store: see docs/serve.md). 404 without a store."""
    found = stored_patient(request, patient, dt.date.today())
    return _fhir(care_plan(found.compiled.program, found.latest()))
