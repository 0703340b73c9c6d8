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
from contextlib import ExitStack, contextmanager
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


#: Compiled programs by (dataset, plugins, block, signature): a worker computes partition after
#: partition with the same programs, and building an engine takes a few milliseconds, a
#: sizeable share of a partition with little new data. The signature covers the programs'
#: text, so a changed program is compiled again. Compiled programs are immutable.
_PROGRAMS: dict[tuple[object, ...], dict[str, CompiledProgram]] = {}


def _cached_programs(
    dataset: str, plugins: tuple[str, ...], block: tuple[str, ...], signature: str
) -> dict[str, CompiledProgram]:
    # The environment's allow-list and block-list shape the engine too.
    allowed = (os.environ.get("PROGRESSOR_PLUGINS"), os.environ.get("PROGRESSOR_BLOCK"))
    key = (dataset, plugins, block, signature, allowed)
    programs = _PROGRAMS.get(key)
    if programs is None:
        programs = _compiled_programs(dataset, Engine(plugins, block=block))
        if len(_PROGRAMS) >= 8:
            _PROGRAMS.clear()
        _PROGRAMS[key] = programs
    return programs


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


@contextmanager
def _open_binary(location: str, mode: str) -> Iterator[IO[bytes]]:
    if _is_url(location):
        import fsspec

        with fsspec.open(location, mode) as handle:
            yield handle
    else:
        if "w" in mode:
            Path(location).parent.mkdir(parents=True, exist_ok=True)
        with open(location, mode) as handle:
            yield handle


_BLOCK = 1 << 20  # bytes read at a time when lines do not matter


class _Table(NamedTuple):
    """One input file of a partition, split up by patient."""

    lines: dict[str, list[str]]  # each patient's lines, in file order
    ranges: dict[str, list[int]]  # each patient's byte ranges: start, end, start, end, ...
    orphans: list[str]  # lines that name no patient
    size: int  # bytes read, from the start of the file
    crc: int  # their CRC-32


def _scan(location: str, known: tuple[int, int] | None = None) -> _Table | None:
    """An input file's lines by patient, read a line at a time (memory stays flat).

    With `known` (the size and CRC-32 of the file as an earlier run read it), the file must
    still start with exactly those bytes, ending a line, and only what follows is split into
    lines; None when it does not (the file was changed, not only appended to).
    """
    table = _Table({}, {}, [], 0, 0)
    if not _exists(location):
        return table if known is None or known[0] == 0 else None
    with _open_binary(location, "rb") as handle:
        position = crc = 0
        if known is not None:
            size, last = known[0], b""
            while position < size:
                block = handle.read(min(size - position, _BLOCK))
                if not block:
                    return None  # shorter than before
                crc, position, last = zlib.crc32(block, crc), position + len(block), block[-1:]
            if crc != known[1] or (size and last != b"\n"):
                return None  # changed, or its last line was incomplete and may mean more now
        lines, ranges, orphans = table.lines, table.ranges, table.orphans
        for block in handle:
            # Binary files split at \n only; a text file (how records are read elsewhere) also
            # splits at a lone \r: such a rare line is split again, as text would be.
            for raw in block.splitlines(keepends=True) if b"\r" in block else (block,):
                crc = zlib.crc32(raw, crc)
                start, position = position, position + len(raw)
                line = raw.decode("utf-8").rstrip("\n")
                if not line.strip():
                    continue
                patient = _patient_of(line)
                if patient is None:
                    orphans.append(line)
                    continue
                lines.setdefault(patient, []).append(line)
                spans = ranges.setdefault(patient, [])
                if spans and spans[-1] == start:  # contiguous with the patient's previous line
                    spans[-1] = position
                else:
                    spans.extend((start, position))
    return table._replace(size=position, crc=crc)


def _read_spans(location: str, wanted: dict[str, list[int]]) -> dict[str, list[str]]:
    """Each wanted patient's lines, read from their byte ranges in the file."""
    found: dict[str, list[str]] = {}
    with _open_binary(location, "rb") as handle:
        for patient, spans in wanted.items():
            chunks = []
            for i in range(0, len(spans), 2):
                handle.seek(spans[i])
                chunks.append(handle.read(spans[i + 1] - spans[i]))
            raw_lines = b"".join(chunks).splitlines(keepends=True)
            lines = (raw.decode("utf-8").rstrip("\n") for raw in raw_lines)
            found[patient] = [line for line in lines if line.strip()]
    return found


