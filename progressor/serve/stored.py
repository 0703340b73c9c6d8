"""The store behind the store-backed routers: opened per request, its errors as problems.

A `Store` is not shared between threads, and FastAPI runs each request's handler in a thread
of its own: so a handler opens the store (`opened`) and closes it when it answers. Without
`--store` every store-backed route answers 503 `no-store`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request

from progressor.errors import ProgressorError, StoreConflict, StoreError, UnknownPatient
from progressor.serve.problems import LocatedProblem, ProblemError
from progressor.serve.settings import ServeSettings
from progressor.store.database import Store

_log = logging.getLogger("progressor.serve")


@contextmanager
def opened(request: Request) -> Iterator[Store]:
    """The service's store, open for one request; what it refuses, as a problem: an unknown
    patient 404 (with a close one), a request that does not fit the patient's state 409, any
    other refusal 422."""
    settings: ServeSettings = request.app.state.settings
    if settings.store is None:
        detail = "no store configured: start the service with --store FILE for these endpoints"
        raise ProblemError(503, "no-store", "No store configured", detail)
    try:
        store = Store.open(settings.store, busy_timeout=settings.timeout_s)
    except (ProgressorError, sqlite3.Error) as exc:
        _log.error("cannot open the store: %s", exc)  # (the path is the operator's business)
        detail = "the store cannot be opened; the service's log says why"
        raise ProblemError(503, "store-unavailable", "Store unavailable", detail) from None
    try:
        yield store
    except StoreError as exc:
        raise problem_of(exc) from None
    finally:
        store.close()


def problem_of(exc: StoreError) -> ProblemError:
    if isinstance(exc, UnknownPatient):
        where = LocatedProblem(message=str(exc), field="patient", suggestion=exc.suggestion)
        return ProblemError(404, "unknown-patient", "Unknown patient", str(exc), [where])
    if isinstance(exc, StoreConflict):
        return ProblemError(409, "conflict", "Conflict", str(exc))
    return ProblemError(422, "refused", "Refused by the store", str(exc))


def known(store: Store, patient: str) -> None:
    """Nothing, when `patient` is enrolled; else UnknownPatient (404)."""
    store.enrollment(patient)
