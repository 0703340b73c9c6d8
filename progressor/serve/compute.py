"""POST /v1/step and /v1/replay: the engine's answer for what a request carries; nothing
is stored. Records go through the one reader (`read_log`): a record it sets aside is
reported at its position and the pain kept of it still reaches the safety rules."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from progressor.core.engine import CompiledProgram
from progressor.core.models import Alert, Decision, Enrollment, Prescription, SetAside
from progressor.core.timeline import ended_weeks, fold, locate
from progressor.errors import ProgramError, ProgressorError
from progressor.reading import Log, read_log
from progressor.serve.auth import requires
from progressor.serve.bodies import record_line
from progressor.serve.catalog import INLINE_SOURCE, Catalog
from progressor.serve.direct import DirectRoute
from progressor.serve.problems import LocatedProblem, ProblemError, program_problems
from progressor.serve.tokens import TokenEntry

SOURCE = "records"
#: The most weeks a replay judges (ten years): a start far in the past is a mistake.
MAX_WEEKS = 520
#: The most records a step is computed with on the event loop (more: in the threadpool).
INLINE_RECORDS = 200

router = APIRouter(prefix="/v1", tags=["compute"], route_class=DirectRoute)
Caller = Annotated[TokenEntry, Depends(requires("compute"))]
Records = Annotated[
    list[Any] | str,
    Field(
        description="The records: a list of JSON objects (the log's records), or JSONL text "
        "(one record per line), as `progressor next --log` reads them."
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProgramRef(_Strict):
    """A program of the service's catalog by `id` (and `version`, default the newest), or
    a program's TOML text."""

    id: str | None = None
    version: str | None = None
    toml: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> ProgramRef:
        if (self.id is None) == (self.toml is None):
            raise ValueError("give the program's id (and version), or its toml, not both")
        if self.version is not None and self.id is None:
            raise ValueError("a version goes with an id")
        return self


class StepRequest(_Strict):
    program: ProgramRef | None = Field(
        None, description="Default: the prescription's program and version."
    )
    prescription: Prescription
    records: Records = []


class ReplayRequest(_Strict):
    program: ProgramRef | None = Field(None, description="Default: the enrollment's program.")
    enrollment: Enrollment
    records: Records = []
    as_of: dt.date | None = Field(
        None, description="Judge every week that ended by this day (default: today)."
    )


class SetAsideRecord(_Strict):
    """A record that was not used, where it was and why."""

    at: str = Field(description="`records[i]` (a list) or `records:LINE` (JSONL text).")
    record: int | None = Field(None, description="Its index in the list of records.")
    line: int | None = Field(None, description="Its line in the JSONL text.")
    reason: str
    text: str


class StepResponse(_Strict):
    prescription: Prescription
    decisions: list[Decision]
    alerts: list[Alert]
    set_aside: list[SetAsideRecord]


class Week(_Strict):
    week: int
    prescription: Prescription
    decisions: list[Decision]
    alerts: list[Alert]


class ReplayResponse(_Strict):
    weeks: list[Week]
    current: Prescription = Field(description="The prescription of the week under way.")
    early_alerts: list[Alert] = Field(description="Raised by what is logged of it so far.")
    set_aside: list[SetAsideRecord]
    waiting: int = Field(description="Records of the week under way (judged when it ends).")
    later: int = Field(description="Records dated after the week under way.")


@router.post("/step", response_model=StepResponse)
async def step(body: StepRequest, request: Request, caller: Caller) -> StepResponse:
    """Next week's prescription from this week's prescription and records."""
    # (a week's few dozen records take well under a millisecond: on the event loop, since a
    # thread hand-off cost more CPU than the step; a bulk of them (a step of 5,000 took
    # 0.1-0.3 s) in the threadpool, where the loop goes on serving and the timeout can answer)
    if _count(body.records) <= INLINE_RECORDS:
        return _step(body, request)
    return await run_in_threadpool(_step, body, request)


def _count(records: list[Any] | str) -> int:
    return records.count("\n") + 1 if isinstance(records, str) else len(records)


def _step(body: StepRequest, request: Request) -> StepResponse:
    given = body.program or ProgramRef(
        id=body.prescription.program, version=body.prescription.program_version
    )
    compiled = compiled_program(request, given)
    log = _read(request, body.records, dt.date.today())
    try:
        result = compiled.step(body.prescription, log.records)
    except ProgressorError as exc:
        raise _unprocessable(str(exc), "prescription") from None
    stepped = locate(result.set_aside, log.arrived(SOURCE)) if result.set_aside else []
    return StepResponse(
        prescription=result.prescription,
        decisions=list(result.decisions),
        alerts=list(result.alerts),
        set_aside=positions(body.records, [*log.set_aside, *stepped]),
    )


