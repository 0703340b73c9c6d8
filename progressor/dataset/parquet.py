"""Parquet partitions of a dataset: inputs read by the one record reader, outputs written
with a fixed schema.

A partition's inputs are `enrollments/part-NNNNN.parquet` and `records/part-NNNNN.parquet`
instead of the `.jsonl` pair. Their rows become, early, the per-patient lines the JSONL path
has (files.PatientLines), so the rest of a partition's computation is the same:

- a record row is read by progressor.reading's Parquet reader (as `progressor next` reads a
  Parquet log); a row it reads whole becomes the record's JSON line (as DatasetWriter writes
  it), a row it sets aside keeps the reader's text, reason and the pain it kept;
- an enrollment row becomes a JSON object of its cells, read as an enrollment line is;
- a line's "position" in the file (PatientLines.ranges, byte ranges in a JSONL file) is its
  row number, from 1, which set-aside rows and problems report.

pyarrow (the `parquet` extra) is imported only when a Parquet file is read or written.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from progressor.core.models import Record
from progressor.dataset import files
from progressor.engines import column_engine_wanted
from progressor.errors import ProgressorError
from progressor.reading import Row
from progressor.reading.records import parquet_table, parquet_table_rows

#: The formats of a partition's inputs and outputs (`--out-format`).
FORMATS = ("jsonl", "parquet")
NEEDS_PYARROW = "Parquet datasets need pyarrow: pip install 'progressor[parquet]'"


def pyarrow() -> Any:
    """The pyarrow module, or a ProgressorError naming the extra that brings it."""
    try:
        import pyarrow as pa
        import pyarrow.parquet  # (pa.parquet: a submodule pyarrow does not import itself)
    except ImportError:
        raise ProgressorError(NEEDS_PYARROW) from None
    return pa


def record_line(record: Record, patient: str) -> str:
    """A record as a JSONL dataset holds it: its fields (defaults left out), patient, kind."""
    data = record.model_dump(mode="json", exclude_defaults=True)
    data["patient"] = patient
    data["kind"] = record.kind
    return json.dumps(data, separators=(",", ":"))


def input_format(dataset: str, part: int) -> str:
    """Whether partition `part`'s inputs are JSONL or Parquet (by its enrollments file)."""
    name = files.part_name(part)
    found = [
        fmt for fmt in FORMATS if files.exists(files.join(dataset, "enrollments", f"{name}.{fmt}"))
    ]
    if len(found) > 1:
        raise ProgressorError(
            f"{dataset}: enrollments/{name} is there as .jsonl and as .parquet: keep one"
        )
    fmt = found[0] if found else "jsonl"
    other = "jsonl" if fmt == "parquet" else "parquet"
    if files.exists(files.join(dataset, "records", f"{name}.{other}")):
        raise ProgressorError(
            f"{dataset}: records/{name}.{other} beside enrollments/{name}.{fmt}: a partition's "
            "enrollments and records are of one format"
        )
    return fmt


class Scanned:
    """A Parquet input file of a partition split up by patient: `table` as files.scan gives
    a JSONL file (its ranges: each line's row number), and each patient's record Rows,
    numbered among the patient's own (as read_log numbers a patient's lines)."""

    def __init__(self) -> None:
        self.table = files.PatientLines({}, {}, [], 0, 0, [])
        self.rows: dict[str, list[Row]] = {}
        #: Read in columns (scan_records with the column engine): the patients whose rows
        #: were all taken (no Rows made for them; their lines only hash them), those rows'
        #: fields (PlainTable), and the file's table, to read their rows when one of them
        #: goes to the per-patient engine after all (rows_of).
        self.fast: set[str] = set()
        self.fields: Any = None
        self.arrow: Any = None

    def rows_of(self, patient: str) -> list[Row]:
        """A patient's Rows as the record reader reads them (made now for a patient read in
        columns: their lines become the reader's too), numbered among the patient's own."""
        if patient in self.fast:
            self.fast.discard(patient)
            found = parquet_table_rows(self.arrow, self.table.ranges[patient])
            rows = [row._replace(line=n) for n, row in enumerate(found, start=1)]
            self.rows[patient] = rows
            self.table.lines[patient] = [
                record_line(r.record, patient) if r.record is not None else r.text for r in rows
            ]
        return self.rows.get(patient, [])

    def add(self, patient: str | None, number: int, line: str, row: Row | None = None) -> None:
        if patient is None:
            self.table.orphans.append((number, line))
            return
        self.table.lines.setdefault(patient, []).append(line)
        self.table.ranges.setdefault(patient, []).append(number)
        if row is not None:
            own = self.rows.setdefault(patient, [])
            own.append(row._replace(line=len(own) + 1))


