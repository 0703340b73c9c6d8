"""The application: routers per area, problem details for every error, limits around all."""

from __future__ import annotations

import gc
import logging
import os
import sys
from importlib import metadata

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from progressor.core.engine import Engine
from progressor.serve import cds, compute, health, pages, patients, review
from progressor.serve import fhir as fhir_api
from progressor.serve.balance import join_board
from progressor.serve.catalog import Catalog
from progressor.serve.limits import Limits
from progressor.serve.problems import (
    PROBLEM_RESPONSES,
    ProblemError,
    internal_error,
    invalid_request,
    response,
)
from progressor.serve.settings import PROGRAMS, SETTINGS_ENV, ServeSettings
from progressor.serve.tokens import TokenFile

ROUTERS = (health.router, compute.router, fhir_api.router, cds.router)
STORE_ROUTERS = (patients.router, review.router)  # (503 no-store without --store)


def create_app(settings: ServeSettings, engine: Engine | None = None) -> FastAPI:
    """The service for `settings`; ProgressorError when a program cannot be loaded."""
    engine = engine or Engine(settings.plugins, block=settings.block, entry_points=True)
    app = FastAPI(
        title="progressor",
        version=metadata.version("progressor"),
        summary="Next week's home exercise program, explained and safe by default.",
    )
    app.state.settings = settings
    app.state.catalog = Catalog(engine, settings.programs, shipped=settings.programs == PROGRAMS)
    app.state.tokens = TokenFile(settings.tokens)
    for router in (*ROUTERS, *STORE_ROUTERS):
        app.include_router(router, responses=PROBLEM_RESPONSES)
    _handle_errors(app)
    pages.install(app)  # the clinician pages under /clinic/, their errors as HTML
    app.add_middleware(Limits, max_body=settings.max_body, timeout_s=settings.timeout_s)
    return app


def _handle_errors(app: FastAPI) -> None:
    async def problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return response(exc)

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return response(invalid_request(exc))

    async def http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 400 and exc.detail == _UNREAD_BODY:  # (FastAPI's own words)
            detail = "the body could not be read as JSON (text in UTF-8, UTF-16 or UTF-32)"
            return response(ProblemError(400, "bad-json", "Bad JSON", detail))
        slug = exc.detail.lower().replace(" ", "-") if isinstance(exc.detail, str) else "http"
        return response(ProblemError(exc.status_code, slug, str(exc.detail), str(exc.detail)))

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        return internal_error(exc)

    app.add_exception_handler(ProblemError, problem)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(Exception, unexpected)


#: What FastAPI answers a JSON body it could not read for any reason but bad JSON (one that
#: is not text in its encoding): a problem type of its own would be a type the docs never list.
_UNREAD_BODY = "There was an error parsing the body"


def factory() -> FastAPI:
    """For uvicorn's workers: the settings the serving command left in the environment."""
    _log_to_stderr()
    app = create_app(ServeSettings.from_json(os.environ[SETTINGS_ENV]))
    join_board()  # (with several workers: the connections shared out evenly between them)
    # What the worker built to serve (programs, models, routes) lives as long as it does: out
    # of the collector's reach, a full collection walks only what requests allocate.
    gc.collect()
    gc.freeze()
    return app


def _log_to_stderr() -> None:
    """progressor.serve's lines (the access log among them) on stderr, one per line."""
    logger = logging.getLogger("progressor.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
