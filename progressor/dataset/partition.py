"""Computing one partition of a dataset: incremental, resumable, byte for byte repeatable.

A worker runs compute_partition for one partition: it reads only that partition's inputs,
writes only its outputs, and keeps an index (`_index/`) of sizes, checksums and each
patient's byte ranges, so that the next run reads only what is new (see
progressor.dataset.run for the layout).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from operator import gt
from typing import IO, Any, NamedTuple

from pydantic import ValidationError

from progressor.core.engine import CompiledProgram, Engine
from progressor.core.models import (
    Alert,
    Decision,
    Enrollment,
    StepResult,
    ids_meant,
    same_id_loosely,
)
from progressor.core.timeline import NOBODYS_RULE, Arrived, fold, raised_by_any
from progressor.dataset import files, parquet
from progressor.dataset.index import index_location, read_index, write_index
from progressor.engines import AUTO_SMALLEST as AUTO_SMALLEST  # (imported from here too)
from progressor.engines import check_engine, column_engine_wanted
from progressor.errors import ProgressorError
from progressor.reading import Log, Row, parse_program, read_log, record_reason
from progressor.reading.records import (
    held,
    kept_for,
    meant_by_several,
    rows_log,
    spelled_otherwise,
)

TABLES_OUT = ("prescriptions", "decisions", "alerts", "set_aside")
#: A JSONL partition's (empty) Parquet scan: nothing is ever added to it.
_NO_SCAN = parquet.Scanned()


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
    #: Patients computed in this run by each engine (`--engine`): "columns", "patients".
    paths: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


def _compiled_programs(dataset: str, engine: Engine) -> dict[str, CompiledProgram]:
    """The dataset's programs by id (an enrollment names its program by id). Two files of one
    id are refused: which one a patient is on would be decided by the files' names."""
    compiled: dict[str, CompiledProgram] = {}
    found: dict[str, str] = {}
    for location in files.listing(files.join(dataset, "programs"), ".toml"):
        with files.open_text(location, "r") as handle:
            program = parse_program(handle.read(), location)
        if program.id in found:
            raise ProgressorError(
                f"{found[program.id]} and {location} both hold program {program.id!r} "
                f"(versions {compiled[program.id].program.version} and {program.version}): "
                "an enrollment names its program by id, so a dataset holds one file of each; "
                "keep the version its patients are on"
            )
        found[program.id] = location
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
    key = (dataset, plugins, block, signature)
    programs = _PROGRAMS.get(key)
    if programs is None:
        programs = _compiled_programs(dataset, engine_for(plugins, block))
        if len(_PROGRAMS) >= 8:
            _PROGRAMS.clear()
        _PROGRAMS[key] = programs
    return programs


#: Engines by (plugin modules, block list): the command line names every plugin to load (the
#: installed ones it allows too), so a worker builds the same engine anywhere. Building one
#: (plugin manager, registries) takes about 15 ms; an engine is immutable. A local run builds
#: it before its worker processes fork, so that they start with it.
_ENGINES: dict[tuple[object, ...], Engine] = {}


def engine_for(plugins: Sequence[str], block: Sequence[str]) -> Engine:
    key = (tuple(plugins), tuple(block))
    engine = _ENGINES.get(key)
    if engine is None:
        engine = Engine(plugins, block=block)
        # (Its code signature now: the plugins' source files are read once, and the workers a
        # local run forks from this process start with it.)
        _ = engine.signature
        if len(_ENGINES) >= 8:
            _ENGINES.clear()
        _ENGINES[key] = engine
    return engine


#: The column engine of each programs dict (its decisions are kept between partitions).
_COLUMNS: list[tuple[dict[str, CompiledProgram], Any]] = []


def _column_engine(programs: dict[str, CompiledProgram], engine: str, patients: int) -> Any:
    """The column engine for `programs` when a run of `patients` patients with `engine` wants
    it (column_engine_wanted), or None for the per-patient engine alone."""
    if engine != "patients" and "polars" not in sys.modules:
        # One polars thread per process: a batch's parallelism is its partitions, one worker
        # process each; polars' own threads on the same cores cost more CPU than they save
        # (docs/performance.md). A POLARS_MAX_THREADS the clinic set is kept.
        os.environ.setdefault("POLARS_MAX_THREADS", "1")
    if not column_engine_wanted(engine, patients):
        return None
    from progressor.columns.engine import ColumnEngine

    for known, column_engine in _COLUMNS:
        if known is programs:
            return column_engine
    _COLUMNS[:] = [(programs, ColumnEngine(programs))]
    return _COLUMNS[0][1]


class _Patient(NamedTuple):
    """One patient's output by table (bytes, one line per row), and the summary's counts."""

    rows: dict[str, bytes]
    counts: tuple[str, int, int, int]  # actions (one letter each: _LETTERS), paused, alerts,
    # plugin failure


