"""CDS Hooks 2.0: progressor's decisions as cards where clinicians work (an EHR's patient view).

GET /cds-services is the discovery document; POST /cds-services/progressor-patient-view
answers a `patient-view` request with cards: the program stopped on a flare (critical), flags
for review (warning), exercises ready for the next phase (info), Observations that could not
be read (warning). The patient's weeks are folded now, either from the service's store (its
enrolment names the program) or, without a store, from the prefetched Observations read by
progressor.fhir's reader, the program and start named by the request's extension
`dev.progressor.enrollment` ({"program", "version"?, "start"}). An invalid request is a 400.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from progressor.core.models import Alert, Enrollment, Outcome, Record, StartDay
from progressor.core.timeline import Arrived, week_start
from progressor.fhir import FhirError, read_bundle
from progressor.fhir.codes import EXERCISE_SYSTEM, LOINC, PAIN_SEVERITY
from progressor.serve.auth import requires
from progressor.serve.bodies import PairsRoute, record_line
from progressor.serve.compute import ProgramRef, compiled_program, within_limit, within_weeks
from progressor.serve.folded import Folded, fold_records, stored_patient
from progressor.serve.problems import LocatedProblem, ProblemError, invalid_request
from progressor.serve.settings import ServeSettings
from progressor.serve.tokens import TokenEntry

SERVICE_ID = "progressor-patient-view"
#: The request extension that names a patient's program when the service has no store.
ENROLLMENT_EXTENSION = "dev.progressor.enrollment"
LABEL = "progressor"
MAX_SUMMARY = 140  # (CDS Hooks: a card's summary is under 140 characters)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: What the client fetches for the service: the patient's pain scores and exercise sessions.
_OF_PATIENT = "Observation?patient={{context.patientId}}"
PREFETCH = {
    "painObservations": f"{_OF_PATIENT}&code={LOINC}|{PAIN_SEVERITY}",
    "sessionObservations": f"{_OF_PATIENT}&code={EXERCISE_SYSTEM}|",
}


class _CdsRoute(PairsRoute):
    """A CDS Hooks route: an invalid request is a 400 (the spec's word), not a 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise invalid_request(exc, status=400) from None

        return route


router = APIRouter(prefix="/cds-services", tags=["cds-hooks"], route_class=_CdsRoute)
Reader = Annotated[TokenEntry, Depends(requires("read"))]
Sender = Annotated[TokenEntry, Depends(requires("compute"))]


class _Open(BaseModel):
    # (CDS Hooks lets clients add what a later version or an extension defines)
    model_config = ConfigDict(extra="allow")


class Service(BaseModel):
    hook: str
    id: str
    title: str
    description: str
    prefetch: dict[str, str]
    usageRequirements: str


class Discovery(BaseModel):
    services: list[Service]


class PatientViewContext(_Open):
    userId: str = Field(min_length=1)
    patientId: str = Field(min_length=1)
    encounterId: str | None = None


class EnrollmentExtension(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program: str
    version: str | None = None
    start: StartDay


class HookRequest(_Open):
    hook: Literal["patient-view"]
    hookInstance: str = Field(min_length=1)
    context: PatientViewContext
    fhirServer: str | None = Field(None, description="Not used: nothing is fetched.")
    fhirAuthorization: dict[str, Any] | None = Field(None, description="Not used.")
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = Field(
        None,
        description=f"`{ENROLLMENT_EXTENSION}`: the program (and start) of a patient when the "
        "service has no store.",
    )


class Source(BaseModel):
    label: str


class Card(BaseModel):
    uuid: str
    summary: str = Field(max_length=MAX_SUMMARY)
    indicator: Literal["info", "warning", "critical"]
    detail: str
    source: Source


class Cards(BaseModel):
    cards: list[Card]


@router.get("", response_model=Discovery)
def discovery(_: Reader) -> Discovery:
    """The CDS Hooks discovery document: one `patient-view` service."""
    service = Service(
        hook="patient-view",
        id=SERVICE_ID,
        title="progressor: home exercise program",
        description="Whether the patient's exercises are stopped on a pain flare, flagged "
        "for review, or ready for the next phase.",
        prefetch=PREFETCH,
        usageRequirements="Send a bearer token of progressor serve (progressor token "
        "create). Without a store, name the program in the extension "
        f"{ENROLLMENT_EXTENSION}.",
    )
    return Discovery(services=[service])


@router.post(f"/{SERVICE_ID}", response_model=Cards, responses={400: {"description": "Invalid"}})
def patient_view(body: HookRequest, request: Request, _: Sender) -> Cards:
    """Cards for the patient in view, from the store or from the prefetched Observations."""
    today = dt.date.today()
    settings: ServeSettings = request.app.state.settings
    patient = body.context.patientId
    if settings.store is not None:
        return Cards(cards=cards(stored_patient(request, patient, today), []))
    enrollment, given = _enrollment(body, patient)
    field = f"extension.{ENROLLMENT_EXTENSION}"
    within_weeks(enrollment.start, today, f"{field}.start", 400)
    try:
        compiled = compiled_program(request, given)
    except ProblemError as exc:  # (a program the service does not have: the request's fault)
        raise _bad(exc.details.detail, f"{field}.program") from None
    arrived, unread = _prefetched(request, body.prefetch or {}, patient, today)
    return Cards(cards=cards(fold_records(compiled, enrollment, arrived, today), unread))


def _bad(detail: str, field: str) -> ProblemError:
    problem = LocatedProblem(message=detail, field=field)
    return ProblemError(400, "invalid-request", "Invalid request", detail, [problem])


def _enrollment(body: HookRequest, patient: str) -> tuple[Enrollment, ProgramRef]:
    field = f"extension.{ENROLLMENT_EXTENSION}"
    given = (body.extension or {}).get(ENROLLMENT_EXTENSION)
    if given is None:
        detail = f"this service has no store: name the patient's program in {field}"
        raise _bad(detail, field)
    try:
        named = EnrollmentExtension.model_validate(given)
        enrollment = Enrollment(patient=patient, program=named.program, start=named.start)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise _bad(str(first["msg"]), f"{field}.{where}" if where else field) from None
    return enrollment, ProgramRef(id=named.program, version=named.version)


def _prefetched(
    request: Request, prefetch: dict[str, Any], patient: str, today: dt.date
) -> tuple[list[Arrived], list[str]]:
    """The patient's records in the prefetched Bundles (through the one reader), and why each
    Observation that could not be read whole was set aside (its pain kept) or, naming another
    patient, was not used."""
    arrived: list[Arrived] = []
    unread: list[str] = []
    read = 0
    for key, found in sorted(prefetch.items()):
        if found is None:  # (the client could not fetch it: nothing to read)
            continue
        source = f"prefetch.{key}"
        try:
            imported = read_bundle(record_line(found), source, today=today)
        except FhirError as exc:
            raise _bad(str(exc), source) from None
        read += len(imported.lines)
        within_limit(request, read)
        unread += [str(item) for item in imported.set_aside]
        for item in imported.log.arrived(source):
            other = item.record.patient not in (None, patient)
            if other:  # (shown on a card, never dropped unseen: it may be a flare)
                unread.append(f"{source}: an Observation of {item.record.patient!r}: not used")
            else:
                arrived.append(item)
    return arrived, unread


def cards(found: Folded, unread: Sequence[str]) -> list[Card]:
    """What a clinician should see of `found`, the most urgent first."""
    out: list[Card] = []
    said: set[str] = set()  # (the rules whose alert the critical card shows)
    stopped = _stopped(found)
    if stopped is not None:
        out.append(stopped[0])
        said = stopped[1]
    current = found.timeline.current
    flags = [f for f in current.flags if f.code != "ready-for-next-phase" and f.rule not in said]
    if flags:
        summary = f"Review {len(flags)} flag(s): {flags[0].message}"
        out.append(_card(summary, "warning", _lines(f.message for f in flags)))
    ready = [f for f in current.flags if f.code == "ready-for-next-phase"]
    if ready:
        names = {e.id: e.name for e in found.compiled.program.exercises}
        which = ", ".join(names.get(f.exercise or "", f.exercise or "") for f in ready)
        out.append(
            _card(f"Ready for the next phase: {which}", "info", _lines(f.message for f in ready))
        )
    if unread:
        summary = f"{len(unread)} Observation(s) not read whole, or of another patient"
        out.append(_card(summary, "warning", _lines(unread)))
    return out


def _stopped(found: Folded) -> tuple[Card, set[str]] | None:
    """A critical card when the program is paused or the week under way raised an alert,
    and the rules whose alerts it shows."""
    timeline = found.timeline
    last = timeline.results[-1].alerts if timeline.results else ()
    alerts = [*last, *timeline.early_alerts]
    if timeline.current.status != "paused" and not timeline.early_alerts:
        return None
    if not alerts:  # (paused in an earlier week, not resumed yet)
        alerts = [a for r in timeline.results for a in r.alerts][-1:]
    worst = _worst_pain(found, alerts)
    summary, detail = "Exercises stopped: call the patient", ""
    if worst is not None:
        pain, day = worst
        when = f"{_DAYS[day.weekday()]}"
        summary = f"Pain {pain:g}/10 on {when}: exercises stopped, call the patient"
        detail = f"Pain **{pain:g}/10** logged on {when} {day.isoformat()}.\n\n"
    card = _card(summary, "critical", detail + _lines(a.message for a in alerts))
    return card, {a.rule for a in alerts}


def _worst_pain(found: Folded, alerts: Sequence[Alert]) -> tuple[float, dt.date] | None:
    """The highest pain score logged in the week of the newest pain-flare alert, on its
    latest day."""
    flares = [a.week for a in alerts if a.rule == "pain-flare"]
    if not flares:
        return None
    first = week_start(found.timeline.enrollment.start, max(flares))
    days = (first, first + dt.timedelta(days=7))
    scores = [
        (pain, r.date) for r in found.records if days[0] <= r.date < days[1] for pain in _scores(r)
    ]
    return max(scores) if scores else None


def _scores(record: Record) -> tuple[float, ...]:
    return record.pain_scores() if isinstance(record, Outcome) else (record.pain,)


def _lines(items: Any) -> str:
    return "".join(f"- {item}\n" for item in items)


def _card(summary: str, indicator: Literal["info", "warning", "critical"], detail: str) -> Card:
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    return Card(
        uuid=str(uuid.uuid4()),
        summary=summary,
        indicator=indicator,
        detail=detail,
        source=Source(label=LABEL),
    )
