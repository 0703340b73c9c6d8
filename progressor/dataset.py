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
import hashlib
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

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
            if _is_url(path):
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


_PATIENT = re.compile(r'"patient"\s*:\s*"([^"\\]*)"')


def _patient_of(line: str) -> str | None:
    """The patient a JSON line belongs to, found without parsing the whole line."""
    found = _PATIENT.search(line)
    if found:
        return found.group(1)
    try:  # an escaped id, or no "patient" at all: let the JSON parser decide
        value = json.loads(line).get("patient")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _lines(location: str) -> list[str]:
    if not _exists(location):
        return []
    with _open(location, "r") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]


def _grouped(lines: Iterable[str]) -> tuple[dict[str, list[str]], list[str]]:
    by_patient: dict[str, list[str]] = {}
    orphans: list[str] = []
    for line in lines:
        patient = _patient_of(line)
        if patient is None:
            orphans.append(line)
        else:
            by_patient.setdefault(patient, []).append(line)
    return by_patient, orphans


def _stats(locations: Sequence[str]) -> list[list[object]]:
    """Size and modification time of each input: unchanged inputs need no reading at all."""
    out: list[list[object]] = []
    for location in locations:
        if _is_url(location):
            import fsspec

            fs, path = fsspec.core.url_to_fs(location)
            info = fs.info(path) if fs.exists(path) else {}
            out.append([location, info.get("size"), str(info.get("mtime", info.get("ETag")))])
        else:
            path = Path(location)
            stat = path.stat() if path.exists() else None
            out.append(
                [location, stat.st_size if stat else None, stat.st_mtime_ns if stat else None]
            )
    return out


class _Patient(NamedTuple):
    """One patient's output rows by table, and the counts the partition summary needs."""

    rows: dict[str, list[str]]
    counts: list[object]  # [actions, paused, alerts, plugin failure]


def _rows_of(result: StepResult) -> _Patient:
    prescription = result.prescription
    patient, week = prescription.patient, prescription.week - 1
    rows = {
        "prescriptions": [prescription.model_dump_json()],
        "decisions": [
            json.dumps(
                {"patient": patient, "week": week, **d.model_dump(mode="json")}, sort_keys=True
            )
            for d in result.decisions
        ],
        "alerts": [a.model_dump_json() for a in result.alerts],
        "set_aside": [
            json.dumps({"patient": patient, **s.model_dump(mode="json")}) for s in result.set_aside
        ],
    }
    failed = any(f.code == "plugin-failure" for f in prescription.flags)
    actions = [d.action for d in result.decisions]
    return _Patient(rows, [actions, prescription.status == "paused", len(result.alerts), failed])


def compute_partition(
    dataset: str,
    out: str,
    part: int,
    as_of: dt.date,
    plugins: Sequence[str] = (),
    block: Sequence[str] = (),
) -> PartitionSummary:
    """Compute one partition; only the patients whose inputs changed are computed again.

    A partition whose inputs are unchanged since its last run is skipped without reading
    them; otherwise every patient's inputs are hashed, and a patient with the same hash as
    last time keeps last time's output rows. The output is the same as a clean full run.
    """
    name = f"{part_name(part)}.jsonl"
    done = _join(out, "_done", f"{part_name(part)}.json")
    index_path = _join(out, "_index", f"{part_name(part)}.json")
    programs_dir = _join(dataset, "programs")
    inputs = [
        _join(dataset, "enrollments", name),
        _join(dataset, "records", name),
        *_list(programs_dir, ".toml"),
    ]
    stats = _stats(inputs)
    program_texts = [(p, "\n".join(_lines(p))) for p in inputs[2:]]
    signature = hashlib.sha256(
        json.dumps([str(as_of), sorted(plugins), sorted(block), program_texts]).encode()
    ).hexdigest()
    previous = _read_json(index_path) if _exists(index_path) else None
    if (
        previous
        and _exists(done)
        and previous["stats"] == stats
        and (previous["signature"] == signature)
    ):
        with _open(done, "r") as handle:
            return PartitionSummary(**{**json.load(handle), "skipped": True})

    enrollment_lines, bad_enrollments = _grouped(_lines(inputs[0]))
    record_lines, orphans = _grouped(_lines(inputs[1]))
    hashes = {
        patient: hashlib.sha1(
            "\n".join([signature, *lines, *sorted(record_lines.get(patient, []))]).encode()
        ).hexdigest()
        for patient, lines in enrollment_lines.items()
    }
    reuse: dict[str, str] = previous["hashes"] if previous else {}
    counts: dict[str, list[object]] = previous["counts"] if previous else {}
    changed = [p for p in sorted(hashes) if reuse.get(p) != hashes[p]]
    kept = _previous_rows(out, name, set(hashes) - set(changed)) if previous else {}
    computed = _compute(dataset, changed, enrollment_lines, record_lines, as_of, plugins, block)
    patients: dict[str, _Patient] = {}
    for patient in sorted(hashes):
        if patient in computed:
            patients[patient] = computed[patient]
        else:
            patients[patient] = _Patient(kept.get(patient, {}), counts[patient])
    problems = [f"a record without 'patient': {line[:80]}" for line in orphans]
    problems += [f"an enrollment without 'patient': {line[:80]}" for line in bad_enrollments]
    problems += [
        f"records of {p!r}, who is not enrolled" for p in sorted(record_lines) if p not in hashes
    ]
    summary = _write_partition(out, part, patients, problems)
    _write_json(
        index_path,
        {
            "stats": stats,
            "signature": signature,
            "hashes": hashes,
            "counts": {p: v.counts for p, v in patients.items()},
        },
    )
    with _open(done, "w") as handle:
        handle.write(summary.to_json())
    return summary


