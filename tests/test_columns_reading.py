"""The column engine's reading of record lines (progressor.columns.reading) against the one
reader's: every line the column path takes as it is, the reader reads as plain, to the same
values; the lines it does not take go per-patient, where the reader salvages them."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from progressor.reading.records import plain_fields
from tests.fuzzing.run import same_field

pl = pytest.importorskip("polars")

from progressor.columns.reading import PlainColumns  # noqa: E402

READER = PlainColumns()

OUTCOME = {
    "kind": "outcome",
    "patient": "anna",
    "date": "2026-01-06",
    "exercise": "bridge",
    "reps": [8, 7],
    "hold_s": 5.0,
    "pain_before": 1.0,
    "pain_during": 2,
    "pain_after": 1.5,
}
REPORT = {"kind": "pain", "patient": "anna", "date": "2026-01-07", "pain": 8, "context": "flare"}


def _taken(lines: list[str]) -> tuple[list[bool], list[dict[str, Any]]]:
    rows, taken = READER.read(pl.Series(lines, dtype=pl.String))
    return taken.to_list(), rows.drop("line").to_dicts()


def _agrees(line: str) -> bool:
    """Taken by the column path only when the reader reads it as plain, to the same values."""
    (taken,), rows = _taken([line])
    if not taken:
        return True
    read = plain_fields([line])
    assert read is not None, f"taken in columns, not plain to the reader: {line}"
    (fields,) = read[0]
    (row,) = rows
    for name, value in fields.items():
        assert same_field(value, row.get(name)), (line, name, value, row.get(name))
    return True


def test_the_plainest_lines_are_taken_with_the_readers_values() -> None:
    lines = [json.dumps(OUTCOME), json.dumps(REPORT, separators=(",", ":"))]
    taken, rows = _taken(lines)
    assert taken == [True, True]
    assert rows[0]["reps"] == [8, 7] and rows[0]["pain_during"] == 2.0
    assert rows[1]["pain"] == 8.0 and rows[1]["context"] == "flare"
    for line in lines:
        assert _agrees(line)
    # A null where the field may be null is the field's None, as when the key is not given.
    for separators in [(",", ":"), (", ", ": "), (",", " :")]:  # (as the store writes it)
        nulled = json.dumps({**OUTCOME, "pain_during": None, "side": None}, separators=separators)
        (taken,), (row,) = _taken([nulled])
        assert taken and row["pain_during"] is None and _agrees(nulled)
    # Text that looks like a null is text: the line is taken, with the reader's values.
    looks = '{"kind":"pain","date":"2026-01-07","pain":8,"note":"a: null}"}'
    (taken,), (row,) = _taken([looks])
    assert taken and row["pain"] == 8.0 and row["note"] == "a: null}" and _agrees(looks)


@pytest.mark.parametrize(
    "line",
    [
        '{"kind":"pain","date":"2026-01-07","pain":8,"pain":1}',  # a key twice (polars keeps one)
        '{"kind":"pain","date":"2026-01-07","pain":1,"pain":8}',
        '{"kind":"pain","date":"2026-01-07","pain":11}',  # out of bounds
        '{"kind":"pain","date":"2026-01-07","pain":-0.0}',  # a sign
        '{"kind":"pain","date":"2026-01-07","pain":8e0}',  # an exponent
        '{"kind":"pain","date":"2026-01-07","pain":"8"}',  # text for a number
        '{"kind":"pain","date":"2026-01-07","pain":true}',  # a boolean for a number
        '{"kind":"pain","date":"2026-01-07","pain":null}',  # (pain may not be null)
        # A key twice, its count made up for by a null in text: 8 would be read as 1.
        '{"kind":"pain","date":"2026-01-07","pain":1,"pain":8,"note":"a: null,"}',
        '{"kind":"outcome","date":"2026-01-07","exercise":"b: null}","pain_after":1,'
        '"pain_after":9}',
        '{"kind":"pain","date":"2026-01-07","pain":8,"patient":"anna","patient":null}',  # twice
        '{"kind":"pain","date":"2026-01-07","pain":8,"patient":null, "patient" : null}',
        '{"kind":"pain","date":"2026-01-07"}',  # a required field missing
        '{"date":"2026-01-07","pain":8}',  # no kind
        '{"kind":"pain","date":"2026-02-30","pain":8}',  # no such day
        '{"kind":"pain","date":"2026-01-07T08:00","pain":8}',  # a date-time: per-patient
        '{"kind":"pain","date":"2026-01-07","pain":8,"mood":"ok"}',  # an unknown key
        '{"kind":"pain","date":"2026-01-07","pain":8,"exercise":"bridge"}',  # another kind's
        '{"kind":"pain","date":"2026-01-07","pain":8,"note":"a \\"quote\\""}',  # an escape
        '{"kind":"outcome","date":"2026-01-07","exercise":"bridge","reps":[5.0]}',
        '{"kind":"outcome","date":"2026-01-07","exercise":"bridge","reps":[-1]}',
        '{"kind":"outcome","date":"2026-01-07","exercise":"bridge","rpe":10.5}',
        '{"kind":"outcome","date":"2026-01-07","exercise":"bridge","side":"up"}',
        '{"kind":"outcome","date":"2026-01-07","exercise":"bridge"} {"kind":"pain"}',
        '["kind","pain"]',
        "",
        "\ufeff" + json.dumps(REPORT),  # a byte-order mark: the reader's own path
    ],
)
def test_lines_left_to_the_reader(line: str) -> None:
    """Each goes per-patient, where the reader reads or salvages it (tests/test_reading.py)."""
    (taken,), _ = _taken([line])
    assert not taken


_NUMBERS = st.one_of(
    st.integers(-3, 2_000_000_000),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1, max_value=1e9),
    st.sampled_from([0, 0.0, -0.0, 10, 10.0, 10.000001, 1e-7, 5.5]),
)
_VALUES = st.one_of(
    _NUMBERS,
    st.booleans(),
    st.none(),
    st.text(max_size=6),
    st.lists(_NUMBERS, max_size=3),
    st.sampled_from(["2026-01-06", "2026-13-01", "0000-01-01", "flare", "left", "morning"]),
    st.sampled_from(["a: null,", ": null}", "x:1"]),  # text that looks like JSON
)
_KEYS = st.sampled_from(
    [*OUTCOME, *REPORT, "duration_s", "load_kg", "rpe", "side", "skipped", "flags", "note", "x"]
)


@st.composite
def _lines(draw: st.DrawFn) -> str:
    base = dict(draw(st.sampled_from([OUTCOME, REPORT])))
    for _ in range(draw(st.integers(0, 3))):
        base[draw(_KEYS)] = draw(_VALUES)
    if draw(st.booleans()):
        base.pop(draw(st.sampled_from(list(base))), None)
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (",", " : ")]))
    text = json.dumps(base, separators=separators, ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 5)) == 0:  # a key given twice, as text (JSON objects cannot)
        key = draw(st.sampled_from(list(base)))
        pair = draw(st.sampled_from([', "{}": {}', ',"{}":{}']))  # (spaced, or compact)
        text = text[:-1] + pair.format(key, json.dumps(draw(_VALUES))) + "}"
    return text


@settings(max_examples=400, deadline=None)
@given(st.lists(_lines(), min_size=1, max_size=5))
def test_every_line_taken_is_read_alike_by_the_reader(lines: list[str]) -> None:
    taken, rows = _taken(lines)
    rows_of = iter(rows)
    for line, was_taken in zip(lines, taken, strict=True):
        if was_taken:
            read = plain_fields([line])
            assert read is not None, f"taken in columns, not plain to the reader: {line}"
            row = next(rows_of)
            for name, value in read[0][0].items():
                assert same_field(value, row.get(name)), (line, name, value, row.get(name))


def test_a_synthetic_cohorts_lines_are_all_taken() -> None:
    """The column path is not dead: the lines a clinic's log holds (progressor.synth's, as
    the batch benchmark writes them) are all taken."""
    import progressor
    from progressor.demo import shipped_text
    from progressor.synth import log_line, synthesize_patient

    text = shipped_text("low-back-pain")
    compiled = progressor.Engine().compile(progressor.parse_program(text))
    lines = [
        log_line(f"p{i}", record)
        for i in range(20)
        for record in synthesize_patient(compiled, f"p{i}", 3, seed=i).records
    ]
    taken, _ = _taken(lines)
    assert len(lines) > 100 and all(taken)
    assert all(_agrees(line) for line in lines[:50])


# -- a Parquet log's rows, read in columns -------------------------------------------------------

pa = pytest.importorskip("pyarrow")

from progressor.columns.reading import PlainTable  # noqa: E402
from progressor.reading.records import parquet_table_rows  # noqa: E402

TABLE_READER = PlainTable(READER)

#: Each column of a Parquet log as a clinic's export may type it, and the values drawn for it:
#: the fields' own types, odd values among them (spaces, -0, NaN, many decimals, other kinds'
#: fields, text a literal does not hold).
_CELLS: dict[str, tuple[Any, Any]] = {
    "patient": (pa.string(), st.sampled_from(["anna", " anna ", "anna\t", "ben", "", None])),
    "kind": (pa.string(), st.sampled_from(["outcome", "pain", " pain", "Pain", "", None])),
    "date": (
        pa.date32(),
        st.sampled_from([None, *(__import__("datetime").date(y, 1, 6) for y in (2026, 1850))]),
    ),
    "exercise": (pa.string(), st.sampled_from(["bridge", " bridge ", 'brid"ge', "", None])),
    "reps": (pa.list_(pa.int64()), st.one_of(st.none(), st.lists(st.integers(-1, 30), max_size=3))),
    "hold_s": (
        pa.float64(),
        st.one_of(
            st.none(),
            st.sampled_from([5.0, -0.0, 0.0, 1e7, 9_999_999.0, 2.1234567, float("nan")]),
            st.floats(0, 100, allow_nan=False),
        ),
    ),
    "pain_before": (pa.float64(), st.one_of(st.none(), st.sampled_from([0.0, 2.5, 10.0, 10.5]))),
    "pain_during": (pa.int32(), st.one_of(st.none(), st.integers(-1, 12))),
    "pain": (pa.float64(), st.one_of(st.none(), st.sampled_from([0.0, -0.0, 8.0, 7.25, 11.0]))),
    "context": (pa.string(), st.sampled_from(["flare", "other", "Flare", " morning ", None])),
    "side": (pa.string(), st.sampled_from(["left", "right", "both", None])),
    "adverse_event": (pa.bool_(), st.one_of(st.none(), st.booleans())),
    "flags": (
        pa.list_(pa.string()),
        st.one_of(st.none(), st.lists(st.sampled_from(["numbness", " x", 'a"b']), max_size=2)),
    ),
    "note": (pa.string(), st.sampled_from(["", "felt fine", "a \\ b", "x\u0085", None])),
    "duration_s": (
        pa.list_(pa.float64()),
        st.one_of(st.none(), st.lists(st.sampled_from([30.0, -0.0, float("inf")]), max_size=2)),
    ),
}


_DAY = __import__("datetime").date(2026, 1, 6)
_BASES = (
    {"patient": "anna", "kind": "outcome", "date": _DAY, "exercise": "bridge", "reps": [5]}
    | {"hold_s": 5.0, "pain_before": 2.0, "pain_during": 3},
    {"patient": "anna", "kind": "pain", "date": _DAY, "pain": 8.0, "context": "flare"},
)


@st.composite
def _tables(draw: st.DrawFn) -> Any:
    """A table of the columns drawn, each row a plain record with a few cells changed."""
    names = ["patient", *draw(st.lists(st.sampled_from(sorted(_CELLS)), unique=True))]
    names = list(dict.fromkeys([*names, *(n for n in _BASES[0] if draw(st.booleans()))]))
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        row = dict(draw(st.sampled_from(_BASES)))
        for _ in range(draw(st.integers(0, 2))):
            name = draw(st.sampled_from(names))
            row[name] = draw(_CELLS[name][1])
        rows.append(row)
    return pa.table(
        {name: pa.array([r.get(name) for r in rows], type=_CELLS[name][0]) for name in names}
    )


def _same(a: Any, b: Any) -> bool:
    """The same value, a float's sign too (-0.0 is not 0.0 here)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b) and type(a) is type(b)


