"""The one record reader: what spreadsheets and apps write is read, two values for one field
or a pain outside 0-10 count at their worst for safety, and no line can crash it."""

from __future__ import annotations

import datetime as dt
import json
import math
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import progressor
from progressor.reading import records
from progressor.reading.records import MAX_LINE, Log, read_log, rows
from tests.conftest import PROGRAMS, START, full_week
from tests.test_cli import run

SEED = str(PROGRAMS / "low-back-pain.toml")
CSV_HEADER = "date,exercise,reps,hold_s,pain_before,pain_during,pain_after"


def _kept_pain(line: str, fmt: str = "jsonl", header: str = CSV_HEADER) -> float:
    """The pain the safety rules keep of a line that is set aside (it must be set aside)."""
    lines = [header, line] if fmt == "csv" else [line]
    log = read_log(lines, "x", fmt)
    assert len(log.set_aside) == 1, log
    [kept] = log.records
    assert isinstance(kept, progressor.PainReport)
    return kept.pain


# -- a key or a column given twice ----------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        '{"date":"2026-01-06","pain":9,"pain":1}',
        '{"kind":"pain","date":"2026-01-06","pain":9,"pain":1}',  # (the fast path's kind)
        '{"kind":"pain","date":"2026-01-06","pain":1,"pain":9}',
        '{"kind": "pain", "date": "2026-01-06", "pain": 9, "pain" : 1}',
        '{"kind":"pain","date":"2026-01-06","pain":9,"pa\\u0069n":1}',  # (an escaped name)
        # White space between a key and its colon (a line handed over as text may hold a
        # carriage return or a line feed), with and without colons in the values:
        '{"kind":"pain","date":"2026-01-06","pain":9,"pain"\r:1}',
        '{"kind":"pain","date":"2026-01-06","pain":9,"pain"\n:1}',
        '{"kind":"pain","date":"2026-01-06","pain":9,"pain"\t:1}',
        '{"kind":"pain","date":"2026-01-06T09:30:00","pain":9,"pain" :1}',
        '{"kind":"pain","date":"2026-01-06","note":"a:b","pain":9,"pain"\r\n:1}',
    ],
)
def test_a_key_given_twice_is_set_aside_naming_both_and_the_higher_pain_counts(line: str) -> None:
    log = read_log([line], "a.jsonl", "jsonl")
    [aside] = log.set_aside
    assert "'pain' given twice" in aside.reason and "9" in aside.reason and "1" in aside.reason
    assert (aside.source, aside.line, aside.record) == ("a.jsonl", 1, line)
    assert [r.pain for r in log.records] == [9]  # type: ignore[union-attr]


def test_a_key_given_twice_with_the_same_value_is_read() -> None:
    line = '{"kind":"pain","date":"2026-01-06","pain":3,"pain":3}'
    log = read_log([line], "a.jsonl", "jsonl")
    assert log.set_aside == () and log.records[0].pain == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("header", "line"),
    [
        (CSV_HEADER + ",pain_during", "2026-01-06,bridge,5,5,2,9,2,2"),
        ("date,pain, pain ", "2026-01-06,9,2"),
        ("date,Pain During,pain-during", "2026-01-06,2,9"),
    ],
)
def test_two_columns_of_one_field_with_different_cells_count_at_their_worst(
    header: str, line: str
) -> None:
    log = read_log([header, line], "a.csv", "csv")
    [aside] = log.set_aside
    assert "given twice, '9' and '2'" in aside.reason or "given twice, '2' and '9'" in aside.reason
    assert [r.pain for r in log.records] == [9]  # type: ignore[union-attr]


def test_csv_headers_ignore_case_spaces_and_dashes() -> None:
    header = "Date, Exercise ,REPS,Hold S,Pain Before,Pain-During,pain__after"
    [record] = read_log([header, "2026-01-05,bridge,5,5,2,3,4"], "a.csv", "csv").records
    assert isinstance(record, progressor.Outcome)
    assert (record.pain_before, record.pain_during, record.pain_after) == (2, 3, 4)
    same = read_log(["date,pain,Pain", "2026-01-05,3,3"], "a.csv", "csv")
    assert same.set_aside == () and same.records[0].pain == 3  # type: ignore[union-attr]