def _copy(source: IO[bytes], target: IO[bytes], start: int, end: int) -> None:
    """Bytes `start` to `end` of `source`, appended to `target` a block at a time."""
    source.seek(start)
    while start < end:
        block = source.read(min(end - start, _BLOCK))
        if not block:
            raise ProgressorError("an output table is shorter than its index says")
        target.write(block)
        start += len(block)


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
    """One patient's output by table (bytes, one line per row), and the summary's counts."""

    rows: dict[str, bytes]
    counts: tuple[str, int, int, int]  # actions (one letter each: _LETTERS), paused, alerts,
    # plugin failure


def _encoded(lines: Iterable[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def _rows_of(result: StepResult, set_aside: Sequence[str]) -> _Patient:
    prescription = result.prescription
    patient, week = prescription.patient, prescription.week - 1
    rows = {
        "prescriptions": _encoded([prescription.model_dump_json()]),
        "decisions": _encoded(
            json.dumps(
                {"patient": patient, "week": week, **d.model_dump(mode="json")}, sort_keys=True
            )
            for d in result.decisions
        ),
        "alerts": _encoded(a.model_dump_json() for a in result.alerts),
        "set_aside": _encoded(
            [
                *set_aside,
                *(
                    json.dumps({"patient": patient, **s.model_dump(mode="json")})
                    for s in result.set_aside
                ),
            ]
        ),
    }
    failed = any(f.code == "plugin-failure" for f in prescription.flags)
    actions = "".join(_LETTERS[d.action] for d in result.decisions)
    paused = int(prescription.status == "paused")
    return _Patient(rows, (actions, paused, len(result.alerts), int(failed)))


#: Each action as one letter in the index. The index keeps every patient's counts and byte
#: ranges as short strings: they are loaded and saved on every run, and parsed only for the
#: patients a run computes again.
_LETTERS = {"progress": "p", "hold": "h", "regress": "r", "pause": "x"}
_ACTIONS = {letter: action for action, letter in _LETTERS.items()}
_COUNTS = ("actions", "paused", "alerts", "failures")

#: The index's layout; an index of another format is ignored (the partition is recomputed).
_INDEX_FORMAT = 4


def _text(spans: list[int]) -> str:
    return " ".join(map(str, spans))


def _spans(text: str) -> list[int]:
    return [int(n) for n in text.split()]


def _patient_hash(signature: str, enrollments: list[str], records: list[str]) -> str:
    text = "\n".join([signature, *enrollments, *sorted(records)])
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


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
    them. When its input files only grew (new lines appended, the earlier bytes unchanged:
    how new data usually arrives), only the new lines are read and only their patients are
    computed; the other patients' output is copied as bytes. Otherwise every patient's inputs
    are hashed, and a patient with the same hash as last time keeps last time's output. Either
    way the output is byte for byte that of a clean full run.
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
    if not (
        isinstance(previous, dict)
        and previous.get("format") == _INDEX_FORMAT
        and previous["signature"] == signature
        and _exists(done)
        and all(_exists(_join(out, table, name)) for table in TABLES_OUT)
    ):
        previous = None
    if previous is not None and previous["stats"] == stats:
        with _open(done, "r") as handle:
            return PartitionSummary(**{**json.load(handle), "skipped": True})
    run = _Run(dataset, out, part, as_of, tuple(plugins), tuple(block), signature, stats)
    if previous is not None:
        appended = run.appended(previous, inputs[0], inputs[1])
        if appended is not None:
            return appended
    return run.full(previous, inputs[0], inputs[1])


@dataclass(frozen=True)
class _Run:
    """One partition's computation: everything it reads and writes is named here."""

    dataset: str
    out: str
    part: int
    as_of: dt.date
    plugins: tuple[str, ...]
    block: tuple[str, ...]
    signature: str
    stats: list[list[object]]

    def full(
        self, previous: dict[str, Any] | None, enrollments_at: str, records_at: str
    ) -> PartitionSummary:
        """Every patient hashed; those whose hash changed computed, the others' output kept."""
        enrollments, records = _scan(enrollments_at), _scan(records_at)
        assert enrollments is not None and records is not None  # (None only with `known`)
        patients = sorted(enrollments.lines)
        hashes = [
            _patient_hash(self.signature, enrollments.lines[p], records.lines.get(p, []))
            for p in patients
        ]
        old: dict[str, int] = {}
        old_hashes: list[str] = []
        if previous is not None:
            old = {p: i for i, p in enumerate(previous["patients"])}
            old_hashes = previous["hashes"]
        changed = [
            p
            for p, h in zip(patients, hashes, strict=True)
            if p not in old or old_hashes[old[p]] != h
        ]
        computed = self._compute(changed, enrollments.lines, records.lines)
        problems = [f"a record without 'patient': {line[:80]}" for line in records.orphans]
        problems += [
            f"an enrollment without 'patient': {line[:80]}" for line in enrollments.orphans
        ]
        problems += [
            f"records of {p!r}, who is not enrolled"
            for p in sorted(records.lines)
            if p not in enrollments.lines
        ]
        return self._write(
            patients,
            hashes,
            [computed.get(p) or old[p] for p in patients],
            self._kept(previous) if previous is not None else None,
            problems,
            [[enrollments.size, enrollments.crc], [records.size, records.crc]],
            (
                [_text(enrollments.ranges[p]) for p in patients],
                [_text(records.ranges.get(p, [])) for p in patients],
            ),
        )

    def appended(
        self, previous: dict[str, Any], enrollments_at: str, records_at: str
    ) -> PartitionSummary | None:
        """The run when the inputs only grew since `previous`; None when they did otherwise."""
        known = [tuple(check) for check in previous["inputs"]]
        enrolled_tail = _scan(enrollments_at, (known[0][0], known[0][1]))
        records_tail = _scan(records_at, (known[1][0], known[1][1]))
        if enrolled_tail is None or records_tail is None:
            return None
        if enrolled_tail.orphans or records_tail.orphans:
            return None  # new problems to report: the full path words them
        old = {p: i for i, p in enumerate(previous["patients"])}
        if previous["problems"] and enrolled_tail.lines.keys() - old.keys():
            return None  # a new enrollment may settle an earlier problem: the full path sees it
        everyone = old.keys() | enrolled_tail.lines.keys()
        if any(p not in everyone for p in records_tail.lines):
            return None  # records of someone not enrolled: a new problem, as above
        touched = sorted(enrolled_tail.lines.keys() | records_tail.lines.keys())
        ranges: dict[str, tuple[list[int], list[int]]] = {}
        for patient in touched:
            index = old.get(patient)
            enrollment_spans = (
                _spans(previous["enrollment_ranges"][index]) if index is not None else []
            )
            record_spans = _spans(previous["record_ranges"][index]) if index is not None else []
            for spans, tail in (
                (enrollment_spans, enrolled_tail.ranges.get(patient, [])),
                (record_spans, records_tail.ranges.get(patient, [])),
            ):
                for i in range(0, len(tail), 2):
                    if spans and spans[-1] == tail[i]:
                        spans[-1] = tail[i + 1]
                    else:
                        spans.extend(tail[i : i + 2])
            ranges[patient] = (enrollment_spans, record_spans)
        enrollment_lines = _read_spans(enrollments_at, {p: r[0] for p, r in ranges.items()})
        record_lines = _read_spans(records_at, {p: r[1] for p, r in ranges.items()})
        computed = self._compute(touched, enrollment_lines, record_lines)
        patients: list[str] = previous["patients"]
        hashes: list[str] = list(previous["hashes"])
        outputs: list[_Patient | int] = list(range(len(patients)))
        enrollment_ranges: list[str] = list(previous["enrollment_ranges"])
        record_ranges: list[str] = list(previous["record_ranges"])
        if len(everyone) > len(old):  # new patients: everyone's place may move
            patients = sorted(everyone)
            at = [old.get(patient) for patient in patients]
            hashes = [previous["hashes"][i] if i is not None else "" for i in at]
            outputs = [i if i is not None else -1 for i in at]
            enrollment_ranges = [enrollment_ranges[i] if i is not None else "" for i in at]
            record_ranges = [record_ranges[i] if i is not None else "" for i in at]
        place = (
            {patient: i for i, patient in enumerate(patients)} if len(everyone) > len(old) else old
        )
        for patient, output in computed.items():
            i = place[patient]
            outputs[i] = output
            hashes[i] = _patient_hash(
                self.signature, enrollment_lines[patient], record_lines[patient]
            )
            enrollment_ranges[i], record_ranges[i] = map(_text, ranges[patient])
        return self._write(
            patients,
            hashes,
            outputs,
            self._kept(previous),
            previous["problems"],
            [[enrolled_tail.size, enrolled_tail.crc], [records_tail.size, records_tail.crc]],
            (enrollment_ranges, record_ranges),
        )

    def _compute(
        self,
        patients: Sequence[str],
        enrollment_lines: dict[str, list[str]],
        record_lines: dict[str, list[str]],
    ) -> dict[str, _Patient]:
        if not patients:
            return {}
        programs = _cached_programs(self.dataset, self.plugins, self.block, self.signature)
        out = {}
        for patient in patients:
            enrollment = Enrollment.model_validate_json(enrollment_lines[patient][0])
            log = read_log(record_lines.get(patient, []), f"records of {patient}", "jsonl")
            set_aside = [
                json.dumps({"patient": patient, **s.model_dump(mode="json")}) for s in log.set_aside
            ]
            compiled = programs.get(enrollment.program)
            if compiled is None:
                problem = f"unknown program {enrollment.program!r}"
                rows = {table: b"" for table in TABLES_OUT}
                rows["set_aside"] = _encoded([json.dumps({"patient": patient, "problem": problem})])
                out[patient] = _Patient(rows, ("", 0, 0, 0))
                continue
            history = compiled.replay(enrollment, log.records, until=self.as_of)
            newest = history[-1] if history else compiled.step(compiled.first_week(enrollment), [])
            out[patient] = _rows_of(newest, set_aside)
        return out

    def _kept(self, previous: dict[str, Any]) -> _Kept:
        """Where last run's output rows are, to copy those of patients not computed again."""
        return _Kept(previous["offsets"], previous["counts"], previous["problems"])

    def _target(self, table: str) -> str:
        return _join(self.out, table, f"{part_name(self.part)}.jsonl")

    def _unchanged(self, table: str, computed: list[tuple[int, _Patient]], kept: _Kept) -> bool:
        """Whether each patient computed again (by position, the others in place) gave the
        rows it had in `table`: then rewriting it would give last run's bytes."""
        old = kept.offsets[table]
        with _open_binary(self._target(table), "rb") as handle:
            for i, output in computed:
                handle.seek(old[i])
                if handle.read(old[i + 1] - old[i]) != output.rows[table]:
                    return False
        return True

    @staticmethod
    def _lines_in(location: str) -> int:
        count = 0
        with _open_binary(location, "rb") as handle:
            while block := handle.read(_BLOCK):
                count += block.count(b"\n")
        return count

    def _write(
        self,
        patients: list[str],
        hashes: list[str],
        outputs: list[_Patient | int],
        kept: _Kept | None,
        problems: list[str],
        inputs: list[list[int]],
        ranges: tuple[list[str], list[str]],
    ) -> PartitionSummary:
        """Write the output tables, then the index, then `_done` (last: the partition is done).

        `outputs` holds, for each patient in order, the newly computed rows or the patient's
        position in `kept` (last run's output); runs of kept patients are copied as one range.
        """
        # Not done while its tables are rewritten: a run killed in between finds no `_done`
        # and computes the partition afresh (the index's offsets would not fit the tables).
        _remove(_join(self.out, "_done", f"{part_name(self.part)}.json"))
        # Consecutive kept patients as one range (start, end) of positions in `kept`.
        segments: list[_Patient | tuple[int, int]] = []
        computed: list[tuple[int, _Patient]] = []  # each computed patient, by position
        in_place = kept is not None and len(outputs) == len(kept.offsets["prescriptions"]) - 1
        for position, output in enumerate(outputs):
            if not isinstance(output, int):
                segments.append(output)
                computed.append((position, output))
                continue
            in_place = in_place and output == position
            if (
                segments
                and not isinstance(last := segments[-1], _Patient)  # (a NamedTuple: test it first)
                and last[1] == output
            ):
                segments[-1] = (last[0], output + 1)
            else:
                segments.append((output, output + 1))
        # With everyone in place and the same problems, a table whose recomputed rows came out
        # as they were is left alone.
        in_place = in_place and kept is not None and problems == kept.problems
        offsets: dict[str, list[int]] = {}
        for table in TABLES_OUT:
            target = self._target(table)
            if in_place and kept is not None and self._unchanged(table, computed, kept):
                offsets[table] = kept.offsets[table]  # not rewritten: nothing in it changed
                continue
            temporary = f"{target}.tmp-{os.getpid()}"
            old = kept.offsets[table] if kept is not None else []
            ends = [0]
            with ExitStack() as files:
                write = files.enter_context(_open_binary(temporary, "wb"))
                source: IO[bytes] | None = None
                for segment in segments:
                    if isinstance(segment, _Patient):
                        write.write(segment.rows[table])
                        ends.append(ends[-1] + len(segment.rows[table]))
                    else:  # last run's rows, copied as they are
                        first, stop = segment
                        if source is None:
                            source = files.enter_context(_open_binary(target, "rb"))
                        _copy(source, write, old[first], old[stop])
                        shift = ends[-1] - old[first]
                        ends.extend([end + shift for end in old[first + 1 : stop + 1]])
                if table == "set_aside":
                    write.write(_encoded(json.dumps({"problem": p}) for p in problems))
            offsets[table] = ends
            _rename(temporary, target)
        set_aside = self._lines_in(self._target("set_aside"))
        # The counts by column (one list per count, a patient at the same place in each):
        # last run's lists with the recomputed patients replaced, summed in C.
        columns: list[list[Any]] = [[] for _ in _COUNTS]
        old_columns = [kept.counts[name] for name in _COUNTS] if kept else []
        if in_place:
            columns = [list(column) for column in old_columns]
            for position, output in computed:
                for column, value in zip(columns, output.counts, strict=True):
                    column[position] = value
        else:
            for output in outputs:
                row = (
                    output.counts
                    if isinstance(output, _Patient)
                    else [column[output] for column in old_columns]
                )
                for column, value in zip(columns, row, strict=True):
                    column.append(value)
        prescribed = offsets["prescriptions"]
        actions = Counter(_ACTIONS[letter] for letter in "".join(columns[0]))
        summary = PartitionSummary(
            part=self.part,
            patients=sum(1 for i in range(len(outputs)) if prescribed[i + 1] > prescribed[i]),
            actions=dict(sorted(actions.items())),
            paused=sum(columns[1]),
            alerts=sum(columns[2]),
            failures=sum(columns[3]),
            set_aside=set_aside,
        )
        _write_json(
            _join(self.out, "_index", f"{part_name(self.part)}.json"),
            {
                "format": _INDEX_FORMAT,
                "stats": self.stats,
                "signature": self.signature,
                "inputs": inputs,
                "patients": patients,
                "hashes": hashes,
                "counts": dict(zip(_COUNTS, columns, strict=True)),
                "enrollment_ranges": ranges[0],
                "record_ranges": ranges[1],
                "offsets": offsets,
                "problems": problems,
            },
        )
        with _open(_join(self.out, "_done", f"{part_name(self.part)}.json"), "w") as handle:
            handle.write(summary.to_json())
        return summary


class _Kept(NamedTuple):
    """Where each patient's rows start and end in last run's output tables (by table: one
    offset per patient and one past the last), and each patient's counts."""

    offsets: dict[str, list[int]]
    counts: dict[str, list[Any]]  # by column: _COUNTS
    problems: list[str]


def _read_json(location: str) -> Any:
    with _open(location, "r") as handle:
        return json.load(handle)


def _write_json(location: str, value: object) -> None:
    temporary = f"{location}.tmp-{os.getpid()}"
    text = json.dumps(value, separators=(",", ":"))  # in one go: json.dump streams in Python
    with _open(temporary, "w") as handle:
        handle.write(text)
    _rename(temporary, location)


def _remove(location: str) -> None:
    if _is_url(location):
        import fsspec

        fs, path = fsspec.core.url_to_fs(location)
        if fs.exists(path):
            fs.rm(path)
    else:
        Path(location).unlink(missing_ok=True)


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
