"""Partitioned datasets: a batch's input and output as files that every worker can reach.

Layout of an input dataset (a directory, or a URL that fsspec understands)::

    programs/<id>.toml                 the programs patients are enrolled on
    enrollments/part-00000.jsonl       one Enrollment per line
    records/part-00000.jsonl           outcomes and pain reports, each with its "patient"

A patient's enrollment and records always share a partition number. Computing one
partition reads only that partition and writes only its own output files::

    prescriptions/part-00000.jsonl     each patient's next-week prescription
    decisions/part-00000.jsonl         the decisions behind it, one line per exercise
    alerts/part-00000.jsonl            alerts raised in the newest week
    set_aside/part-00000.jsonl         records not used, with the reason
    _done/part-00000.json              written last: the partition's summary

A partition whose `_done` file exists is finished, so a killed run simply runs again. The
driver only schedules partitions; workers do all the reading and writing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from progressor.engine import CompiledProgram, Engine
from progressor.errors import ProgressorError
from progressor.loading import parse_program, read_log
from progressor.models import Enrollment, Record, StepResult

TABLES_OUT = ("prescriptions", "decisions", "alerts", "set_aside")


def partition_of(patient: str, partitions: int) -> int:
    """The partition a patient's enrollment and records belong to (stable across runs)."""
    return zlib.crc32(patient.encode("utf-8")) % partitions


def part_name(part: int) -> str:
    return f"part-{part:05d}"


def _is_url(location: str) -> bool:
    return "://" in location


@contextmanager
def _open(location: str, mode: str) -> Iterator[IO[str]]:
    if _is_url(location):
        import fsspec  # optional: only for URLs (s3://, gs://, ...)

        with fsspec.open(location, mode, encoding="utf-8") as handle:
            yield handle
    else:
        if "w" in mode:
            Path(location).parent.mkdir(parents=True, exist_ok=True)
        with open(location, mode, encoding="utf-8", newline="") as handle:
            yield handle


def _exists(location: str) -> bool:
    if _is_url(location):
        import fsspec

        fs, path = fsspec.core.url_to_fs(location)
        return bool(fs.exists(path))
    return Path(location).exists()


def _list(location: str, suffix: str) -> list[str]:
    if _is_url(location):
        import fsspec

        fs, path = fsspec.core.url_to_fs(location)
        protocol = location.split("://", 1)[0]
        return sorted(f"{protocol}://{p}" for p in fs.glob(f"{path}/*{suffix}"))
    folder = Path(location)
    return sorted(str(p) for p in folder.glob(f"*{suffix}")) if folder.is_dir() else []


def _join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/"), *parts])


class DatasetWriter:
    """Writes an input dataset, partitioning patients by a stable hash."""

    def __init__(self, location: str | Path, partitions: int) -> None:
        self.location, self.partitions = str(location), partitions
        self._handles: dict[tuple[str, int], IO[str]] = {}

    def program(self, program_id: str, toml_text: str) -> None:
        with _open(_join(self.location, "programs", f"{program_id}.toml"), "w") as handle:
            handle.write(toml_text)

    def _handle(self, table: str, part: int) -> IO[str]:
        key = (table, part)
        if key not in self._handles:
            path = _join(self.location, table, f"{part_name(part)}.jsonl")
            if not _is_url(path):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._handles[key] = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        return self._handles[key]

    def patient(self, enrollment: Enrollment, records: Iterable[Record]) -> None:
        part = partition_of(enrollment.patient, self.partitions)
        self._handle("enrollments", part).write(enrollment.model_dump_json() + "\n")
        out = self._handle("records", part)
        for record in records:
            data = record.model_dump(mode="json", exclude_defaults=True)
            data["patient"] = enrollment.patient
            data["kind"] = record.kind
            out.write(json.dumps(data, separators=(",", ":")) + "\n")

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()


@dataclass(frozen=True)
class PartitionSummary:
    """What computing one partition did."""

    part: int
    patients: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    paused: int = 0
    alerts: int = 0
    failures: int = 0
    set_aside: int = 0
    skipped: bool = False

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


def partitions(dataset: str | Path) -> list[int]:
    """The partition numbers of an input dataset (those with enrollments)."""
    files = _list(_join(str(dataset), "enrollments"), ".jsonl")
    return sorted(int(Path(f.split("://")[-1]).stem.split("-")[1]) for f in files)


def _compiled_programs(dataset: str, engine: Engine) -> dict[str, CompiledProgram]:
    compiled = {}
    for location in _list(_join(dataset, "programs"), ".toml"):
        with _open(location, "r") as handle:
            program = parse_program(handle.read(), location)
        compiled[program.id] = engine.compile(program)
    if not compiled:
        raise ProgressorError(f"{dataset}: no programs/*.toml in the dataset")
    return compiled


