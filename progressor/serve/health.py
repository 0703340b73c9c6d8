"""GET /healthz (the process answers) and /readyz (it can do its work): no token needed,
and nothing about patients in either answer."""

from __future__ import annotations

import logging
import sqlite3

from fastapi import APIRouter, Request
from pydantic import BaseModel

from progressor.errors import ProgressorError
from progressor.serve.problems import ProblemError
from progressor.serve.settings import ServeSettings
from progressor.store.database import Store

router = APIRouter(tags=["health"])
_log = logging.getLogger("progressor.serve")


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    programs: int
    store: bool


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses={503: {"description": "Not ready"}})
def readyz(request: Request) -> Ready:
    """Ready when the store (if the service has one) opens and programs are loaded."""
    settings: ServeSettings = request.app.state.settings
    programs = len(request.app.state.catalog)
    if settings.store is not None:
        try:
            Store.open(settings.store, readonly=True, busy_timeout=1.0).close()
        except (ProgressorError, sqlite3.Error) as exc:
            _log.error("not ready: %s", exc)  # (the path is the operator's, not the caller's)
            detail = "the store cannot be opened; the service's log says why"
            raise ProblemError(503, "not-ready", "Not ready", detail) from None
    if not programs:
        raise ProblemError(503, "not-ready", "Not ready", "no programs are loaded")
    return Ready(status="ready", programs=programs, store=settings.store is not None)