@router.post("/replay", response_model=ReplayResponse)
def replay(body: ReplayRequest, request: Request, caller: Caller) -> ReplayResponse:
    """Every judged week of an enrollment, from its records (a fold over the step)."""
    compiled = compiled_program(request, body.program or ProgramRef(id=body.enrollment.program))
    if compiled.program.id != body.enrollment.program:
        detail = f"the enrollment is on {body.enrollment.program!r}, the program is "
        raise _unprocessable(detail + f"{compiled.program.id!r}", "enrollment.program")
    today = dt.date.today()
    as_of = body.as_of or today
    within_weeks(body.enrollment.start, as_of, "enrollment.start")
    log = _read(request, body.records, today)
    try:
        timeline = fold(compiled, body.enrollment, log.arrived(SOURCE), as_of=as_of)
    except ProgressorError as exc:
        raise _unprocessable(str(exc), "enrollment") from None
    weeks = [
        Week(
            week=k,
            prescription=r.prescription,
            decisions=list(r.decisions),
            alerts=list(r.alerts),
        )
        for k, r in enumerate(timeline.results, start=1)
    ]
    return ReplayResponse(
        weeks=weeks,
        current=timeline.current,
        early_alerts=list(timeline.early_alerts),
        set_aside=positions(body.records, [*log.set_aside, *timeline.set_aside]),
        waiting=timeline.waiting,
        later=timeline.later,
    )


def _unprocessable(detail: str, field: str) -> ProblemError:
    problem = LocatedProblem(message=detail, field=field)
    return ProblemError(422, "invalid-request", "Invalid request", detail, [problem])


def compiled_program(request: Request, given: ProgramRef) -> CompiledProgram:
    """The program `given` names (422 when unknown) or carries (422 with its problems)."""
    catalog: Catalog = request.app.state.catalog
    if given.toml is not None:
        try:
            return catalog.inline(given.toml)
        except ProgramError as exc:
            problems = program_problems(exc.problems, "program.toml")
            detail = f"the program ({INLINE_SOURCE}) is not valid: {len(problems)} problem(s)"
            raise ProblemError(
                422, "invalid-program", "Invalid program", detail, problems
            ) from None
    try:
        return catalog.named(given.id or "", given.version)
    except LookupError as exc:
        raise ProblemError(
            422,
            "unknown-program",
            "Unknown program",
            str(exc.args[0]),
            [LocatedProblem(message=str(exc.args[0]), field="program.id")],
        ) from None


def _read(request: Request, records: list[Any] | str, today: dt.date) -> Log:
    """The records through the one reader; more than the limit is refused (413)."""
    lines = records.split("\n") if isinstance(records, str) else list(map(record_line, records))
    within_limit(request, sum(1 for line in lines if line.strip()))
    return read_log(lines, SOURCE, "jsonl", today=today)


def within_limit(request: Request, count: int) -> None:
    """413 when `count` records are more than the service takes in one request."""
    limit: int = request.app.state.settings.max_records
    if count > limit:
        detail = f"{count} records: at most {limit} in one request"
        raise ProblemError(413, "too-many-records", "Too many records", detail)


def within_weeks(start: dt.date, as_of: dt.date, field: str, status: int = 422) -> None:
    """A problem when more than MAX_WEEKS weeks lie between `start` and `as_of`."""
    if ended_weeks(start, as_of) > MAX_WEEKS:
        detail = f"more than {MAX_WEEKS} weeks from the start to {as_of}: check the dates"
        problem = LocatedProblem(message=detail, field=field)
        raise ProblemError(status, "invalid-request", "Invalid request", detail, [problem])


def positions(records: list[Any] | str, items: list[SetAside]) -> list[SetAsideRecord]:
    """Each set-aside record at its position in the request: records[i] or records:LINE."""
    listed = not isinstance(records, str)
    out = []
    for item in items:
        index = item.line - 1 if listed and item.line is not None else None
        line = None if listed else item.line
        at = f"{SOURCE}[{index}]" if index is not None else f"{SOURCE}:{line}"
        out.append(
            SetAsideRecord(at=at, record=index, line=line, reason=item.reason, text=item.record)
        )
    return out