def scan_records(location: str, engine: str = "patients") -> Scanned:
    """A records file's rows by patient, each read by the record reader (none when the
    file is missing, as a JSONL partition's).

    When `engine` computes with the column engine (column_engine_wanted, for the file's
    patients), the rows are read in columns first (progressor.columns.reading.PlainTable):
    a patient whose rows are all taken is read no further (their lines: each row's fields
    as JSON, which only hash them; Scanned.rows_of reads them if they go per patient after
    all), the others' rows by the record reader, as without."""
    scanned = Scanned()
    if not files.exists(location):
        return scanned
    with _local(location) as path:
        table = parquet_table(path)
    read = _in_columns(table, engine)
    if read is None:
        rows = list(parquet_table_rows(table, range(1, table.num_rows + 1)))
    else:
        import polars as pl  # (the column engine's: there when it computes)

        fields, mask = read
        rows = list(parquet_table_rows(table, [n + 1 for n in (~mask).arg_true().to_list()]))
        # A patient with a row not taken is read by the reader, each of their rows.
        slow = {_patient_of(row) for row in rows} - {None}
        theirs = fields.filter(pl.col("key").is_in(list(slow)))["line"].to_list()
        rows = sorted([*rows, *parquet_table_rows(table, theirs)], key=lambda row: row.line)
        fields = fields.filter(~pl.col("key").is_in(list(slow)))
        # Each such patient's "line": their rows' fields as JSON, in the file's order, which
        # only hashes them (rows_of gives them the reader's lines when they need them).
        rows_json = pl.struct(pl.all().exclude("key", "line")).struct.json_encode()
        each = fields.group_by("key", maintain_order=True).agg(
            pl.col("line"), rows_json.str.join("\n").alias("json")
        )
        for patient, numbers, text in each.iter_rows():
            scanned.table.lines[patient] = [text]
            scanned.table.ranges[patient] = numbers
        scanned.fast, scanned.fields, scanned.arrow = set(each["key"].to_list()), fields, table
    for row in rows:
        patient = _patient_of(row)
        line = (
            row.text if row.record is None or patient is None else record_line(row.record, patient)
        )
        scanned.add(patient, row.line, line, row)
    scanned.table = scanned.table._replace(size=_size(location))
    return scanned


def _patient_of(row: Row) -> str | None:
    """Whose a row is, as the partition splits rows: the reader's record's (or what it kept
    of it), or the patient its text names."""
    record = row.record if row.record is not None else row.kept
    patient = record.patient if record is not None else None
    # (A row read whole always names one: it is in the text.)
    return patient if patient is not None else files.patient_of(row.text)


def _in_columns(table: Any, engine: str) -> tuple[Any, Any] | None:
    """The rows of `table` read in columns (PlainTable.read) when `engine` computes its
    patients with the column engine; None when it does not, or the columns are not all
    read that way."""
    if "patient" not in table.schema.names:
        return None
    patients = table["patient"].unique().to_pylist()
    if not column_engine_wanted(engine, len(patients)):
        return None
    from progressor.columns.reading import PlainColumns, PlainTable

    if not _TABLE_READER:
        _TABLE_READER.append(PlainTable(PlainColumns()))
    read: tuple[Any, Any] | None = _TABLE_READER[0].read(table)
    return read


#: The reader of Parquet rows in columns (made on first use: polars is an optional extra).
_TABLE_READER: list[Any] = []