def _read_json(location: str) -> Any:
    with _open(location, "r") as handle:
        return json.load(handle)


def _write_json(location: str, value: object) -> None:
    temporary = f"{location}.tmp-{os.getpid()}"
    with _open(temporary, "w") as handle:
        json.dump(value, handle, separators=(",", ":"))
    _rename(temporary, location)


def _previous_rows(out: str, name: str, wanted: set[str]) -> dict[str, dict[str, list[str]]]:
    """Last run's output rows of the `wanted` patients, by patient and table."""
    rows: dict[str, dict[str, list[str]]] = {p: {t: [] for t in TABLES_OUT} for p in wanted}
    for table in TABLES_OUT:
        for line in _lines(_join(out, table, name)):
            patient = _patient_of(line)
            if patient in rows:
                rows[patient][table].append(line)
    return rows


def _compute(
    dataset: str,
    patients: Sequence[str],
    enrollment_lines: dict[str, list[str]],
    record_lines: dict[str, list[str]],
    as_of: dt.date,
    plugins: Sequence[str],
    block: Sequence[str],
) -> dict[str, _Patient]:
    if not patients:
        return {}
    programs = _compiled_programs(dataset, Engine(plugins, block=block))
    out = {}
    for patient in patients:
        enrollment = Enrollment.model_validate_json(enrollment_lines[patient][0])
        log = read_log(record_lines.get(patient, []), f"records of {patient}", "jsonl")
        compiled = programs.get(enrollment.program)
        if compiled is None:
            problem = f"unknown program {enrollment.program!r}"
            line = json.dumps({"patient": patient, "problem": problem})
            out[patient] = _Patient(
                {**{t: [] for t in TABLES_OUT}, "set_aside": [line]}, [[], False, 0, False]
            )
            continue
        history = compiled.replay(enrollment, log.records, until=as_of)
        newest = history[-1] if history else compiled.step(compiled.first_week(enrollment), [])
        computed = _rows_of(newest)
        computed.rows["set_aside"][:0] = [
            json.dumps({"patient": patient, **s.model_dump(mode="json")}) for s in log.set_aside
        ]
        out[patient] = computed
    return out


def _write_partition(
    out: str, part: int, patients: dict[str, _Patient], problems: Sequence[str]
) -> PartitionSummary:
    actions: Counter[str] = Counter()
    tables: dict[str, list[str]] = {table: [] for table in TABLES_OUT}
    for patient in patients.values():
        for table in TABLES_OUT:
            tables[table].extend(patient.rows.get(table, []))
        patient_actions = patient.counts[0]
        assert isinstance(patient_actions, list)
        actions.update(patient_actions)
    tables["set_aside"].extend(json.dumps({"problem": p}) for p in problems)
    for table, lines in tables.items():
        target = _join(out, table, f"{part_name(part)}.jsonl")
        temporary = f"{target}.tmp-{os.getpid()}"
        with _open(temporary, "w") as handle:
            handle.writelines(line + "\n" for line in lines)
        _rename(temporary, target)
    return PartitionSummary(
        part=part,
        patients=sum(1 for p in patients.values() if p.rows.get("prescriptions")),
        actions=dict(sorted(actions.items())),
        paused=sum(1 for p in patients.values() if p.counts[1]),
        alerts=sum(int(str(p.counts[2])) for p in patients.values()),
        failures=sum(1 for p in patients.values() if p.counts[3]),
        set_aside=len(tables["set_aside"]),
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