@settings(max_examples=400, deadline=None)
@given(_tables())
def test_every_parquet_row_taken_is_read_alike_by_the_reader(table: Any) -> None:
    """A row the column path takes is one the Parquet reader reads whole, to the very values
    the column path held before it read Parquet rows in columns: those of the record's JSON
    line (progressor.dataset.parquet.record_line) read in columns."""
    from progressor.dataset.parquet import record_line

    read = TABLE_READER.read(table)
    assert read is not None  # (every column here is a field, of a type taken)
    fields, taken = read
    rows = list(parquet_table_rows(table, range(1, table.num_rows + 1)))
    held = iter(fields.to_dicts())
    for row, was_taken in zip(rows, taken.to_list(), strict=True):
        if not was_taken:
            continue
        assert row.record is not None, f"taken in columns, set aside by the reader: {row.text}"
        mine = next(held)
        assert (mine.pop("line"), mine.pop("key")) == (row.line, row.record.patient)
        line = record_line(row.record, row.record.patient or "")
        (again,), (as_json,) = _taken([line])
        assert again, line
        for name, value in as_json.items():
            assert _same(value, mine[name]), (row.text, name, value, mine[name])


def test_a_synthetic_cohorts_parquet_rows_are_all_taken(tmp_path: Any) -> None:
    """The Parquet column path is not dead: a cohort as `synth --format parquet` writes it is
    read whole in columns, to the values of its JSON lines."""
    import pyarrow.parquet as pq

    from progressor.dataset.parquet import to_parquet
    from progressor.synth import synthesize_dataset
    from tests.conftest import compiled_programs

    synthesize_dataset(str(tmp_path / "j"), compiled_programs(), 60, 2, 4, 1)
    to_parquet(str(tmp_path / "j"), str(tmp_path / "p"))
    table = pq.read_table(tmp_path / "p" / "records" / "part-00000.parquet")
    read = TABLE_READER.read(table)
    assert read is not None
    fields, taken = read
    assert taken.all() and fields.height == table.num_rows > 500
    lines = (tmp_path / "j" / "records" / "part-00000.jsonl").read_text().splitlines()
    as_json = _taken(lines)[1]
    for mine, theirs in zip(fields.drop("line", "key").to_dicts(), as_json, strict=True):
        assert mine == theirs


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("Pain Before", pa.array([2.0])),  # named as a CSV header may be: the reader's way
        ("pain_before", pa.array(["2"])),  # a number as text
        ("date", pa.array([__import__("datetime").datetime(2026, 1, 6, 9)])),  # a date-time
        ("x", pa.array([1])),  # no field
    ],
)
def test_a_table_with_a_column_not_read_in_columns_is_left_to_the_reader(
    name: str, column: Any
) -> None:
    table = pa.table({"patient": ["anna"], name: column})
    assert TABLE_READER.read(table) is None


@pytest.mark.parametrize(("items", "taken"), [(10, True), (70, False)])
def test_a_parquet_row_longer_than_the_reader_reads_is_left_to_it(items: int, taken: bool) -> None:
    """The reader sets aside a row whose text is longer than MAX_LINE (65,536 characters):
    70 flags of 1,000 characters make one, though no cell is long. The column path leaves
    it to the reader (a review found it taken, and the session counted: progress where the
    per-patient engine held)."""
    row = {**_BASES[0], "flags": ["x" * 1000] * items}
    table = pa.Table.from_pylist([row])
    read = TABLE_READER.read(table)
    assert read is not None
    assert read[1].to_list() == [taken]
    (whole,) = parquet_table_rows(table, [1])
    assert (whole.record is not None) == taken