def scan_enrollments(location: str) -> Scanned:
    """An enrollments file's rows by patient, each as a JSON object of its cells (a date as
    its ISO day; `overrides` written as JSON text is read as the object it holds)."""
    scanned = Scanned()
    with _local(location) as path:
        for number, cells in enumerate(_dicts(path), start=1):
            if isinstance(cells.get("overrides"), str):
                # (Not JSON: left as text, the enrollment set aside with the model's reason.)
                with suppress(ValueError):
                    cells["overrides"] = json.loads(cells["overrides"])
            line = json.dumps(cells, separators=(",", ":"), ensure_ascii=False, default=str)
            patient = cells.get("patient")
            scanned.add(patient if isinstance(patient, str) else None, number, line)
    scanned.table = scanned.table._replace(size=_size(location))
    return scanned


def _dicts(path: Path) -> Iterator[dict[str, Any]]:
    pa = pyarrow()
    try:
        handle = pa.parquet.ParquetFile(path)
        for batch in handle.iter_batches(batch_size=4096):
            for cells in batch.to_pylist():
                yield {k: v for k, v in cells.items() if v is not None}
    except (OSError, pa.ArrowException) as exc:
        raise ProgressorError(f"{path}: not a readable Parquet file ({exc})") from None


@contextmanager
def _local(location: str) -> Iterator[Path]:
    """A local path to read `location` from: itself, or (a URL) a temporary copy (pyarrow
    and the record reader open local files)."""
    if not files.is_url(location):
        yield Path(location)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="progressor-parquet-") as folder:
        copy = Path(folder) / "part.parquet"
        with files.open_binary(location, "rb") as source, copy.open("wb") as target:
            while block := source.read(files.BLOCK):
                target.write(block)
        yield copy


def _size(location: str) -> int:
    size = files.stats([location])[0][1]
    return size if isinstance(size, int) else 0


# -- output -----------------------------------------------------------------------------------

#: The columns of each output table, besides `json` (the row as the JSONL table writes it,
#: byte for byte): what a query filters on. Each is the row's field of that name (null where
#: the row has none).
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "prescriptions": (("patient", "string"), ("week", "int64"), ("status", "string")),
    "decisions": (
        ("patient", "string"),
        ("week", "int64"),
        ("exercise", "string"),
        ("action", "string"),
        ("rule", "string"),
    ),
    "alerts": (
        ("patient", "string"),
        ("week", "int64"),
        ("rule", "string"),
        ("urgent", "bool_"),
    ),
    "set_aside": (
        ("patient", "string"),
        ("source", "string"),
        ("line", "int64"),
        ("reason", "string"),
        ("problem", "string"),
    ),
}


def schema(table: str) -> Any:
    """The fixed Parquet schema of an output table."""
    pa = pyarrow()
    fields = [pa.field(name, getattr(pa, kind)()) for name, kind in COLUMNS[table]]
    return pa.schema([*fields, pa.field("json", pa.string(), nullable=False)])


def write_table(table: str, lines: Iterable[str], location: str) -> None:
    """An output table's JSONL rows written as Parquet: the fixed schema, rows in their
    order, zstd; the same rows give the same bytes (no time or path in the file)."""
    pa = pyarrow()
    texts = [line for line in lines if line]
    values = [json.loads(text) for text in texts]
    columns = {
        name: [_cell(row.get(name), kind) for row in values] for name, kind in COLUMNS[table]
    }
    data = pa.table({**columns, "json": texts}, schema=schema(table))
    with files.open_binary(location, "wb") as handle:
        pa.parquet.write_table(data, handle, compression="zstd")


def _cell(value: object, kind: str) -> object:
    """A row's field as the column's type: null where it has another (never expected)."""
    wanted = {"string": str, "int64": int, "bool_": bool}[kind]
    if isinstance(value, bool) and wanted is int:
        return None
    return value if isinstance(value, wanted) else None


def read_table(location: str) -> list[str]:
    """An output table's rows as JSONL lines (its `json` column), in order."""
    pa = pyarrow()
    with files.open_binary(location, "rb") as handle:
        texts: Sequence[str] = pa.parquet.read_table(handle, columns=["json"])["json"].to_pylist()
    return list(texts)


