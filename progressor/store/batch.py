"""Recompute a clinic: every patient whose week has ended gets next week's prescription.

Each due patient is replayed from week 1 as a fold over `CompiledProgram.step`, with the
clinician's actions applied at their weeks, and all of that patient's prescriptions,
decisions and alerts replace the stored ones. Workers (forked processes, or spawned where fork
is not offered) open the store
read-only and only compute; the parent alone writes, one transaction per batch of patients,
and marks each patient computed at the data version its snapshot saw. So a run can be killed
at any moment and run again, and a second run finds nothing to do. One run of a store at a
time, and no worker outlives its run: progressor.store.processes.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import TypeAdapter

from progressor.core.engine import CompiledProgram, Engine
from progressor.core.models import (
    Outcome,
    PainReport,
)
from progressor.core.timeline import Arrived, ended_weeks, fold
from progressor.engines import column_engine_wanted
from progressor.errors import ProgressorError
from progressor.reading import parse_program
from progressor.store.columns import Covered, StoreColumns
from progressor.store.database import Store
from progressor.store.processes import (
    RunLock,
    die_with_parent,
    lock_path,
    run_lock,
    sigint_held,
)
from progressor.store.unheard import judge as judge_unheard
from progressor.store.values import (
    AlertRow,
    PatientInputs,
    PatientResults,
    decision_row,
    prescription_row,
)

#: Builds the engine a worker computes with; with workers > 1 it must pickle (a module-level
#: function or a functools.partial of one), since each spawned worker calls it once.
EngineFactory = Callable[[], Engine]
Progress = Callable[[int, int], None]
#: What a worker builds its `_Computer` from: the store's path, the engine, the plugins, as_of,
#: and whether the column engine computes the patients it covers.
_ComputerArgs = tuple[str, EngineFactory | None, tuple[str, ...], dt.date, bool]


@dataclass(frozen=True)
class PatientFailure:
    """A patient who could not be computed at all; their previous results stay."""

    patient: str
    error: str


@dataclass(frozen=True)
class Summary:
    """What a recompute did. The counts describe the newest week of the patients computed."""

    as_of: dt.date
    enrolled: int
    due: int  # patients with a newly ended week or new records or actions
    computed: int
    up_to_date: int  # started patients with nothing new: skipped
    not_started: int  # never computed, no week has ended and nothing logged: nothing to do
    actions: Mapping[str, int] = field(default_factory=dict)  # progress / hold / regress / pause
    alerts: int = 0
    plugin_failures: int = 0  # patients held by the fail-safe (a `plugin-failure` flag)
    failures: tuple[PatientFailure, ...] = ()
    #: Patients stored by each engine ("columns", "patients"), failures per patient.
    paths: Mapping[str, int] = field(default_factory=dict)


class _Computed(NamedTuple):
    results: PatientResults
    actions: tuple[str, ...]  # the newest week's decisions
    alerts: int
    plugin_failure: bool
    by_columns: bool = False  # computed by the column engine (recompute's `engine`)


#: Patients a batch computes and stores in one transaction (the default). The column engine
#: evaluates a batch at once: larger batches spread its fixed cost a call (polars plans and
#: frames) over more patients: 250 -> 1,000 is about a fifth more patients per CPU-second.
_BATCH = 250
_COLUMN_BATCH = 1_000

#: The fewest batches worth spawning worker processes for (where they cannot be forked).
_POOL_BATCHES = 8

#: At most this many due patients (and at most an eighth of the clinic) are listed at once
#: through the indexes; more are read a page at a time in patient order.
_FEW = 100_000


def recompute(
    store_path: str | Path,
    *,
    as_of: dt.date,
    engine_factory: EngineFactory | None = None,
    plugins: Sequence[str] = (),
    workers: int = 1,
    progress: Progress | None = None,
    patients: Sequence[str] = (),
    batch_size: int | None = None,
    wait: float = 0.0,
    lock: RunLock | None = None,
    engine: str = "patients",
) -> Summary:
    """Recompute every due patient (or the due ones among `patients`) as of the day `as_of`.

    The engine comes from `engine_factory`, else `Engine(plugins=plugins)`. `workers` > 1
    computes in that many worker processes (0: one per core) when there are at least two
    batches (forked; _POOL_BATCHES where workers must be spawned); the results are the same
    for any number. Each batch of `batch_size` patients (default 250; 1,000 with the column
    engine) is stored in one transaction; `progress(done, total)` is called after each.

    One run of a store at a time: the run takes the store's run lock, waiting up to `wait`
    seconds for another run to end (RecomputeRunning if it does not), unless the caller holds
    it already and passes it as `lock` (the command line holds it while it sends alerts too).

    `engine` chooses who computes: "patients" (the per-patient engine), "columns" (the column
    engine, progressor.columns, for the patients it covers: one judged week, no clinician
    actions; the others per patient) or "auto" (columns where polars is installed and at least
    AUTO_SMALLEST patients are due, progressor.engines). The
    stored results are the same whichever it is; `Summary.paths` counts who computed whom.
    """
    workers = workers or os.cpu_count() or 1
    # polars' threads do not survive a fork: where this process may have used polars before
    # (an earlier run, a dataset computed here), workers are spawned, never forked.
    polars_before = "polars" in sys.modules
    column_engine_wanted(engine, 0)  # (an unknown engine, or columns without polars: an error now)
    # Results computed with other code are stale (an upgrade, other plugins): the engine is
    # built here first, so a plugin that cannot load fails the run before any work.
    built = engine_factory() if engine_factory else Engine(plugins=plugins)
    signature = built.signature
    Store.open(store_path).close()  # a clear error, and no lock file, where there is no store
    with ExitStack() as stack:
        if lock is None:
            lock = stack.enter_context(run_lock(store_path, wait))
        elif lock.path != lock_path(store_path):
            raise ProgressorError(f"{lock.path} is not the run lock of {store_path}")
        # Counted under the lock: a run that waited for another sees what that one left due.
        with Store.open(store_path) as store:
            store.computed_with(signature)
            enrolled, not_started, due_all = store.count_patients(as_of)
            due = len(store.due(as_of, patients=patients)) if patients else due_all
        # (As a dataset's partition: with "auto", a few due patients go per patient.)
        columns = column_engine_wanted(engine, due)
        batch_size = batch_size or (_COLUMN_BATCH if columns else _BATCH)
        args: _ComputerArgs = (str(store_path), engine_factory, tuple(plugins), as_of, columns)
        # Forked workers start in milliseconds; spawned ones (where fork is not offered) import
        # everything again, half a second or so: worth it only for several batches a worker.
        # (Linux only: on macOS CPython counts fork as unsafe, system libraries may not survive
        # it; nor where polars may be running threads: see polars_before.)
        fork = sys.platform.startswith("linux") and not (columns and polars_before)
        batches = -(-due // batch_size)
        workers = min(workers, batches) if batches >= (2 if fork else _POOL_BATCHES) else 1
        pool = None
        if workers > 1:
            # The workers are started before the store is opened again: a forked process must
            # not inherit an open SQLite connection (each worker opens its own, read-only).
            # A forked worker closes its copy of the lock: the lock must go with the parent.
            context = multiprocessing.get_context("fork" if fork else "spawn")
            start = (args, os.getpid(), lock.fd if fork else None)
            pool = stack.enter_context(ProcessPoolExecutor(workers, context, _start_worker, start))
            with _worker_deaths(), sigint_held():
                pool.submit(int).result()  # (every worker is started by the first task)
        store = stack.enter_context(Store.open(store_path))
        judge_unheard(store, built)
        tally = _Tally(due, progress)
        if not patients and due <= min(enrolled // 8, _FEW):
            # A nightly run: the few due patients found through the store's indexes.
            few = store.due_few(as_of)
            chunks: Iterator[list[str]] = (
                few[i : i + batch_size] for i in range(0, len(few), batch_size)
            )
        else:
            chunks = _chunks(store, as_of, batch_size, patients)
        if pool is None:
            computer = _Computer(*args)
            try:
                for chunk in chunks:
                    tally.store(store, computer.compute(chunk))
            finally:
                computer.close()
        else:
            _in_pool(store, chunks, tally, pool, workers)
    return tally.summary(as_of, enrolled, not_started, enrolled - not_started - due_all)


def _chunks(
    store: Store, as_of: dt.date, size: int, patients: Sequence[str]
) -> Iterator[list[str]]:
    """Due patients in key order, a page at a time: never the whole clinic in memory."""
    after = ""
    while chunk := store.due(as_of, after=after, limit=size, patients=patients):
        yield chunk
        if len(chunk) < size:  # the last page: asking again would scan the rest for nothing
            return
        after = chunk[-1]


def _in_pool(
    store: Store,
    chunks: Iterator[list[str]],
    tally: _Tally,
    pool: ProcessPoolExecutor,
    workers: int,
) -> None:
    # A bounded window of chunks in flight keeps memory flat; storing in submission order
    # keeps the batches, and so the transactions, the same from run to run. Unlike
    # multiprocessing.Pool, the executor reports a worker that died (BrokenProcessPool)
    # instead of waiting for its result forever.
    pending: deque[Future[list[_Computed]]] = deque()
    try:
        with _worker_deaths():
            for chunk in chunks:
                pending.append(pool.submit(_work, chunk))
                if len(pending) >= 2 * workers:
                    tally.store(store, pending.popleft().result())
            while pending:
                tally.store(store, pending.popleft().result())
    finally:
        for future in pending:
            future.cancel()


@contextmanager
def _worker_deaths() -> Iterator[None]:
    """A worker that died (killed, or by the system out of memory) is a clear error, not a
    BrokenProcessPool traceback; what was stored stays, and the next run does the rest."""
    try:
        yield
    except BrokenProcessPool:
        raise ProgressorError(
            "a recompute worker process ended unexpectedly (killed, or out of memory?): the "
            "patients stored so far keep their new results; run recompute again for the rest"
        ) from None


class _Tally:
    """Stores each computed batch and counts what the summary reports."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.progress = total, progress
        self.done = self.computed = self.alerts = self.plugin_failures = 0
        self.actions: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self.failures: list[PatientFailure] = []

    def store(self, store: Store, batch: list[_Computed]) -> None:
        store.write_results([c.results for c in batch])
        for c in batch:
            self.paths["columns" if c.by_columns else "patients"] += 1
            if c.results.error is not None:
                self.failures.append(PatientFailure(c.results.patient, c.results.error))
                continue
            self.computed += 1
            self.actions.update(c.actions)
            self.alerts += c.alerts
            self.plugin_failures += c.plugin_failure
        self.done += len(batch)
        if self.progress is not None:
            self.progress(self.done, self.total)

    def summary(self, as_of: dt.date, enrolled: int, not_started: int, up_to_date: int) -> Summary:
        return Summary(
            as_of=as_of,
            enrolled=enrolled,
            due=self.total,
            computed=self.computed,
            up_to_date=up_to_date,
            not_started=not_started,
            actions={a: self.actions[a] for a in ("progress", "hold", "regress", "pause")},
            alerts=self.alerts,
            plugin_failures=self.plugin_failures,
            failures=tuple(self.failures),
            paths={p: self.paths[p] for p in ("columns", "patients") if self.paths[p]},
        )


