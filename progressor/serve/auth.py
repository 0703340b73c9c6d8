"""Who may call what: bearer tokens checked against the role table.

| permission | service | clinician | readonly |
| compute    | yes     | yes       | no       |
| read       | yes     | yes       | yes      |
| submit     | yes     | yes       | no       |
| act        | no      | yes       | no       |

`compute` (POST /v1/step, /v1/replay) sends a patient's records to the service. A readonly
token (a dashboard, an auditor) reads what is stored and never hands patient data over, so it
is refused those (403). `read`: a patient's results, the review queue, a program as FHIR, a
stored patient's CarePlan, the CDS Hooks discovery. `submit`: enroll, post records. `act`:
resume, override, acknowledge, recorded with the token's name as who, so only a person's
token (a clinician's) may; a service never lifts a pause.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import Request

from progressor.errors import ProgressorError
from progressor.serve.problems import ProblemError
from progressor.serve.tokens import Role, TokenEntry, TokenFile

Permission = Literal["compute", "read", "submit", "act"]
PERMISSIONS: dict[Permission, frozenset[Role]] = {
    "compute": frozenset({"service", "clinician"}),
    "read": frozenset({"service", "clinician", "readonly"}),
    "submit": frozenset({"service", "clinician"}),
    "act": frozenset({"clinician"}),
}
_log = logging.getLogger("progressor.serve")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="progressor"'}


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, "unauthorized", "Unauthorized", detail, headers=_CHALLENGE)


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("send a token: Authorization: Bearer <token>")
    return token.strip()


def requires(permission: Permission) -> Callable[[Request], Awaitable[TokenEntry]]:
    """A dependency: the caller's token entry, when its role has `permission` (else 401/403).
    The entry's name and role go to the access log (request.state)."""
    allowed = PERMISSIONS[permission]

    # (async, though it does no I/O but a stat of the tokens file: FastAPI runs a plain
    # function in its threadpool, and a thread hand-off costs more than the whole check)
    async def check(request: Request) -> TokenEntry:
        tokens: TokenFile = request.app.state.tokens
        try:
            entry = tokens.find(_bearer(request))
        except ProgressorError as exc:
            _log.error("%s", exc)  # (the path is the operator's business, not the caller's)
            detail = "the service cannot read its tokens; its log says why"
            raise ProblemError(503, "tokens-unreadable", "Service unavailable", detail) from None
        if entry is None:
            raise _unauthorized("the token is not known (create one: progressor token create)")
        request.state.token_name, request.state.token_role = entry.name, entry.role
        if entry.role not in allowed:
            roles = ", ".join(sorted(allowed))
            raise ProblemError(
                403,
                "forbidden",
                "Forbidden",
                f"role {entry.role!r} may not {permission}; roles that may: {roles}",
            )
        return entry

    return check