# -- a JSONL dataset as Parquet ---------------------------------------------------------------


def to_parquet(dataset: str, target: str) -> None:
    """Write the JSONL dataset `dataset` again at `target` with Parquet partitions (programs
    copied): each record row's columns are the union of the records' fields, `date` a day.

    Only what a Parquet row can hold as the line means is converted: a line that is not one
    JSON object with each key once, a date that is not a day, or a column whose values are
    of different types is refused with its file and line (a row keeping one of a repeated
    key's values, say, could hide a pain the JSONL reader sets aside and keeps). Every file
    is written under a temporary name first, and all are renamed only when every one is
    whole: a refused conversion leaves no partition behind (one with its enrollments and no
    records would run, its patients' flares unseen)."""
    pa = pyarrow()
    staged: list[tuple[str, str]] = []
    try:
        for table in ("enrollments", "records"):
            for source in files.listing(files.join(dataset, table), ".jsonl"):
                name = source.rsplit("/", 1)[-1].removesuffix(".jsonl")
                table_of = _table(pa, source, _convertible_rows(source))
                location = files.join(target, table, f"{name}.parquet")
                staged.append((f"{location}.writing", location))
                with files.open_binary(staged[-1][0], "wb") as handle:
                    pa.parquet.write_table(table_of, handle, compression="zstd")
    except BaseException:
        for staging, _ in staged:
            files.remove(staging)
        raise
    for program in files.listing(files.join(dataset, "programs"), ".toml"):
        copy = files.join(target, "programs", program.rsplit("/", 1)[-1])
        with files.open_binary(program, "rb") as text, files.open_binary(copy, "wb") as to:
            to.write(text.read())
    for staging, location in staged:
        files.rename(staging, location)


def _convertible_rows(source: str) -> list[tuple[int, dict[str, Any]]]:
    """The lines of a JSONL file as dicts, each with its line number; a ProgressorError for
    the first that a Parquet row cannot hold as it means."""
    rows = []
    with files.open_text(source, "r") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{source}, line {number}"
            try:
                row = json.loads(line.removeprefix("\ufeff"), object_pairs_hook=_once)
            except ValueError as exc:
                raise ProgressorError(
                    f"{where}: cannot convert to Parquet ({exc}): fix the line, or keep the "
                    "partition as JSONL, where the reader sets such a line aside"
                ) from None
            if not isinstance(row, dict):
                raise ProgressorError(f"{where}: cannot convert to Parquet: not a JSON object")
            for name in ("date", "start"):
                value = row.get(name)
                if isinstance(value, str):
                    try:
                        if not _DAY.fullmatch(value):  # (fromisoformat takes 2026-W45-3 too)
                            raise ValueError(value)
                        row[name] = dt.date.fromisoformat(value)
                    except ValueError:
                        raise ProgressorError(
                            f"{where}: cannot convert to Parquet: {name} {value!r} is not a "
                            "day (YYYY-MM-DD); keep the partition as JSONL"
                        ) from None
            rows.append((number, row))
    return rows


#: A day as the column path and a JSONL dataset write it.
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are each given once (else a ValueError naming the key)."""
    made = dict(pairs)
    if len(made) < len(pairs):
        twice = next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i]))
        raise ValueError(f"the key {twice!r} is given twice")
    return made


def _table(pa: Any, source: str, rows: list[tuple[int, dict[str, Any]]]) -> Any:
    """The rows as a pyarrow table; a ProgressorError naming the column whose values differ
    in type (8 in one line, "8" in another)."""
    try:
        return _columns(pa, [row for _, row in rows])
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise ProgressorError(
            f"{source}: cannot convert to Parquet: a column's values are of different types or "
            "too large "
            f"({exc}); keep the partition as JSONL"
        ) from None


def _columns(pa: Any, rows: list[dict[str, Any]]) -> Any:
    names = list(dict.fromkeys(name for row in rows for name in row))
    data = {}
    for name in names:
        cells = [row.get(name) for row in rows]
        if name == "overrides":
            cells = [json.dumps(c) if c is not None else None for c in cells]
        data[name] = cells
    return pa.table(data)