# -- separators -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("separator", "reps"),
    [(",", "5;5;4"), (",", "5 5 4"), (";", "5 5 4"), (";", "5|5|4"), ("\t", "5;5;4")],
)
def test_the_csv_separator_is_sniffed_from_the_header(separator: str, reps: str) -> None:
    header = separator.join(["date", "exercise", "reps", "hold_s", "pain_before", "pain_during"])
    line = separator.join(["2026-01-05", "bridge", reps, "5", "2", "3"])
    [record] = read_log([header, line], "a.csv", "csv").records
    assert isinstance(record, progressor.Outcome) and record.reps == (5, 5, 4)


# -- dates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    ["2026-01-06", "2026-01-06T09:30:00", "2026-01-06T23:30:00Z", "2026-01-06 23:30+02:00"],
)
def test_a_date_time_is_read_as_its_day_as_written(written: str) -> None:
    lines = [
        json.dumps({"kind": "pain", "date": written, "pain": 3}),  # the fast path
        json.dumps({"date": written, "pain": 3}),  # the readable path
        json.dumps({"date": written, "exercise": "bridge", "reps": [5], "pain_before": 1}),
    ]
    log = read_log(lines, "a.jsonl", "jsonl")
    assert log.set_aside == ()
    assert [str(r.date) for r in log.records] == ["2026-01-06"] * 3
    [csv_record] = read_log(["date,pain", f"{written},3"], "a.csv", "csv").records
    assert str(csv_record.date) == "2026-01-06"
    # Set aside for another reason, its pain is still kept on its day.
    [kept] = read_log([f'{{"date":"{written}","pain":9,}}'], "a.jsonl", "jsonl").records
    assert str(kept.date) == "2026-01-06" and kept.pain == 9  # type: ignore[union-attr]


# -- pains outside 0-10 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        '{"date":"2026-01-05","pain":-3}',
        '{"date":"2026-01-05","pain":11}',
        '{"date":"2026-01-05","exercise":"bridge","pain_during":"-3"}',
        '{"date":"2026-01-05","pain":"6.9e+33"}',
        '{"date":"2026-01-05","pain":6.9e+33}',
        '{"date":"2026-01-05","pain":1' + "0" * 400 + "}",
        '{"date":"2026-01-05","pain":1' + "0" * 5000 + "}",
        '{"kind":"pain","date":"2026-01-05","pain":1' + "0" * 400 + "}",
        '{"date":"2026-01-05","pain":NaN}',
        '{"date":"2026-01-05","pain":Infinity}',
        '{"date":"2026-01-05","pain":"nan"}',
    ],
)
def test_a_pain_outside_0_to_10_is_set_aside_and_counts_as_10(line: str) -> None:
    assert _kept_pain(line) == 10


def test_a_csv_pain_outside_0_to_10_counts_as_10() -> None:
    assert _kept_pain("2026-01-05,bridge,5,5,2,-3,2", "csv") == 10


# -- lines that once crashed the reader or took seconds -------------------------------------------


def test_a_lone_surrogate_is_replaced_and_the_rest_of_the_file_is_read() -> None:
    lines = [
        '{"date":"2026-01-05","pain":2,"note":"a \\ud800 b"}',
        '{"date":"2026-01-06","pain":8}',
    ]
    log = read_log(lines, "a.jsonl", "jsonl")
    assert log.set_aside == ()
    assert log.records[0].note == "a \ufffd b"  # type: ignore[union-attr]
    assert log.records[1].pain == 8  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "line",
    [
        '{"date":"2026-01-10","pain":9,"x":' + "[" * 3000 + "1",  # broken, nested deep
        '{"date":"2026-01-10","pain":9,"x":' + "[" * 40 + "]" * 40 + "}",  # valid, too deep
        '{"date":"2026-01-10","pain":9,"x":"' + "\\" * 48_000,  # (the old regex took seconds)
        '{"date":"2026-01-10","pain":9,' + '"a":[' * 9_000,
        '{"date":"2026-01-10","pain":9,' + '"a":"' * 9_000,
        '{"date":"2026-01-10","pain":9,' + '"' * 48_000,
    ],
)
def test_no_line_crashes_the_reader_and_its_pain_is_kept(line: str) -> None:
    assert _kept_pain(line) == 9


def test_a_line_longer_than_the_limit_is_set_aside_and_its_pain_kept() -> None:
    line = '{"date":"2026-01-10","pain":9,"note":"' + "x" * MAX_LINE + '"}'
    log = read_log(["", line], "a.jsonl", "jsonl")
    [aside] = log.set_aside
    assert aside.line == 2 and aside.reason.startswith("longer than 65,536 characters")
    assert [r.pain for r in log.records] == [9]  # type: ignore[union-attr]
    csv_line = "2026-01-10,bridge,5,5,2,9,note" + "x" * MAX_LINE
    assert _kept_pain(csv_line, "csv", CSV_HEADER + ",note") == 9