def _encoded(lines: Iterable[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def _decision_row(patient: str, week: int, decision: Decision) -> str:
    """A decisions row: the patient and the week, then the decision's fields as pydantic
    writes the model's JSON (as the other tables' rows are written: their fields in the
    models' order, no spaces; a third of the cost of a dict dumped with sorted keys)."""
    return f'{{"patient":{_json_text(patient)},"week":{week},{decision.model_dump_json()[1:]}'


_json_text = json.JSONEncoder(ensure_ascii=False).encode


def _rows_of(result: StepResult, set_aside: Sequence[str]) -> _Patient:
    prescription = result.prescription
    patient, week = prescription.patient, prescription.week - 1
    rows = {
        "prescriptions": _encoded([prescription.model_dump_json()]),
        "decisions": _encoded(_decision_row(patient, week, d) for d in result.decisions),
        "alerts": _encoded(a.model_dump_json() for a in result.alerts),
        "set_aside": _encoded(set_aside),  # (the step's own included: see _Run._patient)
    }
    failed = any(f.code == "plugin-failure" for f in prescription.flags)
    actions = "".join(_LETTERS[d.action] for d in result.decisions)
    paused = int(prescription.status == "paused")
    return _Patient(rows, (actions, paused, len(result.alerts), int(failed)))


#: Each action as one letter in the index. The index keeps every patient's byte ranges as
#: short strings: they are loaded and saved on every run, and parsed only for the patients a
#: run computes again.
_LETTERS = {"progress": "p", "hold": "h", "regress": "r", "pause": "x"}
_ACTIONS = {letter: action for action, letter in _LETTERS.items()}
_COUNTS = ("actions", "paused", "alerts", "failures")


def _text(spans: list[int]) -> str:
    return " ".join(map(str, spans))


def _spans(text: str) -> list[int]:
    return [int(n) for n in text.split()]


def _output_sizes(out: str, part: int, out_format: str) -> list[object]:
    """The size of each output table (None for a missing one); with Parquet output, of the
    JSONL tables kept in `_jsonl/` (what a re-run copies rows from) and the Parquet ones."""
    name = files.part_name(part)
    tables = [files.join(_tables_at(out, out_format), t, f"{name}.jsonl") for t in TABLES_OUT]
    if out_format == "parquet":
        tables += [files.join(out, t, f"{name}.parquet") for t in TABLES_OUT]
    return [entry[1] for entry in files.stats(tables)]


def _tables_at(out: str, out_format: str) -> str:
    """Where a partition's JSONL output tables are: `out` itself, or `out/_jsonl` when the
    output is Parquet (each Parquet table is written from its JSONL one)."""
    return out if out_format == "jsonl" else files.join(out, "_jsonl")


def _patient_hash(signature: str, enrollments: list[str], records: list[str]) -> str:
    text = "\n".join([signature, *enrollments, *sorted(records)])
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def _enrollment(lines: list[str], problems: list[tuple[str, int, str, str]]) -> Enrollment | None:
    """A patient's enrollment from their enrollment lines; None, with the problems added,
    when one cannot be read or the patient is enrolled more than once with different details
    (the same enrollment written twice, however spaced, is one)."""
    # (Windows line ends; a byte-order mark, which a file's first line may start with, as the
    # record reader reads it.)
    lines = [line.rstrip("\r").removeprefix("\ufeff") for line in lines]
    found: list[Enrollment] = []
    for n, line in enumerate(lines, start=1):
        try:
            found.append(Enrollment.model_validate_json(line))
        except ValidationError as exc:
            problems.append(("enrollments", n, record_reason(exc, Enrollment), line))
    if len(found) < len(lines):
        return None
    if any(other != found[0] for other in found[1:]):
        different = len({e.model_dump_json() for e in found})
        reason = (
            f"one of {different} different enrollments of this patient: the patient is not "
            "computed until only one is left"
        )
        problems += [("enrollments", n, reason, line) for n, line in enumerate(lines, start=1)]
        return None
    return found[0]


def _loose(records: dict[str, list[str]], enrolled: set[str]) -> dict[str, str]:
    """Each id with records and no enrollment that names an enrolled patient but for case or
    spaces, and that patient (same_id_loosely)."""
    found = {}
    for written in records.keys() - enrolled:
        patient = same_id_loosely(written, enrolled)
        if patient is not None:
            found[written] = patient
    return found


def _not_computed(
    patient: str,
    lines: list[str],
    log: Log,
    problems: list[tuple[str, int, str, str]],
    programs: dict[str, CompiledProgram],
    missing: str = "",
) -> Alert | None:
    """A patient who cannot be computed (their enrollment cannot be used, or with `missing`,
    why there is none): every record line is set aside, and an alert says so, urgent when
    the records hold a flare (pain 7 or more, an adverse event, a flare or a symptom flag):
    no prescription must not mean no alarm."""
    listed = {n for table, n, _, _ in problems if table == "records"}
    reason = "not used: the patient is not computed until their enrollment is fixed"
    if missing:
        reason = f"not used: {missing}"
    problems += [
        ("records", n, reason, line.rstrip("\r"))
        for n, line in enumerate(lines, start=1)
        if n not in listed and line.strip()
    ]
    if not log.records:
        return None
    found = held(log.records)
    raised = raised_by_any(programs.values(), log.records)
    return Alert(
        patient=patient,
        week=0,  # (no enrollment: no week)
        rule=NOBODYS_RULE,
        plugin="progressor",
        message=(
            f"not computed: {missing or 'the enrollment cannot be used (see set_aside)'}; the "
            f"patient's records hold {', '.join(found) or 'no pain scores'}: fix the "
            "enrollment and review the patient"
        ),
        # Urgent when the safety rules would raise an alert on these records (a flare, an
        # adverse event, a red flag): the rules' own thresholds, not a copy of them here.
        urgent=bool(raised),
    )


def _aside_rows(
    patient: str,
    found: list[tuple[str, int, str, str]],
    numbers: dict[str, dict[str, list[int]]],
    name: str,
) -> list[str]:
    """A patient's set_aside rows: each line with its file and line number (`numbers`, in the
    order found), and the records the step set aside, described."""
    rows, seen = [], {"enrollments": 0, "records": 0}
    for table, _, reason, line in found:
        if table:
            where: dict[str, Any] = {"source": f"{table}/{name}"}
            where["line"] = numbers[table][patient][seen[table]]
            seen[table] += 1
        else:  # the step's: the week's record, described
            where = {"source": "week", "line": None}
        rows.append(json.dumps({"patient": patient, **where, "reason": reason, "record": line}))
    return rows


def compute_partition(
    dataset: str,
    out: str,
    part: int,
    as_of: dt.date,
    plugins: Sequence[str] = (),
    block: Sequence[str] = (),
    engine: str = "patients",
    out_format: str = "jsonl",
) -> PartitionSummary:
    """Compute one partition; only the patients whose inputs changed are computed again.

    A partition whose inputs are unchanged since its last run is skipped without reading
    them. When its input files only grew (new lines appended, the earlier bytes unchanged:
    how new data usually arrives), only the new lines are read and only their patients are
    computed; the other patients' output is copied as bytes. Otherwise every patient's inputs
    are hashed, and a patient with the same hash as last time keeps last time's output. Either
    way the output is byte for byte that of a clean full run.

    The inputs may be Parquet files instead of JSONL (progressor.dataset.parquet): a Parquet
    partition whose files changed is computed in full. `out_format` "parquet" writes each
    output table as Parquet too (progressor.dataset.parquet.COLUMNS).

    `engine` chooses who computes: "patients" (the per-patient engine), "columns" (the
    column engine, progressor.columns, for the patients it covers; the others per-patient)
    or "auto" (columns when polars is installed and the run computes AUTO_SMALLEST patients
    of the partition or more). The output is the same whichever it is.

    A file that cannot be read or written (a folder where a file should be, a read-only
    output, a full disk) is a ProgressorError naming the partition and the file.
    """
    try:
        return _compute_partition(dataset, out, part, as_of, plugins, block, engine, out_format)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise ProgressorError(
            f"partition {part}: {where}{exc.strerror or exc} (a folder where a file should be, "
            "a read-only output or a full disk? fix it and run again: partitions done are kept)"
        ) from None


def _compute_partition(
    dataset: str,
    out: str,
    part: int,
    as_of: dt.date,
    plugins: Sequence[str],
    block: Sequence[str],
    engine: str,
    out_format: str,
) -> PartitionSummary:
    check_engine(engine)  # (before any work)
    if out_format not in parquet.FORMATS:
        raise ProgressorError(f"unknown output format {out_format!r} (one of: jsonl, parquet)")
    if out_format == "parquet":
        parquet.pyarrow()  # before anything is read: a clear error without the extra
    in_format = parquet.input_format(dataset, part)
    name = f"{files.part_name(part)}.{in_format}"
    done = files.join(out, "_done", f"{files.part_name(part)}.json")
    index_path = index_location(out, part)
    programs_dir = files.join(dataset, "programs")
    inputs = [
        files.join(dataset, "enrollments", name),
        files.join(dataset, "records", name),
        *files.listing(programs_dir, ".toml"),
    ]
    stats = files.stats(inputs)
    program_texts = [(p, "\n".join(files.text_lines(p))) for p in inputs[2:]]
    # What the output depends on besides the inputs: a run after an upgrade of progressor or
    # of a plugin, or with other plugins or another block-list, computes every patient afresh.
    code = engine_for(plugins, block).signature
    # (A Parquet partition's lines are made of its rows: not the lines of a JSONL one.)
    formats = [in_format] if in_format != "jsonl" else []
    key = [str(as_of), program_texts, code, *formats]
    signature = hashlib.sha256(json.dumps(key).encode()).hexdigest()
    previous = read_index(index_path)
    if not (
        previous is not None
        and previous["signature"] == signature
        and files.exists(done)
        # The output as last written: a table changed since (truncated, edited) is rewritten.
        and previous.get("sizes") == _output_sizes(out, part, out_format)
    ):
        previous = None
    if previous is not None and previous["stats"] == stats:
        finished = _finished(done)
        if finished is not None:
            return finished
        previous = None  # (its marker damaged: computed afresh, the marker written again)
    run = _Run(
        *(dataset, out, part, as_of, tuple(plugins), tuple(block), signature, stats, engine),
        input_format=in_format,
        out_format=out_format,
    )
    if in_format == "parquet":  # rewritten whole, not appended to: computed in full
        return run.full(None, inputs[0], inputs[1])
    if previous is not None:
        appended = run.appended(previous, inputs[0], inputs[1])
        if appended is not None:
            return appended
    return run.full(previous, inputs[0], inputs[1])


def _finished(done: str) -> PartitionSummary | None:
    """The summary of a partition skipped as done, from its marker (nothing computed now: no
    paths); None when the marker cannot be read (an empty file a full disk left, say)."""
    try:
        with files.open_text(done, "r") as handle:
            return PartitionSummary(**{**json.load(handle), "skipped": True, "paths": {}})
    except (OSError, ValueError, TypeError):
        return None


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
    engine: str = "patients"
    #: Patients computed by each engine so far in this run (filled by _compute).
    paths: dict[str, int] = field(default_factory=dict)
    input_format: str = "jsonl"
    out_format: str = "jsonl"
    #: With Parquet input: the records file as scanned (filled by full): each patient's
    #: record Rows as the reader reads them (rows_of), or their rows read in columns.
    scanned: list[parquet.Scanned] = field(default_factory=list)
    #: The partition's enrolled patients (filled by full and appended): an id with records
    #: and no enrollment is told the enrolled one it may mean.
    enrolled: set[str] = field(default_factory=set)
    #: Ids with records and no enrollment that differ from an enrolled one in case or spaces
    #: only (same_id_loosely), and that one: their pains count for its safety rules.
    loose: dict[str, str] = field(default_factory=dict)

    def full(
        self, previous: dict[str, Any] | None, enrollments_at: str, records_at: str
    ) -> PartitionSummary:
        """Every patient hashed; those whose hash changed computed, the others' output kept."""
        enrollments, records = self._scan(enrollments_at, records_at)
        self.enrolled.update(enrollments.lines)
        self.loose.update(_loose(records.lines, self.enrolled))
        also: dict[str, list[str]] = {}  # (each enrolled patient's loosely named lines)
        for written, patient in self.loose.items():
            also.setdefault(patient, []).extend(records.lines[written])
        # Whoever has lines: a patient with records and no enrollment here is not computed,
        # but their records are set aside line by line and an alert says what they hold (a
        # pain of 9 under an id typed otherwise, or filed in another partition, must reach a
        # clinician).
        patients = sorted(enrollments.lines.keys() | records.lines.keys())
        # (A patient's output depends on their lines, the loosely named lines that count for
        # them, and, with no enrollment, on which enrolled id theirs may mean: all hashed.)
        hashes = [
            _patient_hash(
                self.signature,
                enrollments.lines.get(p) or [self._no_enrollment(p)],
                [*records.lines.get(p, []), *also.get(p, [])],
            )
            for p in patients
        ]
        old, changed = self._changed(previous, patients, hashes)
        computed = self._compute(
            changed,
            enrollments.lines,
            records.lines,
            {p: (enrollments.ranges.get(p, []), records.ranges.get(p, [])) for p in changed},
        )
        problems = [
            *self._orphans("records", "a record", records, records_at),
            *self._orphans("enrollments", "an enrollment", enrollments, enrollments_at),
            *self._undecoded("records", records, records_at),
            *self._undecoded("enrollments", enrollments, enrollments_at),
            *self._unenrolled(enrollments, records),
        ]
        columns = _Columns(
            patients,
            hashes,
            [computed.get(p) or old[p] for p in patients],
            [_text(enrollments.ranges.get(p, [])) for p in patients],
            [_text(records.ranges.get(p, [])) for p in patients],
        )
        kept = self._kept(previous) if previous is not None else None
        inputs = [[enrollments.size, enrollments.crc], [records.size, records.crc]]
        return self._write(columns, kept, problems, inputs)

    def _scan(
        self, enrollments_at: str, records_at: str
    ) -> tuple[files.PatientLines, files.PatientLines]:
        """Each input's lines by patient: a Parquet file's rows made lines (the scan kept in
        `scanned`: its record Rows, or its rows read in columns), their row numbers where a
        JSONL file's byte ranges are."""
        if self.input_format == "parquet":
            read = parquet.scan_records(records_at, self.engine)
            self.scanned.append(read)
            return parquet.scan_enrollments(enrollments_at).table, read.table
        enrollments, records = files.scan(enrollments_at), files.scan(records_at)
        assert enrollments is not None and records is not None  # (None only with `known`)
        return enrollments, records

    def appended(
        self, previous: dict[str, Any], enrollments_at: str, records_at: str
    ) -> PartitionSummary | None:
        """The run when the inputs only grew since `previous`; None when they did otherwise."""
        old = dict(zip(previous["patients"], range(len(previous["patients"])), strict=True))
        tails = self._tails(previous, old, enrollments_at, records_at)
        if tails is None:
            return None
        enrolled_tail, records_tail = tails
        ranges_of = zip(previous["patients"], previous["enrollment_ranges"], strict=True)
        self.enrolled.update({p for p, spans in ranges_of if spans} | enrolled_tail.lines.keys())
        touched = sorted(enrolled_tail.lines.keys() | records_tail.lines.keys())
        ranges = {
            patient: self._grown_spans(previous, old.get(patient), patient, tails)
            for patient in touched
        }
        enrollment_lines = files.read_spans(enrollments_at, {p: r[0] for p, r in ranges.items()})
        record_lines = files.read_spans(records_at, {p: r[1] for p, r in ranges.items()})
        computed = self._compute(touched, enrollment_lines, record_lines, ranges)
        everyone = old.keys() | enrolled_tail.lines.keys()
        moved = len(everyone) > len(old)  # new patients: everyone's place may move
        columns = self._placed(previous, old, sorted(everyone) if moved else None)
        place = {patient: i for i, patient in enumerate(columns.patients)} if moved else old
        for patient, output in computed.items():
            i = place[patient]
            columns.outputs[i] = output
            columns.hashes[i] = _patient_hash(
                self.signature, enrollment_lines[patient], record_lines[patient]
            )
            columns.enrollment_ranges[i], columns.record_ranges[i] = map(_text, ranges[patient])
        return self._write(
            columns,
            self._kept(previous),
            previous["problems"],
            [[enrolled_tail.size, enrolled_tail.crc], [records_tail.size, records_tail.crc]],
            None if moved else sorted((old[p], o) for p, o in computed.items()),
        )

    def _compute(
        self,
        patients: Sequence[str],
        enrollment_lines: dict[str, list[str]],
        record_lines: dict[str, list[str]],
        spans: dict[str, tuple[list[int], list[int]]],
    ) -> dict[str, _Patient]:
        """Each patient's output rows. `spans` holds each patient's byte ranges in the
        enrollments and records files: a line set aside is reported with its line number."""
        if not patients:
            return {}
        programs = _cached_programs(self.dataset, self.plugins, self.block, self.signature)
        name = f"{files.part_name(self.part)}.{self.input_format}"
        out: dict[str, _Patient] = {}
        # (A few patients with auto: the per-patient engine is the cheaper, and polars is not
        # even imported. Who computed whom is counted with --engine columns or auto only.)
        columns = _column_engine(programs, self.engine, len(patients))
        if columns is None and self.engine != "patients":
            self.paths["patients"] = self.paths.get("patients", 0) + len(patients)
        if columns is not None:
            # A row the reader set aside goes per patient, with the reader's verdict: its
            # line (the row's text) is not the column engine's to read again.
            # (Parquet: the rows the reader read; none yet of the patients read in columns.)
            read_rows = self._records.rows
            salvaged = {p for p in patients if any(r.record is None for r in read_rows.get(p, ()))}
            # (And a patient with no enrollment: not computed, the per-patient path says so;
            # and one whose pains are also under an id spelled otherwise.)
            salvaged |= {p for p in patients if not enrollment_lines.get(p)}
            salvaged |= set(self.loose.values()).intersection(patients)
            plain = [p for p in patients if p not in salvaged] if salvaged else patients
            # (A Parquet file's patients whose rows were read in columns: from those columns.)
            fast = set(self._records.fast)
            read = [p for p in plain if p in fast]
            plain = [p for p in plain if p not in fast] if read else plain
            covered, patients = columns.compute(plain, enrollment_lines, record_lines, self.as_of)
            if read:
                table = self._records.fields
                more, rest = columns.compute(read, enrollment_lines, {}, self.as_of, table)
                covered.update(more)
                patients = [*patients, *rest]
            patients = [*patients, *sorted(salvaged)]
            out.update((p, _Patient(*rows)) for p, rows in covered.items())
            self.paths["columns"] = self.paths.get("columns", 0) + len(covered)
            self.paths["patients"] = self.paths.get("patients", 0) + len(patients)
        # Patients with lines set aside wait for their line numbers, found at the end for all
        # in one pass: (result or None, [(table, position among the patient's lines, reason,
        # line)]). The others' rows are made at once (a partition's results are not all kept
        # alive: the garbage collector would walk them again and again).
        flagged: dict[str, tuple[StepResult | Alert | None, list[tuple[str, int, str, str]]]] = {}
        for patient in patients:
            problems: list[tuple[str, int, str, str]] = []
            result = self._patient(patient, programs, enrollment_lines, record_lines, problems)
            if problems:
                flagged[patient] = (result, problems)
            elif isinstance(result, StepResult):
                out[patient] = _rows_of(result, [])
        numbers: dict[str, dict[str, list[int]]] = {}
        for t, table in enumerate(("enrollments", "records")):
            wanted = {
                patient: (spans[patient][t], [n for tb, n, _, _ in found if tb == table])
                for patient, (_, found) in flagged.items()
                if any(tb == table for tb, _, _, _ in found)
            }
            if wanted and self.input_format == "parquet":  # (spans: the row numbers)
                numbers[table] = {p: [rows[n - 1] for n in at] for p, (rows, at) in wanted.items()}
            elif wanted:
                numbers[table] = files.line_numbers(files.join(self.dataset, table, name), wanted)
        for patient, (result, found) in flagged.items():
            rows = _aside_rows(patient, found, numbers, name)
            if isinstance(result, StepResult):
                out[patient] = _rows_of(result, rows)
                continue
            tables = {table: b"" for table in TABLES_OUT}
            tables["set_aside"] = _encoded(rows)
            if result is not None:
                tables["alerts"] = _encoded([result.model_dump_json()])
            out[patient] = _Patient(tables, ("", 0, int(result is not None), 0))
        return out

    def _patient(
        self,
        patient: str,
        programs: dict[str, CompiledProgram],
        enrollment_lines: dict[str, list[str]],
        record_lines: dict[str, list[str]],
        problems: list[tuple[str, int, str, str]],
    ) -> StepResult | Alert | None:
        """One patient's newest week; when they cannot be computed, the alert that says so
        (None without records); the lines set aside are added to `problems`."""
        # A patient with records and no enrollment here is not computed (None: said below).
        enrollment = (
            _enrollment(enrollment_lines[patient], problems)
            if enrollment_lines.get(patient)
            else None
        )
        lines = self._lines(patient, record_lines)
        log = self._log(patient, lines)
        problems += [
            ("records", s.line or 0, s.reason, lines[(s.line or 1) - 1].rstrip("\r"))
            for s in log.set_aside
        ]
        if not enrollment_lines.get(patient):
            missing = self._no_enrollment(patient)
            return _not_computed(patient, lines, log, problems, programs, missing)
        if enrollment is None:
            return _not_computed(patient, lines, log, problems, programs)
        compiled = programs.get(enrollment.program)
        if compiled is None:
            known = ", ".join(sorted(programs)) or "none"
            reason = f"unknown program {enrollment.program!r} (programs/ holds: {known})"
            problems.append(("enrollments", 1, reason, enrollment_lines[patient][0].rstrip("\r")))
            return _not_computed(patient, lines, log, problems, programs)
        arrived = log.arrived("records")
        if patient in self.loose.values():  # (pains under an id spelled otherwise: theirs)
            arrived += [
                Arrived(kept)
                for written, mine in sorted(self.loose.items())
                if mine == patient
                for record in self._log(written, self._lines(written, record_lines)).records
                if (kept := kept_for(patient, record)) is not None
            ]
        try:
            # The run's day is the day the records are read: one dated later is set aside
            # and its pain kept as of that day (the output stays a function of the inputs).
            timeline = fold(compiled, enrollment, arrived, as_of=self.as_of)
        except ProgressorError as exc:  # overrides the program refuses, say
            problems.append(("enrollments", 1, str(exc), enrollment_lines[patient][0].rstrip("\r")))
            return _not_computed(patient, lines, log, problems, programs)
        history = timeline.results
        # Before the first week has ended: week 1's prescription, nothing decided yet.
        newest = history[-1] if history else StepResult(prescription=timeline.current, decisions=())
        # Records the step set aside in any week replayed, not only the newest: the output
        # holds the newest week's decisions, but every record that could not be used is
        # reported (as the log reader's are, whatever their week), at its line.
        problems += [
            ("records", s.line, s.reason, lines[s.line - 1].rstrip("\r"))
            if s.line
            else ("", 0, s.reason, s.record)  # (not found: never expected)
            for s in timeline.set_aside
        ]
        # Every alert so far, not only the newest week's (the output is the state of the
        # patient, as the store keeps it): a late record that paused an earlier week (the
        # newest week then only says the pause goes on) must still reach a clinician; and the
        # week under way's, which does not wait for it to end (with that week's number).
        earlier = [a for r in history[:-1] for a in r.alerts]
        if earlier or timeline.early_alerts:
            alerts = (*earlier, *newest.alerts, *timeline.early_alerts)
            newest = newest.model_copy(update={"alerts": alerts})
        return newest

    def _kept(self, previous: dict[str, Any]) -> _Kept:
        """Where last run's output rows are, to copy those of patients not computed again."""
        return _Kept(previous["offsets"], previous["counts"], previous["problems"])

    def _target(self, table: str) -> str:
        """A JSONL output table (the Parquet ones are written from these)."""
        tables = _tables_at(self.out, self.out_format)
        return files.join(tables, table, f"{files.part_name(self.part)}.jsonl")

    def _unchanged(self, table: str, computed: list[tuple[int, _Patient]], kept: _Kept) -> bool:
        """Whether each patient computed again (by position, the others in place) gave the
        rows it had in `table`: then rewriting it would give last run's bytes."""
        old = kept.offsets[table]
        with files.open_binary(self._target(table), "rb") as handle:
            for i, output in computed:
                handle.seek(old[i])
                if handle.read(old[i + 1] - old[i]) != output.rows[table]:
                    return False
        return True

    @staticmethod
    def _lines_in(location: str) -> int:
        count = 0
        with files.open_binary(location, "rb") as handle:
            while block := handle.read(files.BLOCK):
                count += block.count(b"\n")
        return count

    def _write(
        self,
        columns: _Columns,
        kept: _Kept | None,
        problems: list[str],
        inputs: list[list[int]],
        changed_in_place: list[tuple[int, _Patient]] | None = None,
    ) -> PartitionSummary:
        """Write the output tables, then the index, then `_done` (last: the partition is done).

        `columns.outputs` holds, for each patient in order, the newly computed rows or the
        patient's position in `kept` (last run's output); runs of kept patients are copied as
        one range. `changed_in_place`, when given, says that every kept patient is at its old
        position, and lists the computed ones (by position, in order): the usual re-run, set
        out without a step per kept patient.
        """
        # Not done while its tables are rewritten: a run killed in between finds no `_done`
        # and computes the partition afresh (the index's offsets would not fit the tables).
        files.remove(self._done())
        outputs = columns.outputs
        same_count = kept is not None and len(outputs) == len(kept.offsets["prescriptions"]) - 1
        if changed_in_place is not None and same_count:
            computed, everyone_in_place = changed_in_place, True
            segments = self._segments_in_place(changed_in_place, len(outputs))
        else:
            segments, computed, in_order = self._segments(outputs)
            everyone_in_place = same_count and in_order
        # With everyone in place and the same problems, a table whose recomputed rows came out
        # as they were is left alone.
        in_place = everyone_in_place and kept is not None and problems == kept.problems
        offsets: dict[str, list[int]] = {}
        for table in TABLES_OUT:
            if in_place and kept is not None and self._unchanged(table, computed, kept):
                offsets[table] = kept.offsets[table]  # not rewritten: nothing in it changed
            else:
                offsets[table] = self._write_table(table, segments, kept, problems)
        if self.out_format == "parquet":  # each rewritten whole, from its JSONL table
            for table in TABLES_OUT:
                target = files.join(self.out, table, f"{files.part_name(self.part)}.parquet")
                parquet.write_table(table, files.text_lines(self._target(table)), target)
        self._remove_other_format()
        counts = self._counts(outputs, computed, kept, in_place)
        summary = self._summary(offsets, counts)
        self._write_index(columns, counts, offsets, problems, inputs)
        with files.open_text(self._done(), "w") as handle:
            handle.write(summary.to_json())
        return summary

    # -- the parts of _write ----------------------------------------------------------------

    def _remove_other_format(self) -> None:
        """The partition's tables as an earlier run wrote them in the other output format:
        removed, so that no reader of `out` finds last week's rows beside this run's."""
        name = files.part_name(self.part)
        if self.out_format == "parquet":
            stale = [files.join(self.out, table, f"{name}.jsonl") for table in TABLES_OUT]
        else:
            stale = [files.join(self.out, table, f"{name}.parquet") for table in TABLES_OUT]
            stale += [
                files.join(self.out, "_jsonl", table, f"{name}.jsonl") for table in TABLES_OUT
            ]
        for location in stale:
            files.remove(location)

    def _done(self) -> str:
        return files.join(self.out, "_done", f"{files.part_name(self.part)}.json")

    @staticmethod
    def _segments_in_place(
        computed: list[tuple[int, _Patient]], count: int
    ) -> list[_Patient | tuple[int, int]]:
        """The output as the computed patients' rows between ranges of kept ones (start, end
        of positions in last run's output), each kept patient at its old position."""
        segments: list[_Patient | tuple[int, int]] = []
        start = 0
        for position, rows in computed:
            if start < position:
                segments.append((start, position))
            segments.append(rows)
            start = position + 1
        if start < count:
            segments.append((start, count))
        return segments

    @staticmethod
    def _segments(
        outputs: list[_Patient | int],
    ) -> tuple[list[_Patient | tuple[int, int]], list[tuple[int, _Patient]], bool]:
        """The output as computed rows and ranges of consecutive kept patients (start, end of
        positions in last run's output); each computed patient by position; and whether
        every kept patient is at its old position."""
        segments: list[_Patient | tuple[int, int]] = []
        computed: list[tuple[int, _Patient]] = []
        in_order = True
        for position, output in enumerate(outputs):
            if not isinstance(output, int):
                segments.append(output)
                computed.append((position, output))
                continue
            in_order = in_order and output == position
            if (
                segments
                and not isinstance(last := segments[-1], _Patient)  # (a NamedTuple: test it first)
                and last[1] == output
            ):
                segments[-1] = (last[0], output + 1)
            else:
                segments.append((output, output + 1))
        return segments, computed, in_order

    def _write_table(
        self,
        table: str,
        segments: list[_Patient | tuple[int, int]],
        kept: _Kept | None,
        problems: list[str],
    ) -> list[int]:
        """Write one output table (through a temporary file), and return where each
        patient's rows end in it (after a first 0)."""
        target = self._target(table)
        temporary = f"{target}.tmp-{os.getpid()}"
        old = kept.offsets[table] if kept is not None else []
        ends = [0]
        with ExitStack() as stack:
            write = stack.enter_context(files.open_binary(temporary, "wb"))
            source: IO[bytes] | None = None
            for segment in segments:
                if isinstance(segment, _Patient):
                    write.write(segment.rows[table])
                    ends.append(ends[-1] + len(segment.rows[table]))
                    continue
                # last run's rows, copied as they are
                first, stop = segment
                if source is None:
                    source = stack.enter_context(files.open_binary(target, "rb"))
                files.copy_range(source, write, old[first], old[stop])
                shift = ends[-1] - old[first]
                ends.extend([end + shift for end in old[first + 1 : stop + 1]])
            if table == "set_aside":
                write.write(_encoded(json.dumps({"problem": p}) for p in problems))
        files.rename(temporary, target)
        return ends

    @staticmethod
    def _counts(
        outputs: list[_Patient | int],
        computed: list[tuple[int, _Patient]],
        kept: _Kept | None,
        in_place: bool,
    ) -> list[list[Any]]:
        """The counts by column (one list per count, a patient at the same place in each):
        last run's lists with the recomputed patients replaced, summed in C."""
        old_columns = [kept.counts[name] for name in _COUNTS] if kept else []
        columns: list[list[Any]]
        if in_place:
            columns = [list(column) for column in old_columns]
            for position, rows in computed:
                for column, value in zip(columns, rows.counts, strict=True):
                    column[position] = value
            return columns
        columns = [[] for _ in _COUNTS]
        for output in outputs:
            row = (
                output.counts
                if isinstance(output, _Patient)
                else [column[output] for column in old_columns]
            )
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        return columns

    def _summary(self, offsets: dict[str, list[int]], counts: list[list[Any]]) -> PartitionSummary:
        prescribed = offsets["prescriptions"]
        letters = "".join(counts[0])
        actions = {_ACTIONS[letter]: n for letter in _ACTIONS if (n := letters.count(letter))}
        return PartitionSummary(
            paths={k: n for k, n in sorted(self.paths.items()) if n},
            part=self.part,
            patients=sum(map(gt, prescribed[1:], prescribed)),  # (rows of one prescription)
            actions=dict(sorted(actions.items())),
            paused=sum(counts[1]),
            alerts=sum(counts[2]),
            failures=sum(counts[3]),
            set_aside=self._lines_in(self._target("set_aside")),
        )

    def _write_index(
        self,
        columns: _Columns,
        counts: list[list[Any]],
        offsets: dict[str, list[int]],
        problems: list[str],
        inputs: list[list[int]],
    ) -> None:
        write_index(
            index_location(self.out, self.part),
            {
                "stats": self.stats,
                "signature": self.signature,
                "inputs": inputs,
                "patients": columns.patients,
                "hashes": columns.hashes,
                "counts": dict(zip(_COUNTS, counts, strict=True)),
                "enrollment_ranges": columns.enrollment_ranges,
                "record_ranges": columns.record_ranges,
                "offsets": offsets,
                "problems": problems,
                "sizes": _output_sizes(self.out, self.part, self.out_format),
            },
        )

    # -- the parts of full and appended ---------------------------------------------------

    @staticmethod
    def _changed(
        previous: dict[str, Any] | None, patients: list[str], hashes: list[str]
    ) -> tuple[dict[str, int], list[str]]:
        """Each patient's position in last run's output, and the patients whose hash differs
        from last run's (or who are new)."""
        if previous is None:
            return {}, list(patients)
        old = {p: i for i, p in enumerate(previous["patients"])}
        old_hashes: list[str] = previous["hashes"]
        changed = [
            p
            for p, h in zip(patients, hashes, strict=True)
            if p not in old or old_hashes[old[p]] != h
        ]
        return old, changed

    def _orphans(
        self, table: str, what: str, scanned: files.PatientLines, location: str
    ) -> list[str]:
        """A problem for each line of `scanned` that names no patient, at its line number
        (a Parquet file's: at its row number, which `scanned` holds)."""
        if not scanned.orphans:
            return []
        name = f"{files.part_name(self.part)}.{self.input_format}"
        if self.input_format == "parquet":
            numbers = {row: f"row {row}" for row, _ in scanned.orphans}
        else:
            at = files.numbers_at(location, [offset for offset, _ in scanned.orphans])
            numbers = {offset: f"line {n}" for offset, n in at.items()}
        return [
            f"{table}/{name} {numbers[offset]}: {what} without 'patient': {text[:80]}"
            for offset, line in scanned.orphans
            for text in [line.rstrip("\r")]  # (Windows line ends)
        ]

    def _undecoded(self, table: str, scanned: files.PatientLines, location: str) -> list[str]:
        """A problem for each line of `scanned` that is not UTF-8 text, at its line number:
        it was read with U+FFFD in place of each such byte (files.decoded)."""
        if not scanned.undecoded:
            return []
        name = f"{files.part_name(self.part)}.{self.input_format}"
        at = files.numbers_at(location, [offset for offset, _ in scanned.undecoded])
        return [
            f"{table}/{name} line {at[offset]}: {wrong}: read with U+FFFD in its place (is "
            "the file in another encoding? progressor reads UTF-8)"
            for offset, wrong in scanned.undecoded
        ]

    def _log(self, patient: str, lines: list[str]) -> Log:
        """A patient's record lines read. The run's day is the day the records are read: one
        dated later is set aside at its line, its pain kept as of that day (the output stays
        a function of the inputs)."""
        if self.input_format == "parquet":  # (the reader's Rows, numbered as `lines`)
            return rows_log(self._rows(patient), "", today=self.as_of)
        return read_log(lines, "", "jsonl", today=self.as_of)

    @property
    def _records(self) -> parquet.Scanned:
        """The Parquet records file as scanned; for a JSONL partition, an empty scan (no
        patient read in columns, no Rows)."""
        return self.scanned[0] if self.scanned else _NO_SCAN

    def _rows(self, patient: str) -> list[Row]:
        """A Parquet file's patient's record Rows, as the record reader reads them."""
        return self._records.rows_of(patient)

    def _lines(self, patient: str, record_lines: dict[str, list[str]]) -> list[str]:
        """A patient's record lines as the per-patient engine reads them: a Parquet file's
        patient read in columns has lines that only hash their rows until now, when the
        reader reads the rows (Scanned.rows_of; `record_lines` is the scan's own table)."""
        self._records.rows_of(patient)
        return record_lines.get(patient, [])

    def _no_enrollment(self, patient: str) -> str:
        """Why the records of a patient with no enrollment in the partition are not used,
        naming the enrolled id they may mean when only case or spaces tell them apart (ids
        that differ otherwise are told of no other: a record given to the wrong patient on
        a guess would put one patient's pain on another's chart)."""
        alike = self.loose.get(patient)
        several = ids_meant(patient, sorted(self.enrolled)) if alike is None else []
        hint = f" ({spelled_otherwise(alike)})" if alike is not None else ""
        hint = f" ({meant_by_several(several)})" if len(several) > 1 else hint
        return (
            f"no enrollment of {patient!r} in this partition{hint}: a patient's records must "
            "be in the partition of their enrollment (progressor.dataset.partition_of)"
        )

    @staticmethod
    def _unenrolled(enrollments: files.PatientLines, records: files.PatientLines) -> list[str]:
        return [
            f"records of {p!r}, who has no enrollment in this partition (a patient's records "
            "must be in the partition of their enrollment: progressor.dataset.partition_of)"
            for p in sorted(records.lines)
            if p not in enrollments.lines
        ]

    @staticmethod
    def _tails(
        previous: dict[str, Any], old: dict[str, int], enrollments_at: str, records_at: str
    ) -> tuple[files.PatientLines, files.PatientLines] | None:
        """What was appended to each input since `previous`; None when an input changed
        otherwise, or when the new lines raise or may settle a problem: the full path then
        words the problems."""
        known = [tuple(check) for check in previous["inputs"]]
        enrolled_tail = files.scan(enrollments_at, (known[0][0], known[0][1]))
        records_tail = files.scan(records_at, (known[1][0], known[1][1]))
        if enrolled_tail is None or records_tail is None:
            return None
        if any(t.orphans or t.undecoded for t in (enrolled_tail, records_tail)):
            return None  # new problems to report
        spans = zip(previous["patients"], previous["enrollment_ranges"], strict=True)
        before = {p for p, at in spans if at}
        if previous["problems"] and enrolled_tail.lines.keys() - before:
            # A new enrollment may settle an earlier problem (an id with records and no
            # enrollment), or make an id spelled otherwise name someone, or no one.
            return None
        enrolled = before | enrolled_tail.lines.keys()
        if any(p not in enrolled for p in records_tail.lines):
            return None  # records of someone not enrolled: a new problem
        if _loose({p: [] for p in old.keys() - enrolled}, enrolled):
            return None  # pains under an id spelled otherwise: their patient reads them too
        return enrolled_tail, records_tail

    @staticmethod
    def _grown_spans(
        previous: dict[str, Any],
        index: int | None,
        patient: str,
        tails: tuple[files.PatientLines, files.PatientLines],
    ) -> tuple[list[int], list[int]]:
        """A patient's byte ranges in the enrollments and the records: last run's (at `index`,
        None for a new patient) followed by those of the lines appended since."""
        grown = []
        for column, tail in zip(("enrollment_ranges", "record_ranges"), tails, strict=True):
            spans = _spans(previous[column][index]) if index is not None else []
            added = tail.ranges.get(patient, [])
            for i in range(0, len(added), 2):
                if spans and spans[-1] == added[i]:  # a range that goes on where one ended
                    spans[-1] = added[i + 1]
                else:
                    spans.extend(added[i : i + 2])
            grown.append(spans)
        return grown[0], grown[1]

    @staticmethod
    def _placed(
        previous: dict[str, Any], old: dict[str, int], patients: list[str] | None
    ) -> _Columns:
        """Last run's columns to update, each kept patient's output by its position; with
        `patients` (everyone, when some are new), laid out in their order, a new patient's
        place empty until computed."""
        if patients is None:
            return _Columns(
                previous["patients"],
                list(previous["hashes"]),
                list(range(len(previous["patients"]))),
                list(previous["enrollment_ranges"]),
                list(previous["record_ranges"]),
            )
        at = [old.get(patient) for patient in patients]
        return _Columns(
            patients,
            [previous["hashes"][i] if i is not None else "" for i in at],
            [i if i is not None else -1 for i in at],
            [previous["enrollment_ranges"][i] if i is not None else "" for i in at],
            [previous["record_ranges"][i] if i is not None else "" for i in at],
        )


class _Kept(NamedTuple):
    """Where each patient's rows start and end in last run's output tables (by table: one
    offset per patient and one past the last), and each patient's counts."""

    offsets: dict[str, list[int]]
    counts: dict[str, list[Any]]  # by column: _COUNTS
    problems: list[str]


class _Columns(NamedTuple):
    """The index's lists of a partition's patients, one entry per patient in order."""

    patients: list[str]
    hashes: list[str]
    outputs: list[_Patient | int]  # computed rows, or the position in last run's output
    enrollment_ranges: list[str]
    record_ranges: list[str]
