"""Errors as RFC 9457 problem details (application/problem+json), never a stack trace.

A problem's `type` is `urn:progressor:problem:<slug>` (docs/serve.md lists them); `problems`
lists the located problems: the request field, the key path inside a program, the line or the
record index, and a suggestion where one helps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from progressor.errors import Problem, format_path

MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("progressor.serve")


class LocatedProblem(BaseModel):
    """One problem of a request, where it is."""

    model_config = ConfigDict(extra="forbid")

    message: str
    #: The request field, e.g. `prescription.week` or `program.toml`.
    field: str | None = None
    #: The key path inside a program's TOML, e.g. `exercises[0].progression.strategy`.
    key: str | None = None
    #: The line of the program's TOML or of JSONL records (1 = the first line).
    line: int | None = None
    #: The index in a list of records (0 = the first record).
    record: int | None = None
    suggestion: str | None = None


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, with the located problems."""

    model_config = ConfigDict(extra="forbid")

    type: str
    title: str
    status: int
    detail: str
    problems: list[LocatedProblem] = []


_STATUSES = {
    400: "Bad request: not JSON, or (CDS Hooks) not a valid request",
    401: "No token, or an unknown one",
    403: "The token's role may not do this",
    404: "No such program, patient or store",
    413: "The body or its records are over the limits",
    422: "The request is not valid: every problem located",
    503: "Timed out, or the store or the tokens cannot be read",
}
_SCHEMA = {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
#: What every operation may answer besides its own success, for the OpenAPI document.
PROBLEM_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ProblemDetails, "description": words, "content": {MEDIA_TYPE: _SCHEMA}}
    for status, words in _STATUSES.items()
}


class ProblemError(Exception):
    """Raised by a handler: answered as problem details with `status`."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        problems: Sequence[LocatedProblem] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        Exception.__init__(self, detail)  # (not super(): BodyProblem's next is HTTPException)
        self.details = ProblemDetails(
            type=f"urn:progressor:problem:{slug}",
            title=title,
            status=status,
            detail=detail,
            problems=list(problems),
        )
        self.headers: Mapping[str, str] | None = headers


class BodyProblem(ProblemError, HTTPException):
    """A problem found while reading a request's body. It is an HTTPException too, so that
    FastAPI's body parsing lets it through as it is (any other error there becomes a bare
    400 "There was an error parsing the body"); its handler is ProblemError's."""

    def __init__(self, status: int, slug: str, title: str, detail: str) -> None:
        ProblemError.__init__(self, status, slug, title, detail)
        self.status_code = status
        self.detail = detail


def response(error: ProblemError) -> JSONResponse:
    return JSONResponse(
        error.details.model_dump(exclude_none=True),
        status_code=error.details.status,
        headers=error.headers,
        media_type=MEDIA_TYPE,
    )


def internal_error(exc: BaseException) -> JSONResponse:
    """A 500 for what nobody foresaw: logged here in full, answered without internals."""
    _log.error("unexpected error", exc_info=exc)
    return response(
        ProblemError(500, "internal", "Internal error", "the request could not be answered")
    )


def program_problems(problems: Sequence[Problem], field: str) -> list[LocatedProblem]:
    """A program's located problems (as `progressor check` prints them), for a response."""
    return [
        LocatedProblem(
            message=p.message,
            field=field,
            key=format_path(p.path) or None,
            line=p.line,
            suggestion=p.suggestion,
        )
        for p in problems
    ]


def field_path(loc: Sequence[str | int]) -> str:
    """A request field as it reads in JSON: `records[2].pain`, without FastAPI's `body.`."""
    parts = tuple(loc[1:] if loc and loc[0] == "body" else loc)
    return format_path(parts) or "body"


def invalid_request(exc: RequestValidationError, status: int = 422) -> ProblemError:
    """A request FastAPI could not validate, each problem at its field (CDS Hooks wants 400)."""
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = "the body is not valid JSON: " + "; ".join(
            str(e.get("ctx", {}).get("error", e.get("msg"))) for e in errors
        )
        return ProblemError(400, "bad-json", "Bad JSON", detail)
    problems = [
        LocatedProblem(
            # (pydantic prefixes a validator's own sentence with "Value error, ")
            message=str(e.get("msg")).removeprefix("Value error, "),
            field=field_path(tuple(e.get("loc", ()))),
        )
        for e in errors
    ]
    detail = f"the request is not valid: {len(problems)} problem(s)"
    return ProblemError(status, "invalid-request", "Invalid request", detail, problems)