# -- computing (in a worker process, or in the parent when workers == 1) -----------------------


class _Computer:
    """A read-only view of the store and an engine; compiles each program version once."""

    def __init__(
        self,
        store_path: str,
        engine_factory: EngineFactory | None,
        plugins: tuple[str, ...],
        as_of: dt.date,
        columns: bool = False,
    ) -> None:
        self.engine = engine_factory() if engine_factory else Engine(plugins=plugins)
        self.store = Store.open(store_path, readonly=True)
        self.as_of = as_of
        self.programs: dict[tuple[str, str], CompiledProgram | str] = {}
        self.columns = StoreColumns(as_of) if columns else None

    def close(self) -> None:
        self.store.close()

    def compute(self, patients: Sequence[str]) -> list[_Computed]:
        batch = [(inputs, self._compiled(inputs)) for inputs in self.store.inputs(patients)]
        covered = self._by_columns(batch)
        return [
            _Computed(*covered[p], 0, False, True)
            if (p := inputs.enrollment.patient) in covered
            else self._patient(inputs, compiled)
            for inputs, compiled in batch
        ]

    def _by_columns(
        self, batch: list[tuple[PatientInputs, CompiledProgram | str]]
    ) -> dict[str, Covered]:
        """The patients of `batch` the column engine computes (none without it)."""
        if self.columns is None:
            return {}
        try:
            return self.columns.compute(batch)
        except Exception:  # the per-patient engine computes them all, and words any failure
            return {}

    def _compiled(self, inputs: PatientInputs) -> CompiledProgram | str:
        key = (inputs.enrollment.program, inputs.program_version)
        if key not in self.programs:
            try:
                program = parse_program(inputs.toml, f"store:{key[0]}@{key[1]}")
                self.programs[key] = self.engine.compile(program)
            except ProgressorError as exc:
                self.programs[key] = f"program {key[0]!r} {key[1]} cannot be compiled: {exc}"
        return self.programs[key]

    def _patient(self, inputs: PatientInputs, compiled: CompiledProgram | str) -> _Computed:
        patient = inputs.enrollment.patient
        weeks = max(ended_weeks(inputs.enrollment.start, self.as_of), inputs.computed_weeks)
        try:
            if isinstance(compiled, str):
                raise ProgressorError(compiled)
            return _fold(compiled, inputs, weeks)
        except Exception as exc:  # one patient's failure must not stop the clinic's batch
            error = f"{type(exc).__name__}: {exc}"
            return _Computed(
                PatientResults(patient, inputs.data_version, weeks, error=error), (), 0, False
            )