def test_every_row_carries_its_line_number_and_text() -> None:
    text = 'date,pain,note\n2026-01-05,3,"two\nlines"\n\n2026-01-06,x,\n'
    found = list(rows(text.splitlines(keepends=True), "a.csv", "csv"))
    assert [(r.line, r.text) for r in found] == [
        (3, '2026-01-05,3,"two\nlines"'),
        (5, "2026-01-06,x,"),
    ]
    assert found[0].record is not None and found[1].reason.startswith("pain:")


# -- through the command line: a flare in a bad line pauses ---------------------------------------

BAD_LINES = [
    '{"date":"2026-01-07","pain":9,"pain":1}',
    '{"kind":"pain","date":"2026-01-07","pain":1,"pain":9}',
    '{"date":"2026-01-07","pain":-3}',
    '{"date":"2026-01-07","pain":1' + "0" * 400 + "}",
    '{"date":"2026-01-07","pain":"6.9e+33"}',
    '{"date":"2026-01-07T21:30:00+01:00","pain":8}',
    '{"date":"2026-01-07","pain":9,"x":' + "[" * 3000,
]


@pytest.mark.parametrize("line", BAD_LINES)
def test_next_pauses_on_the_pain_of_a_bad_line(line: str, tmp_path: Path) -> None:
    log = tmp_path / "anna.jsonl"
    log.write_text("\n".join([*map(json.dumps, full_week()), line]) + "\n", encoding="utf-8")
    done = run("next", SEED, "--log", str(log), "--format", "json")
    assert done.returncode in (0, 3), done.stderr
    assert json.loads(done.stdout)["status"] == "paused"
    if done.returncode == 3:  # set aside: named with its file and line
        assert f"set aside: {log}:10: " in done.stderr


def test_next_names_the_file_and_line_of_a_record_dated_later(tmp_path: Path) -> None:
    log = tmp_path / "anna.jsonl"
    rows_ = [*map(json.dumps, full_week()), '{"date":"2999-01-01","pain":9}']
    log.write_text("\n".join(rows_) + "\n", encoding="utf-8")
    done = run("next", SEED, "--log", str(log), "--format", "json")
    assert done.returncode == 3 and f"set aside: {log}:10: pain report of 2999-01-01" in done.stderr


def test_a_semicolon_csv_with_repeated_columns_pauses_through_next(tmp_path: Path) -> None:
    log = tmp_path / "anna.csv"
    week = [f"{r['date']};{r['exercise']};5;5;2;2;2" for r in full_week()]  # (reps one set of 5)
    header = "Date;Exercise;Reps;Hold S;Pain Before;Pain-During;pain_during"
    log.write_text("\n".join([header, *week, "2026-01-07;bridge;5;5;2;9;2"]) + "\n", "utf-8")
    done = run("next", SEED, "--log", str(log), "--format", "json")
    assert done.returncode == 3 and f"{log}:11: 'pain_during' given twice" in done.stderr
    assert json.loads(done.stdout)["status"] == "paused"


# -- encodings ------------------------------------------------------------------------------------


def test_another_encoding_is_read_with_encoding_and_refused_with_its_line_without(
    tmp_path: Path,
) -> None:
    log = tmp_path / "anna.csv"
    lines = [CSV_HEADER + ",note"]
    lines += [f"{r['date']},{r['exercise']},5,5,2,2,2,ok" for r in full_week()]
    lines.append("2026-01-07,bridge,5,5,2,9,2,douleur aiguë")
    log.write_bytes(("\n".join(lines) + "\n").encode("cp1252"))
    done = run("next", SEED, "--log", str(log), "--format", "json")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{log}:11: not UTF-8 text (byte 0xeb at column 41)" in done.stderr
    assert "--encoding cp1252" in done.stderr
    done = run("next", SEED, "--log", str(log), "--format", "json", "--encoding", "cp1252")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "paused"
    unknown = run("next", SEED, "--log", str(log), "--encoding", "klingon")
    assert unknown.returncode == 1 and "unknown encoding 'klingon'" in unknown.stderr


