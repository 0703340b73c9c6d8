"""Partitioned datasets: a batch's input and output as files that every worker can reach.

Layout of an input dataset (a directory, or a URL that fsspec understands)::

    programs/<id>.toml                 the programs patients are enrolled on
    enrollments/part-00000.jsonl       one Enrollment per line
    records/part-00000.jsonl           outcomes and pain reports, each with its "patient"

A partition may be Parquet instead (enrollments/part-00000.parquet and
records/part-00000.parquet: progressor.dataset.parquet).

A patient's enrollment and records always share a partition number. Computing one
partition reads only that partition and writes only its own output files::

    prescriptions/part-00000.jsonl     each patient's next-week prescription
    decisions/part-00000.jsonl         the decisions behind it, one line per exercise
    alerts/part-00000.jsonl            every alert so far, the week under way's too
    set_aside/part-00000.jsonl         records not used, with the reason
    _done/part-00000.json              written last: the partition's summary

With `out_format="parquet"` each table is `<table>/part-00000.parquet` (a fixed schema:
progressor.dataset.parquet.COLUMNS), written from its JSONL rows kept in `_jsonl/`.

A partition whose `_done` file exists is finished, so a killed run simply runs again. The
driver only schedules partitions; workers do all the reading and writing.
"""

from __future__ import annotations

import datetime as dt
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from progressor.core.models import Enrollment, Record
from progressor.dataset import files
from progressor.dataset.files import part_name
from progressor.dataset.parquet import record_line
from progressor.dataset.partition import PartitionSummary, compute_partition, engine_for
from progressor.errors import ProgressorError

__all__ = [
    "DatasetWriter",
    "merge",
    "merge_paths",
    "partition_of",
    "partitions",
    "run_dask",
    "run_local",
]


def partition_of(patient: str, partitions: int) -> int:
    """The partition a patient's enrollment and records belong to (stable across runs)."""
    return zlib.crc32(patient.encode("utf-8")) % partitions


class DatasetWriter:
    """Writes an input dataset, partitioning patients by a stable hash."""

    def __init__(self, location: str | Path, partitions: int) -> None:
        self.location, self.partitions = str(location), partitions
        self._handles: dict[tuple[str, int], IO[str]] = {}

    def program(self, program_id: str, toml_text: str) -> None:
        with files.open_text(
            files.join(self.location, "programs", f"{program_id}.toml"), "w"
        ) as handle:
            handle.write(toml_text)

    def _handle(self, table: str, part: int) -> IO[str]:
        key = (table, part)
        if key not in self._handles:
            path = files.join(self.location, table, f"{part_name(part)}.jsonl")
            if files.is_url(path):
                import fsspec

                self._handles[key] = fsspec.open(path, "w", encoding="utf-8").open()
            else:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                self._handles[key] = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        return self._handles[key]

    def patient(self, enrollment: Enrollment, records: Iterable[Record]) -> None:
        part = partition_of(enrollment.patient, self.partitions)
        self._handle("enrollments", part).write(enrollment.model_dump_json() + "\n")
        out = self._handle("records", part)
        for record in records:
            out.write(record_line(record, enrollment.patient) + "\n")

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()


def partitions(dataset: str | Path) -> list[int]:
    """The partition numbers of an input dataset (those with enrollments, JSONL or Parquet);
    a ProgressorError when it has no enrollments folder (a mistyped path must not be a run
    of no patients that reports success)."""
    folder = files.join(str(dataset), "enrollments")
    if not files.exists(folder):
        raise ProgressorError(
            f"{dataset}: no dataset here (no enrollments/ folder): a dataset holds "
            "enrollments/, records/ and programs/ (README, 'When one machine is not enough')"
        )
    found = [*files.listing(folder, ".jsonl"), *files.listing(folder, ".parquet")]
    return sorted({int(Path(f.split("://")[-1]).stem.split("-")[1]) for f in found})


Runner = Callable[[Sequence[int]], list[PartitionSummary]]


def run_local(
    dataset: str,
    out: str,
    as_of: dt.date,
    workers: int,
    plugins: Sequence[str] = (),
    block: Sequence[str] = (),
    parts: Sequence[int] | None = None,
    engine: str = "patients",
    out_format: str = "jsonl",
) -> list[PartitionSummary]:
    """Every partition on this machine's cores (a process pool); same results for any count.
    `engine`: who computes the patients (compute_partition); the output is the same.
    `out_format`: the output tables' format, "jsonl" or "parquet"."""
    chosen = list(partitions(dataset) if parts is None else parts)
    run = (dataset, out)
    if workers <= 1:
        return [
            compute_partition(*run, p, as_of, plugins, block, engine, out_format) for p in chosen
        ]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    engine_for(plugins, block)  # built once here: forked workers start with it
    # polars' threads do not survive a fork: where this process may have run polars (a
    # partition computed here in columns, an embedding service), workers are spawned.
    spawn = engine != "patients" and "polars" in sys.modules
    context = multiprocessing.get_context("spawn") if spawn else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [
            pool.submit(compute_partition, *run, p, as_of, plugins, block, engine, out_format)
            for p in chosen
        ]
        return [f.result() for f in futures]


def run_dask(
    dataset: str,
    out: str,
    as_of: dt.date,
    scheduler: Any,
    plugins: Sequence[str] = (),
    block: Sequence[str] = (),
    parts: Sequence[int] | None = None,
    engine: str = "patients",
    out_format: str = "jsonl",
) -> list[PartitionSummary]:
    """Every partition as a task on a Dask distributed cluster; the driver only schedules.

    `scheduler` is an address ("tcp://host:8786") or a distributed.Client.
    """
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - depends on the optional extra
        raise ProgressorError("the dask executor needs: pip install 'progressor[dask]'") from None
    chosen = list(partitions(dataset) if parts is None else parts)
    connect: Any = Client  # distributed ships no type hints
    client: Any = scheduler if isinstance(scheduler, Client) else connect(scheduler)
    try:
        futures = client.map(
            compute_partition,
            [dataset] * len(chosen),
            [out] * len(chosen),
            chosen,
            [as_of] * len(chosen),
            [tuple(plugins)] * len(chosen),
            [tuple(block)] * len(chosen),
            [engine] * len(chosen),
            [out_format] * len(chosen),
            pure=False,
        )
        results: list[PartitionSummary] = client.gather(futures)
        return results
    finally:
        if client is not scheduler:
            client.close()


def merge(summaries: Iterable[PartitionSummary]) -> dict[str, Any]:
    """One summary of a whole run."""
    actions: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for s in summaries:
        actions.update(s.actions)
        total.update(
            {
                "partitions": 1,
                "patients": s.patients,
                "paused": s.paused,
                "alerts": s.alerts,
                "failures": s.failures,
                "set_aside": s.set_aside,
                "skipped": int(s.skipped),
            }
        )
    return {**dict(total), "actions": dict(sorted(actions.items()))}


def merge_paths(summaries: Iterable[PartitionSummary]) -> dict[str, int]:
    """How many patients each engine computed in a run (`--engine columns` or `auto`)."""
    paths: Counter[str] = Counter()
    for s in summaries:
        paths.update(s.paths)
    return dict(sorted(paths.items()))