def _fold(compiled: CompiledProgram, inputs: PatientInputs, weeks: int) -> _Computed:
    """Weeks 1..`weeks` of one patient as a fold over step, clinician actions applied."""
    enrollment = inputs.enrollment
    timeline = fold(
        compiled,
        enrollment,
        stored_records(inputs),
        as_of=enrollment.start,
        weeks=weeks,
        actions=inputs.actions,
    )
    decisions = [
        decision_row(week, d)
        for week, result in enumerate(timeline.results, start=1)
        for d in result.decisions
    ]
    # The week under way is not judged, but an alert in what is logged so far (a flare, an
    # adverse event, a red flag) must not wait for the week to end: it is stored with that
    # week's number now, and the same alert when the week ends is the same row.
    alerts = [
        AlertRow(a.week, a.rule, a.plugin, a.message, int(a.urgent))
        for a in (*(a for r in timeline.results for a in r.alerts), *timeline.early_alerts)
    ]
    results = PatientResults(
        enrollment.patient,
        inputs.data_version,
        weeks,
        tuple(prescription_row(p) for p in timeline.prescriptions),
        tuple(decisions),
        tuple(alerts),
        set_aside=timeline.set_aside,
        computed_at=inputs.read_at,
        computed_import=inputs.read_import,
    )
    newest = timeline.results[-1] if timeline.results else None
    failed = any(f.code == "plugin-failure" for f in timeline.current.flags)
    raised = (len(newest.alerts) if newest else 0) + len(timeline.early_alerts)
    return _Computed(
        results, tuple(d.action for d in newest.decisions) if newest else (), raised, failed
    )