def test_a_byte_order_mark_is_no_part_of_the_first_column(tmp_path: Path) -> None:
    log = tmp_path / "anna.csv"
    log.write_text("\ufeffdate,pain\n2026-01-05,3\n", encoding="utf-8")
    assert progressor.load_log(log).records[0].pain == 3  # type: ignore[union-attr]
    lines = iter(['\ufeff{"kind":"pain","date":"2026-01-05","pain":3}', '{"date":"x","pain":9}'])
    log_of_lines = read_log(lines, "a.jsonl", "jsonl")
    assert [r.pain for r in log_of_lines.records] == [3]  # type: ignore[union-attr]
    assert [s.line for s in log_of_lines.set_aside] == [2]


# -- through the store: import, recompute, review -------------------------------------------------


def test_bad_lines_imported_into_the_store_raise_alerts(tmp_path: Path) -> None:
    env = {"PROGRESSOR_STORE": str(tmp_path / "clinic.db"), "USER": "dr-lee"}
    assert run("init", env=env).returncode == 0
    patients = [f"p{n}" for n in range(len(BAD_LINES))]
    for patient in [*patients, "calm"]:
        done = run("enroll", patient, "--program", SEED, "--start", START.isoformat(), env=env)
        assert done.returncode == 0, done.stderr
    lines = [json.dumps({**r, "patient": p}) for p in [*patients, "calm"] for r in full_week()]
    for patient, line in zip(patients, BAD_LINES, strict=True):
        lines.append(line.replace("{", f'{{"patient":"{patient}",', 1))
    # A lone surrogate in a note (valid JSON) does not refuse the file: the pain after it counts.
    lines.append('{"patient":"calm","date":"2026-01-06","pain":2,"note":"\\ud800"}')
    log = tmp_path / "week.jsonl"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = run("import", str(log), env=env)
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr
    assert run("recompute", "--week", "2026-01-12", env=env).returncode == 0
    queue = run("review", env=env).stdout
    for patient in patients:
        assert f"{patient}  week 2  paused" in queue
    assert "calm" not in queue


def test_the_store_imports_another_encoding_and_refuses_bad_bytes_with_their_line(
    tmp_path: Path,
) -> None:
    env = {"PROGRESSOR_STORE": str(tmp_path / "clinic.db"), "USER": "dr-lee"}
    assert run("init", env=env).returncode == 0
    assert run("enroll", "ana", "--program", SEED, "--start", START.isoformat(), env=env)
    log = tmp_path / "week.csv"
    log.write_bytes("patient;date;pain;note\nana;2026-01-06;9;épaule\n".encode("latin-1"))
    refused = run("import", str(log), env=env)
    assert refused.returncode == 1 and f"{log}:2: not UTF-8 text" in refused.stderr
    assert "nothing imported" in refused.stderr
    done = run("import", str(log), "--encoding", "latin-1", env=env)
    assert done.returncode == 0 and "1 added" in done.stdout, done.stderr


def test_a_list_under_a_pain_key_counts_at_its_worst() -> None:
    log = read_log(['{"date": "2026-01-06", "pain": [3, 9]}'], "a.jsonl", "jsonl")
    (aside,) = log.set_aside
    assert aside.line == 1 and [getattr(r, "pain", None) for r in log.records] == [9.0]


_EVERY_FIELD = (
    '{"kind":"outcome","patient":"p1","date":"2026-01-05","exercise":"bridge","side":"left",'
    '"reps":[5,4],"hold_s":5,"duration_s":[30.5],"load_kg":2.5,"pain_before":0,'
    '"pain_during":-0.0,"pain_after":3.5,"pain_next_morning":10,"rpe":4,"skipped":false,'
    '"adverse_event":true,"flags":["numbness"],"note":"fine"}'
)


@pytest.mark.parametrize(
    "line",
    [
        '{"kind":"outcome","date":"2026-01-05","exercise":"bridge"}',
        '{"kind":"pain","date":"2026-01-05","pain":3}',
        '{"kind":"pain","date":"2026-01-05","pain":-0,"context":"flare","flags":["x"]}',
        '{"kind": "outcome", "date": "2026-01-05", "exercise": "bridge", "side": null}',
        _EVERY_FIELD,
    ],
)
def test_the_fast_path_builds_records_as_validation_does(line: str) -> None:
    # records._plain_records reads plain lines with pydantic-core's field validation and
    # builds the records itself (records._built): they must be the records the readable path
    # validates, field for field, of the same types and in the same order.
    [fast] = records._plain_records([line]) or pytest.fail("not read on the fast path")
    slow = records.parse_record(json.loads(line))
    assert type(fast) is type(slow) and fast == slow and hash(fast) == hash(slow)
    assert list(vars(fast)) == list(vars(slow))
    assert [type(v) for v in vars(fast).values()] == [type(v) for v in vars(slow).values()]
    assert repr(fast) == repr(slow) and pickle.loads(pickle.dumps(fast)) == fast
    assert fast.model_dump_json() == slow.model_dump_json()
    zeros = [v for v in vars(fast).values() if type(v) is float and v == 0]
    assert all(math.copysign(1, v) == 1 for v in zeros)


