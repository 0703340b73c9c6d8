"""Parquet logs: read as a CSV log is (column names, a column given twice, empty cells),
each row's line its row number, through the command line and the store's import."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import progressor
from progressor.errors import LogError
from progressor.reading.records import load_log
from tests.conftest import PROGRAMS, START, full_week
from tests.test_cli import run

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

SEED = str(PROGRAMS / "low-back-pain.toml")


def _write(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(list(rows)), path)
    return path


def _write_columns(path: Path, columns: Mapping[str, list[Any]]) -> Path:
    # (From arrays: two columns may be named alike, which a dict of rows cannot say.)
    arrays = [pa.array(values) for values in columns.values()]
    pq.write_table(pa.Table.from_arrays(arrays, names=list(columns)), path)
    return path


def _typed(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Log rows as a dataframe library writes them: dates as dates."""
    return [{**r, "date": dt.date.fromisoformat(r["date"])} for r in rows]


def test_a_parquet_log_is_read_as_its_records(tmp_path: Path) -> None:
    log = load_log(_write(tmp_path / "a.parquet", _typed(full_week())))
    assert log.set_aside == () and len(log.records) == 9
    first = log.records[0]
    assert isinstance(first, progressor.Outcome)
    assert (first.date, first.exercise, first.reps, first.pain_before) == (
        START,
        "pelvic-tilt",
        (5,),
        2,
    )
    assert log.lines == tuple(range(1, 10))


def test_a_parquet_flare_pauses_through_next(tmp_path: Path) -> None:
    rows = [*full_week(), *full_week(START + dt.timedelta(days=7), days=(0,), pain=8)]
    log = _write(tmp_path / "anna.parquet", _typed(rows))
    after = (START + dt.timedelta(days=14)).isoformat()
    done = run("next", SEED, "--log", str(log), "--format", "json", "--as-of", after)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "paused"


def test_a_parquet_flare_imported_into_the_store_pauses(tmp_path: Path) -> None:
    env = {"PROGRESSOR_STORE": str(tmp_path / "clinic.db"), "USER": "dr-lee"}
    assert run("init", env=env).returncode == 0
    for patient in ("flare", "calm"):
        done = run("enroll", patient, "--program", SEED, "--start", START.isoformat(), env=env)
        assert done.returncode == 0, done.stderr
    rows = [{**r, "patient": "calm"} for r in full_week()]
    rows += [{**r, "patient": "flare"} for r in full_week(pain=9)]
    log = _write(tmp_path / "week.parquet", _typed(rows))
    done = run("import", str(log), env=env)
    assert done.returncode == 0 and "18 added" in done.stdout, done.stderr
    assert run("recompute", "--week", "2026-01-12", env=env).returncode == 0
    queue = run("review", env=env).stdout
    assert "flare  week 2  paused" in queue and "calm" not in queue


def test_a_column_given_twice_sets_the_row_aside_with_the_higher_pain(tmp_path: Path) -> None:
    columns = {
        "Date": ["2026-01-06", "2026-01-07"],
        "Exercise": ["bridge", "bridge"],
        "Reps": [[5, 5], [5, 5]],
        "Pain Before": [2, 3],
        "pain_before": [9, 3],  # (the same value twice is one value: row 2 is read)
    }
    path = _write_columns(tmp_path / "twice.parquet", columns)
    log = load_log(path)
    [aside] = log.set_aside
    assert (aside.source, aside.line) == (str(path), 1)
    assert "'pain_before' given twice, 2 and 9" in aside.reason
    assert '"Pain Before": 2, "pain_before": 9' in aside.record
    kept, read = log.records
    assert isinstance(kept, progressor.PainReport) and kept.pain == 9
    assert isinstance(read, progressor.Outcome) and read.reps == (5, 5)
    assert log.lines == (1, 2)