def _records_by_patient(location: str) -> tuple[dict[str, list[Record]], list[str]]:
    by_patient: dict[str, list[Record]] = {}
    problems: list[str] = []
    if not _exists(location):
        return by_patient, problems
    with _open(location, "r") as handle:
        log = read_log(handle, location, "jsonl")
    for record in log.records:
        if record.patient is None:
            problems.append(f"{location}: a record without 'patient'")
            continue
        by_patient.setdefault(record.patient, []).append(record)
    problems.extend(str(s) for s in log.set_aside)
    return by_patient, problems


def compute_partition(
    dataset: str,
    out: str,
    part: int,
    as_of: dt.date,
    plugins: Sequence[str] = (),
    block: Sequence[str] = (),
) -> PartitionSummary:
    """Compute every patient of one partition; a finished partition is not computed again."""
    done = _join(out, "_done", f"{part_name(part)}.json")
    if _exists(done):
        with _open(done, "r") as handle:
            return PartitionSummary(**{**json.load(handle), "skipped": True})
    engine = Engine(plugins, block=block)
    programs = _compiled_programs(dataset, engine)
    name = f"{part_name(part)}.jsonl"
    records, problems = _records_by_patient(_join(dataset, "records", name))
    with _open(_join(dataset, "enrollments", name), "r") as handle:
        enrollments = sorted(
            (Enrollment.model_validate_json(line) for line in handle if line.strip()),
            key=lambda e: e.patient,
        )
    results = []
    for enrollment in enrollments:
        compiled = programs.get(enrollment.program)
        if compiled is None:
            problems.append(f"{enrollment.patient}: unknown program {enrollment.program!r}")
            continue
        history = compiled.replay(enrollment, records.get(enrollment.patient, []), until=as_of)
        newest = history[-1] if history else compiled.step(compiled.first_week(enrollment), [])
        results.append(newest)
    summary = _write_partition(out, part, results, problems)
    with _open(done, "w") as handle:
        handle.write(summary.to_json())
    return summary


def _write_partition(
    out: str, part: int, results: Sequence[StepResult], problems: Sequence[str]
) -> PartitionSummary:
    rows: dict[str, list[str]] = {table: [] for table in TABLES_OUT}
    actions: Counter[str] = Counter()
    for result in results:
        patient = result.prescription.patient
        rows["prescriptions"].append(result.prescription.model_dump_json())
        for decision in result.decisions:
            actions[decision.action] += 1
            rows["decisions"].append(
                json.dumps(
                    {
                        "patient": patient,
                        "week": result.prescription.week - 1,
                        **decision.model_dump(mode="json"),
                    },
                    sort_keys=True,
                )
            )
        rows["alerts"].extend(a.model_dump_json() for a in result.alerts)
        rows["set_aside"].extend(
            json.dumps({"patient": patient, **s.model_dump(mode="json")}) for s in result.set_aside
        )
    rows["set_aside"].extend(json.dumps({"problem": p}) for p in problems)
    for table, lines in rows.items():
        target = _join(out, table, f"{part_name(part)}.jsonl")
        temporary = f"{target}.tmp-{os.getpid()}"
        with _open(temporary, "w") as handle:
            handle.writelines(line + "\n" for line in lines)
        _rename(temporary, target)
    return PartitionSummary(
        part=part,
        patients=len(results),
        actions=dict(sorted(actions.items())),
        paused=sum(1 for r in results if r.prescription.status == "paused"),
        alerts=sum(len(r.alerts) for r in results),
        failures=sum(
            1 for r in results if any(f.code == "plugin-failure" for f in r.prescription.flags)
        ),
        set_aside=len(rows["set_aside"]),
    )


def _rename(source: str, target: str) -> None:
    if _is_url(source):
        import fsspec

        fs, path = fsspec.core.url_to_fs(source)
        fs.mv(path, fsspec.core.url_to_fs(target)[1])
    else:
        os.replace(source, target)


Runner = Callable[[Sequence[int]], list[PartitionSummary]]


def run_local(
    dataset: str,
    out: str,
    as_of: dt.date,
    workers: int,
    plugins: Sequence[str] = (),
    block: Sequence[str] = (),
    parts: Sequence[int] | None = None,
) -> list[PartitionSummary]:
    """Every partition on this machine's cores (a process pool); same results for any count."""
    chosen = list(partitions(dataset) if parts is None else parts)
    if workers <= 1:
        return [compute_partition(dataset, out, p, as_of, plugins, block) for p in chosen]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(compute_partition, dataset, out, p, as_of, plugins, block) for p in chosen
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