@pytest.mark.parametrize("zero", ["-0", "-0.0", "-0e3", "-0.0E-2"])
def test_a_negative_zero_is_read_as_zero(zero: str) -> None:
    lines = [
        '{"kind":"pain","date":"2026-01-06","pain":' + zero + "}",
        '{"kind":"outcome","date":"2026-01-06","exercise":"bridge","pain_before":' + zero + "}",
    ]
    log = read_log(lines, "a.jsonl", "jsonl")
    assert log.set_aside == ()
    values = [log.records[0].pain, log.records[1].pain_before]  # type: ignore[union-attr]
    assert values == [0.0, 0.0] and [math.copysign(1, v) for v in values] == [1.0, 1.0]


@pytest.mark.parametrize("spacing", [",", ", "])
def test_a_key_given_twice_never_passes_the_fast_path(spacing: str) -> None:
    line = '{"kind":"pain","date":"2026-01-05","pain":9' + spacing + '"pain":1}'
    log = read_log([line], "a.jsonl", "jsonl")
    assert [r.line for r in log.set_aside] == [1] and "given twice" in log.set_aside[0].reason
    assert [getattr(r, "pain", None) for r in log.records] == [9.0]


# -- plain lines are read many at a time, and that changes nothing -----------------------------

_PLAIN = '{"kind":"outcome","date":"2026-01-0%d","exercise":"bridge","reps":[5],"pain_before":%d}'
_LINES = [
    _PLAIN % (5, 2),
    _PLAIN % (6, 0),
    '{"kind": "pain", "date": "2026-01-06T09:30:00+01:00", "pain": 4, "note": "at 9:30"}',
    '{"kind":"pain","date":"2026-01-06","pain":9,"pain":1}',
    '{"kind":"pain","date":"2026-01-06","pain":9,"pain"\r:1}',
    '{"kind":"outcome","date":"2026-01-07","exercise":"bridge","skipped":true}',
    '{"kind":"pain","date":"2026-01-07","pain":3},{"kind":"pain","date":"2026-01-07","pain":8}',
    '{"kind":"pain","date":"2026-01-07","pain":7',
    '{"kind":"pain","date":"2026-01-07","pain":42}',
    '{"kind":"pain","date":"2026-01-07","pain":5,"note":"caf\\u00e9"}',
    '{"date":"2026-01-07","pain":6}',
    '{"kind":"pain","date":"2027-03-01","pain":8}',
    '{"kind":"pain","date":"2026-01-07","pain":-0.0}',
    '{"kind":"pain","date":"2026-01-07","pain":-3}',
    '{"kind":"outcome","date":"2026-01-07T18:00:00","exercise":"bridge","pain_after":9}',
    '["kind"]',
    "",
    "   ",
    '{"kind":"pain","date":"2026-01-07","pain":2}\n',
]


def _alone(lines: list[str]) -> tuple[list[object], list[object], list[int]]:
    """What each line gives when read on its own, numbered as in the whole log."""
    records: list[object] = []
    aside: list[object] = []
    numbers: list[int] = []
    for number, line in enumerate(lines, start=1):
        log = read_log([line], "a.jsonl", "jsonl", today=dt.date(2026, 1, 8))
        records += log.records
        aside += [a.model_copy(update={"line": number}) for a in log.set_aside]
        numbers += [number] * len(log.records)
    return records, aside, numbers


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_LINES), max_size=40), st.integers(0, 600))
def test_a_log_reads_as_its_lines_read_one_by_one(picked: list[str], plain: int) -> None:
    # Plain lines are validated a chunk at a time (records.CHUNK), halving a chunk to find the
    # lines that are not plain: whatever the mix, each line means what it means alone.
    lines = [_PLAIN % (5, n % 11) for n in range(plain)] + picked
    log = read_log(lines, "a.jsonl", "jsonl", today=dt.date(2026, 1, 8))
    records, aside, numbers = _alone(lines)
    assert list(log.records) == records
    assert list(log.set_aside) == aside
    assert list(log.lines) == numbers