def test_a_set_aside_row_is_reported_by_its_row_number(tmp_path: Path) -> None:
    rows = [{**r, "reps": " ".join(map(str, r["reps"]))} for r in full_week()]  # (text column)
    rows[4] = {**rows[4], "reps": "five"}  # row 5: a typo, its pain still counts
    path = _write(tmp_path / "log.parquet", rows)
    [aside] = load_log(path).set_aside
    assert aside.line == 5 and "reps" in aside.reason
    done = run("next", SEED, "--log", str(path), "--as-of", "2026-01-12")
    assert f"set aside: {path}:5: " in done.stderr, done.stderr


def test_empty_cells_are_absent_and_text_lists_are_split(tmp_path: Path) -> None:
    columns = {
        "date": ["2026-01-06", "2026-01-06"],
        "exercise": ["bridge", None],
        "reps": ["5 5", None],
        "pain": [None, 4.0],
        "note": ["  ", "after work"],
    }
    log = load_log(_write_columns(tmp_path / "cells.parquet", columns))
    outcome, pain = log.records
    assert log.set_aside == ()
    assert isinstance(outcome, progressor.Outcome) and outcome.reps == (5, 5)
    assert not outcome.note  # (a blank cell is no note)
    assert isinstance(pain, progressor.PainReport) and pain.pain == 4


def test_a_date_time_is_read_as_its_day(tmp_path: Path) -> None:
    moments = [dt.datetime(2026, 1, 6, 23, 30), dt.datetime(2026, 1, 7, 8, 0)]
    table = pa.table(
        {
            "date": pa.array(moments, pa.timestamp("ns")),  # (pandas' unit)
            "pain": [3, 4],
        }
    )
    path = tmp_path / "moments.parquet"
    pq.write_table(table, path)
    log = load_log(path)
    assert [r.date for r in log.records] == [dt.date(2026, 1, 6), dt.date(2026, 1, 7)]


def test_two_date_columns_are_named_in_the_reason(tmp_path: Path) -> None:
    columns = {"Date": [dt.date(2026, 1, 6)], "date": ["2026-01-07"], "pain": [8]}
    log = load_log(_write_columns(tmp_path / "dates.parquet", columns))
    [aside] = log.set_aside
    assert "'date' given twice, \"2026-01-06\" and '2026-01-07'" in aside.reason
    [kept] = log.records
    assert isinstance(kept, progressor.PainReport) and kept.pain == 8


def test_a_file_that_is_not_parquet_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "week.parquet"
    path.write_text("date,pain\n2026-01-06,9\n", encoding="utf-8")
    with pytest.raises(LogError, match=f"{path}: not a readable Parquet file"):
        load_log(path)
    done = run("next", SEED, "--log", str(path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{path}: not a readable Parquet file" in done.stderr


def test_the_store_refuses_a_file_that_is_not_parquet(tmp_path: Path) -> None:
    env = {"PROGRESSOR_STORE": str(tmp_path / "clinic.db"), "USER": "dr-lee"}
    assert run("init", env=env).returncode == 0
    path = tmp_path / "week.parquet"
    path.write_bytes(b"PAR1 not really")
    done = run("import", str(path), env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{path}: not a readable Parquet file" in done.stderr
    assert "nothing imported" in done.stderr


def test_without_pyarrow_reading_parquet_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "a.parquet", _typed(full_week()))
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # (import fails as if absent)
    with pytest.raises(LogError, match=r"pip install 'progressor\[parquet\]'"):
        load_log(path)


def test_a_set_aside_row_s_text_is_its_columns_as_json(tmp_path: Path) -> None:
    columns = {
        "date": [dt.date(2026, 1, 6)],
        "exercise": ["pont fessier"],
        "reps": [[5, 5]],
        "pain_during": ["8/10"],
        "note": ["ça tire"],
        "rpe": [None],
    }
    [aside] = load_log(_write_columns(tmp_path / "text.parquet", columns)).set_aside
    assert aside.record == (
        '{"date": "2026-01-06", "exercise": "pont fessier", "reps": [5, 5], '
        '"pain_during": "8/10", "note": "ça tire", "rpe": null}'
    )