def stored_records(inputs: PatientInputs) -> list[Arrived]:
    """A patient's records, each with when it arrived (None: not known) and where it was
    read (also what the service folds a stored patient from: progressor.serve.folded)."""
    outcomes = inputs.outcomes_arrived or (None,) * len(inputs.outcomes)
    reports = inputs.pain_reports_arrived or (None,) * len(inputs.pain_reports)
    outcomes_from = inputs.outcomes_from or (("", None),) * len(inputs.outcomes)
    reports_from = inputs.pain_reports_from or (("", None),) * len(inputs.pain_reports)
    records = [
        *zip(_stored(inputs.outcomes, _OUTCOMES), outcomes, outcomes_from, strict=True),
        *zip(_stored(inputs.pain_reports, _REPORTS), reports, reports_from, strict=True),
    ]
    return [Arrived(record, at, *where) for record, at, where in records]


#: The stored records of one kind, validated as one JSON array (one call per patient). They
#: are the canonical JSON the import wrote from records it had read and validated, so
#: pydantic's validation is the check (a damaged row fails the patient, named in the error).
_OUTCOMES = TypeAdapter(list[Outcome]).validator.validate_json
_REPORTS = TypeAdapter(list[PainReport]).validator.validate_json


def _stored(texts: Sequence[str], validate: Callable[[str], list[Any]]) -> list[Any]:
    return validate("[" + ",".join(texts) + "]") if texts else []


# -- the worker process ----------------------------------------------------------------------

_WORKER: _Computer | str | None = None


def _start_worker(args: _ComputerArgs, parent: int, inherited_lock: int | None) -> None:
    die_with_parent(parent, inherited_lock)  # no worker outlives its run, even a kill -9 of it
    # An initializer that raises makes the pool start new workers forever: keep the error
    # and report it from the first task instead.
    global _WORKER
    try:
        _WORKER = _Computer(*args)
    except Exception as exc:
        _WORKER = f"{type(exc).__name__}: {exc}"


def _work(patients: list[str]) -> list[_Computed]:
    if not isinstance(_WORKER, _Computer):
        raise ProgressorError(f"the recompute worker could not start: {_WORKER}")
    return _WORKER.compute(patients)
