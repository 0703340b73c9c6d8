"""A stored patient's weeks, folded now from what the store holds: the enrolment, the program
version enrolled on, the records and the clinician's actions, as `progressor recompute` folds
them (the stored results are only a cache of this fold). What the FHIR CarePlan and the CDS
cards of a stored patient say: a flare imported since the last recompute is not hidden."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from dataclasses import dataclass

from fastapi import Request

from progressor.core.engine import CompiledProgram
from progressor.core.models import Enrollment, Record, StepResult
from progressor.core.timeline import Arrived, Timeline, fold
from progressor.errors import ProgressorError
from progressor.serve.catalog import Catalog
from progressor.serve.problems import LocatedProblem, ProblemError
from progressor.serve.settings import ServeSettings
from progressor.store.batch import stored_records
from progressor.store.database import Store

_log = logging.getLogger("progressor.serve")


@dataclass(frozen=True)
class Folded:
    """One patient's timeline as of a day, with the program and the records it came from."""

    compiled: CompiledProgram
    timeline: Timeline
    records: tuple[Record, ...]

    def latest(self) -> StepResult:
        """The prescription in force now with the decisions behind it (those of the last
        judged week) and the alerts of that week and of the week under way, as `progressor
        show` prints them."""
        timeline = self.timeline
        last = timeline.results[-1] if timeline.results else None
        decisions = last.decisions if last is not None else ()
        alerts = (*(last.alerts if last is not None else ()), *timeline.early_alerts)
        return StepResult(prescription=timeline.current, decisions=decisions, alerts=alerts)


def fold_records(
    compiled: CompiledProgram, enrollment: Enrollment, arrived: list[Arrived], today: dt.date
) -> Folded:
    """The fold over the step of `arrived` for `enrollment` as of `today`."""
    return Folded(
        compiled,
        fold(compiled, enrollment, arrived, as_of=today, actions=()),
        tuple(a.record for a in arrived),
    )


def stored_patient(request: Request, patient: str, today: dt.date) -> Folded:
    """`patient`'s timeline from the service's store as of `today`; 404 when the service has
    no store or the patient is not enrolled."""
    settings: ServeSettings = request.app.state.settings
    if settings.store is None:
        detail = "this service has no store (progressor serve --store FILE)"
        raise ProblemError(404, "no-store", "No store", detail)
    try:
        with Store.open(settings.store, readonly=True, busy_timeout=5.0) as store:
            found = store.inputs([patient])
    except (ProgressorError, sqlite3.Error) as exc:
        _log.error("store: %s", exc)  # (the path is the operator's business, not the caller's)
        detail = "the store cannot be read; the service's log says why"
        raise ProblemError(503, "store-unavailable", "Store unavailable", detail) from None
    if not found:
        detail = f"patient {patient!r} is not enrolled in the store"
        problem = LocatedProblem(message=detail, field="patient")
        raise ProblemError(404, "unknown-patient", "Unknown patient", detail, [problem])
    inputs = found[0]
    catalog: Catalog = request.app.state.catalog
    compiled = catalog.inline(inputs.toml)  # (the version enrolled on, compiled once and kept)
    arrived = stored_records(inputs)
    timeline = fold(compiled, inputs.enrollment, arrived, as_of=today, actions=inputs.actions)
    return Folded(compiled, timeline, tuple(a.record for a in arrived))