def test_a_bad_line_deep_in_a_long_log_is_found_at_its_line() -> None:
    lines = [_PLAIN % (5, 2)] * 1000
    lines[700] = '{"kind":"pain","date":"2026-01-06","pain":9,"pain":1}'
    log = read_log(lines, "a.jsonl", "jsonl")
    assert [a.line for a in log.set_aside] == [701]
    assert log.lines[700] == 701 and log.records[700].pain == 9  # type: ignore[union-attr]
    assert len(log.records) == 1000 and list(log.lines) == list(range(1, 1001))
    found = list(rows(lines, "a.jsonl", "jsonl"))
    assert [r.line for r in found] == list(range(1, 1001)) and found[700].record is None


def test_a_day_never_looks_like_a_minus_zero_and_every_minus_zero_does() -> None:
    # The fast path looks for a -0.0 only when the text may hold one (records._minus_zero_written):
    # a day's "-0" is always followed by a digit; a number's never is.
    days = [f'"2026-{m:02d}-{d:02d}"' for m in range(1, 13) for d in range(1, 29)]
    assert not records._minus_zero_written(",".join(days))
    for zero in ("-0", "-0.0", "-0e1", "-0E-2", "-0.000", "-0 ", "-0]", "-0}"):
        assert records._minus_zero_written('{"pain":' + zero + "}"), zero
    assert records._minus_zero_written('"id-0"') and not records._minus_zero_written('"id-01"')


def test_read_log_makes_the_log_its_constructor_makes() -> None:
    # _log_of sets a Log's fields in one go (dict_setter): the same instance as Log(...) makes.
    lines = ['{"kind":"pain","date":"2026-01-07","pain":3}', "not json"]
    log = read_log(lines, "t", "jsonl")
    made = Log(log.records, log.set_aside, log.lines)
    assert log == made and vars(log) == vars(made) and list(vars(log)) == list(vars(made))
    assert (len(log.records), len(log.set_aside), log.lines) == (1, 1, (1,))


OUTCOME_LINE = {
    "date": "2026-01-05",
    "exercise": "bridge",
    "reps": [5],
    "hold_s": 5,
    "pain_before": 2,
    "pain_during": 2,
}


@pytest.mark.parametrize(
    "nulls",
    [
        {"note": None},
        {"flags": None, "skipped": None, "adverse_event": None, "duration_s": None},
        {"kind": None, "note": None},
        {"context": None, "pain": None},  # (the other kind's: an export of every column)
        {"side": None, "pain_next_morning": None, "mood": None},  # (mood: no field at all)
    ],
)
def test_a_json_null_for_a_field_not_required_is_the_field_not_given(
    nulls: dict[str, None], tmp_path: Path
) -> None:
    """As an empty CSV cell or a Parquet null: the record means the same however exported."""
    with_nulls = read_log([json.dumps({**OUTCOME_LINE, **nulls})], "a.jsonl", "jsonl")
    without = read_log([json.dumps(OUTCOME_LINE)], "a.jsonl", "jsonl")
    assert not with_nulls.set_aside and with_nulls.records == without.records
    csv = tmp_path / "a.csv"
    columns = [*OUTCOME_LINE, *nulls]
    cells = [str(OUTCOME_LINE.get(c, "")).strip("[]") for c in columns]
    csv.write_text(",".join(columns) + "\n" + ",".join(cells) + "\n", encoding="utf-8")
    assert progressor.load_log(csv).records == without.records


def test_a_json_null_for_a_required_field_is_still_set_aside_with_its_pain() -> None:
    line = '{"date": "2026-01-05", "pain": null, "note": null, "pain_during": 9}'
    log = read_log([line], "a.jsonl", "jsonl")
    assert log.set_aside[0].reason.startswith("pain: Input should be a valid number")
    assert [r.pain for r in log.records] == [9.0]  # (kept for the safety rules)


def test_a_null_exercise_beside_a_pain_is_a_pain_report() -> None:
    """{"exercise": null, "pain": 9} without a kind: a pain report, as its Parquet row is."""
    log = read_log(['{"date": "2026-01-05", "exercise": null, "pain": 9}'], "a.jsonl", "jsonl")
    assert not log.set_aside and [(r.kind, r.pain) for r in log.records] == [("pain", 9.0)]
