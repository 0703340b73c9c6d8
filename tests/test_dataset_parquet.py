"""Parquet datasets: Parquet partitions read through the one record reader give the JSONL
path's decisions; output tables as Parquet, byte for byte repeatable."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import progressor
from progressor.dataset import parquet
from progressor.dataset.run import partitions, run_local
from progressor.errors import ProgressorError
from progressor.synth import synthesize_dataset
from tests.conftest import PROGRAMS, START, compiled_programs
from tests.test_cli import run

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

WEEKS = 2
AS_OF = START + dt.timedelta(days=7 * WEEKS)
TABLES = ("prescriptions", "decisions", "alerts", "set_aside")


def tables(out: Path, suffix: str = ".jsonl") -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob(f"*{suffix}"))
        if p.parts[len(out.parts)] in TABLES
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic cohort written as JSONL, and the same as Parquet."""
    jsonl = tmp_path_factory.mktemp("jsonl")
    programs = compiled_programs()
    synthesize_dataset(str(jsonl), programs, patients=90, weeks=WEEKS, seed=3, partitions=3)
    as_parquet = tmp_path_factory.mktemp("parquet")
    parquet.to_parquet(str(jsonl), str(as_parquet))
    return jsonl, as_parquet


def _seed_only(location: Path) -> Path:
    (location / "programs").mkdir(parents=True)
    shutil.copy(PROGRAMS / "low-back-pain.toml", location / "programs")
    return location


def _write(location: Path, columns: dict[str, list[Any]]) -> None:
    location.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), location)


def _enroll(dataset: Path, *patients: str) -> None:
    _write(
        dataset / "enrollments" / "part-00000.parquet",
        {
            "patient": list(patients),
            "program": ["low-back-pain"] * len(patients),
            "start": [START] * len(patients),
        },
    )


def _rows(out: Path, table: str) -> list[dict[str, Any]]:
    text = (out / table / "part-00000.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


# -- input ------------------------------------------------------------------------------------


def test_a_parquet_cohort_gives_the_decisions_of_the_same_cohort_in_jsonl(
    cohort: tuple[Path, Path], tmp_path: Path
) -> None:
    jsonl, as_parquet = cohort
    assert partitions(str(as_parquet)) == partitions(str(jsonl)) == [0, 1, 2]
    assert not list((as_parquet / "records").glob("*.jsonl"))
    run_local(str(jsonl), str(tmp_path / "a"), AS_OF, workers=1)
    summaries = run_local(str(as_parquet), str(tmp_path / "b"), AS_OF, workers=1)
    assert sum(s.patients for s in summaries) == 90
    a, b = tables(tmp_path / "a"), tables(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 12
    for name in a:
        if not name.startswith("set_aside"):
            assert a[name] == b[name], name
        else:  # the same rows, located in the Parquet file by row (one row a line)
            assert a[name] == b[name].replace(b'.parquet"', b'.jsonl"'), name


def _seed_cohort(tmp_path: Path, patients: int) -> None:
    """One judged week of the seed program (what the column engine covers) for `patients`
    patients, as JSONL (`jsonl/`) and as Parquet (`in/`)."""
    path = PROGRAMS / "low-back-pain.toml"
    compiled = progressor.Engine().compile(progressor.load_program(path))
    program = [(compiled, path.read_text(encoding="utf-8"))]
    synthesize_dataset(str(tmp_path / "jsonl"), program, patients, 1, 5, 1, START)
    parquet.to_parquet(str(tmp_path / "jsonl"), str(tmp_path / "in"))


def test_the_column_engine_computes_a_parquet_partition_alike(tmp_path: Path) -> None:
    pytest.importorskip("polars")
    _seed_cohort(tmp_path, 60)
    one_week = START + dt.timedelta(days=7)
    run_local(str(tmp_path / "jsonl"), str(tmp_path / "j"), one_week, 1)
    run_local(str(tmp_path / "in"), str(tmp_path / "p"), one_week, 1)
    columns = run_local(str(tmp_path / "in"), str(tmp_path / "c"), one_week, 1, engine="columns")
    assert columns[0].paths.get("columns", 0) > 30
    assert tables(tmp_path / "c") == tables(tmp_path / "p") == tables(tmp_path / "j")


def test_a_parquet_partition_in_chunks_of_a_few_rows_is_computed_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read in columns, a Parquet partition's patients are chunked by their rows (each about
    fourteen: a chunk of 30 rows holds two or three patients), with the same output."""
    pytest.importorskip("polars")
    from progressor.columns import engine as columns_engine

    _seed_cohort(tmp_path, 40)
    one_week = START + dt.timedelta(days=7)
    run_local(str(tmp_path / "in"), str(tmp_path / "p"), one_week, 1)
    monkeypatch.setattr(columns_engine, "_CHUNK_LINES", 30)
    sizes: list[int] = []
    split = columns_engine._chunks
    monkeypatch.setattr(
        columns_engine,
        "_chunks",
        lambda group, table: [sizes.append(len(c)) or c for c in split(group, table)],
    )
    columns = run_local(str(tmp_path / "in"), str(tmp_path / "c"), one_week, 1, engine="columns")
    assert columns[0].paths.get("columns", 0) > 20
    assert len(sizes) >= 15 and max(sizes) <= 3  # (two or three patients a chunk)
    assert tables(tmp_path / "c") == tables(tmp_path / "p")


def test_a_parquet_partition_is_read_in_columns_for_the_column_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the column engine, a Parquet file's rows are read in columns (PlainTable): the
    record reader reads only the rows of the patients who go per patient, and the output is
    byte for byte the per-patient engine's, odd rows and all."""
    pytest.importorskip("polars")
    _seed_cohort(tmp_path, 300)
    records = tmp_path / "in" / "records" / "part-00000.parquet"
    table = pq.read_table(records)
    patients = sorted(set(table["patient"].to_pylist()))
    day = START + dt.timedelta(days=3)
    odd: list[dict[str, Any]] = [  # each one patient's: some taken in columns, some not
        {"patient": patients[0], "kind": "pain", "date": day, "pain": -0.0},
        {"patient": patients[1], "kind": "pain", "date": day, "pain": 9.0, "note": "bad"},
        {"patient": patients[2], "kind": "pain", "date": day, "pain": float("nan")},
        {"patient": f" {patients[3]} ", "kind": "pain", "date": day, "pain": 2.0},
        {"patient": patients[4], "kind": None, "date": day, "pain": 3.0, "note": ""},
        {"patient": patients[5], "kind": "outcome", "date": day, "exercise": " bridge "}
        | {"reps": [5], "hold_s": 5.0, "pain_before": 1.0, "pain_during": 2.0},
        {"patient": patients[6], "kind": "pain", "date": day, "pain": 2.1234567},
        {"patient": patients[7], "kind": "pain", "date": day, "pain": 4.0, "exercise": "x"},
        {"patient": patients[8], "kind": "pain", "date": day, "pain": 12.0},
        {"patient": patients[9], "kind": "outcome", "date": day, "exercise": "plank"}
        | {"reps": [5], "pain_before": 1.0, "pain_during": 1.0},
    ]
    names = sorted({name for row in odd for name in row})
    extra = pa.Table.from_pylist([{name: row.get(name) for name in names} for row in odd])
    table = pa.concat_tables([table, extra], promote_options="permissive")
    pq.write_table(table, records)
    read: list[int] = []
    rows_of = parquet.parquet_table_rows

    def counted(table: Any, numbers: Any) -> Any:
        read.extend(numbers)
        return rows_of(table, numbers)

    monkeypatch.setattr(parquet, "parquet_table_rows", counted)
    one_week = START + dt.timedelta(days=7)
    compute = progressor.dataset.compute_partition
    columns = compute(str(tmp_path / "in"), str(tmp_path / "c"), 0, one_week, engine="columns")
    assert 0 < len(read) < table.num_rows // 4  # (the odd rows' patients, and few others)
    assert columns.paths["columns"] > 200
    monkeypatch.undo()
    compute(str(tmp_path / "in"), str(tmp_path / "p"), 0, one_week)
    assert tables(tmp_path / "c") == tables(tmp_path / "p")
    paused = [r for r in _rows(tmp_path / "c", "prescriptions") if r["status"] == "paused"]
    assert patients[1] in {r["patient"] for r in paused}  # (its pain of 9, read in columns)


def test_a_flare_in_a_parquet_partition_pauses(tmp_path: Path) -> None:
    dataset = _seed_only(tmp_path / "in")
    _enroll(dataset, "p1", "p2")
    _write(
        dataset / "records" / "part-00000.parquet",
        {
            "patient": ["p2", "p1"],
            "kind": ["pain", "pain"],
            "date": [START + dt.timedelta(days=2)] * 2,
            "pain": [2.0, 8.0],
        },
    )
    (summary,) = run_local(str(dataset), str(tmp_path / "out"), AS_OF, workers=1)
    assert summary.paused == 1 and summary.set_aside == 0
    status = {r["patient"]: r["status"] for r in _rows(tmp_path / "out", "prescriptions")}
    assert status == {"p1": "paused", "p2": "active"}
    assert [a["patient"] for a in _rows(tmp_path / "out", "alerts")] == ["p1"]


def test_a_bad_parquet_row_is_set_aside_at_its_row_and_its_pain_still_pauses(
    tmp_path: Path,
) -> None:
    dataset = _seed_only(tmp_path / "in")
    _enroll(dataset, "p1", "p2", "p3")
    _write(
        dataset / "records" / "part-00000.parquet",
        {
            "patient": ["p3", "p1", "p2", "p3"],
            "kind": ["pain"] * 4,
            "date": ["2026-01-06", "2026-01-07", "2026-1-8", "2026-01-08"],
            "pain": ["2", "8/10", "9", "1"],
        },
    )
    (summary,) = run_local(str(dataset), str(tmp_path / "out"), AS_OF, workers=1)
    aside = _rows(tmp_path / "out", "set_aside")
    assert [(r["patient"], r["source"], r["line"]) for r in aside] == [
        ("p1", "records/part-00000.parquet", 2),
        ("p2", "records/part-00000.parquet", 3),
    ]
    assert "pain" in aside[0]["reason"] and '"8/10"' in aside[0]["record"]
    assert "date" in aside[1]["reason"] and "kept for the safety rules" in aside[1]["reason"]
    status = {r["patient"]: r["status"] for r in _rows(tmp_path / "out", "prescriptions")}
    assert status == {"p1": "paused", "p2": "paused", "p3": "active"}
    assert summary.set_aside == 2


def test_parquet_columns_are_named_as_loosely_as_a_log_s(tmp_path: Path) -> None:
    dataset = _seed_only(tmp_path / "in")
    _enroll(dataset, "p1")
    _write(
        dataset / "records" / "part-00000.parquet",
        {
            "Patient": ["p1"],
            "Kind": ["outcome"],
            "Exercise": ["bridge"],
            "Date": [START + dt.timedelta(days=1)],
            "Reps": [[5, 5]],
            "Pain Before": [1.0],
            "Pain During": [8.0],
        },
    )
    (summary,) = run_local(str(dataset), str(tmp_path / "out"), AS_OF, workers=1)
    assert summary.set_aside == 0 and summary.paused == 1


def test_a_bad_enrollment_row_and_a_row_without_patient_are_located_by_row(
    tmp_path: Path,
) -> None:
    dataset = _seed_only(tmp_path / "in")
    _write(
        dataset / "enrollments" / "part-00000.parquet",
        {"patient": ["p1", "p2"], "program": ["low-back-pain"] * 2, "start": [str(START), "x"]},
    )
    _write(
        dataset / "records" / "part-00000.parquet",
        {"patient": ["p1", None], "kind": ["pain"] * 2, "date": ["2026-01-06"] * 2, "pain": [2, 3]},
    )
    run_local(str(dataset), str(tmp_path / "out"), AS_OF, workers=1)
    aside = _rows(tmp_path / "out", "set_aside")
    assert (aside[0]["patient"], aside[0]["source"], aside[0]["line"]) == (
        "p2",
        "enrollments/part-00000.parquet",
        2,
    )
    assert aside[-1]["problem"].startswith("records/part-00000.parquet row 2: a record without")


def test_a_partition_in_both_formats_is_refused(cohort: tuple[Path, Path], tmp_path: Path) -> None:
    jsonl, as_parquet = cohort
    both = tmp_path / "both"
    shutil.copytree(as_parquet, both)
    shutil.copy(jsonl / "enrollments" / "part-00000.jsonl", both / "enrollments")
    with pytest.raises(ProgressorError, match=r"as \.jsonl and as \.parquet: keep one"):
        run_local(str(both), str(tmp_path / "out"), AS_OF, workers=1, parts=[0])


def test_an_unchanged_parquet_partition_is_skipped_and_a_changed_one_computed_in_full(
    cohort: tuple[Path, Path], tmp_path: Path
) -> None:
    _, as_parquet = cohort
    dataset, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(as_parquet, dataset)
    run_local(str(dataset), str(out), AS_OF, workers=1)
    # Partition 1's records rewritten whole with one more row: a flare of its first patient.
    records = dataset / "records" / "part-00001.parquet"
    table = pq.read_table(records)
    flare = table.slice(0, 1).to_pylist()[0]  # (the first session again, in pain)
    first = flare["patient"]
    flare.update(pain_before=2.0, pain_during=9.0, pain_after=8.0)
    grown = pa.concat_tables([table, pa.Table.from_pylist([flare], schema=table.schema)])
    pq.write_table(grown, records)
    again = run_local(str(dataset), str(out), AS_OF, workers=1)
    assert [s.skipped for s in again] == [True, False, True]
    clean = tmp_path / "clean"
    run_local(str(dataset), str(clean), AS_OF, workers=1)
    assert tables(out) == tables(clean)
    paused = [r for r in _rows_of(out, 1, "prescriptions") if r["patient"] == first]
    assert paused[0]["status"] == "paused"


def _rows_of(out: Path, part: int, table: str) -> list[dict[str, Any]]:
    text = (out / table / f"part-{part:05d}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_an_enrollment_row_s_overrides_are_json_text(tmp_path: Path) -> None:
    dataset = _seed_only(tmp_path / "in")
    _write(
        dataset / "enrollments" / "part-00000.parquet",
        {
            "patient": ["p1", "p2"],
            "program": ["low-back-pain"] * 2,
            "start": [START] * 2,
            "overrides": ['{"bridge": {"sets": 1, "reps": 4, "hold_s": 5}}', "{bridge"],
        },
    )
    run_local(str(dataset), str(tmp_path / "out"), START + dt.timedelta(days=3), workers=1)
    [prescribed] = _rows(tmp_path / "out", "prescriptions")
    assert prescribed["patient"] == "p1"
    assert prescribed["exercises"]["bridge"]["dose"]["reps"] == 4
    [aside] = _rows(tmp_path / "out", "set_aside")
    assert (aside["patient"], aside["line"]) == ("p2", 2) and "overrides" in aside["reason"]


def test_a_parquet_partition_without_records_is_computed(tmp_path: Path) -> None:
    dataset = _seed_only(tmp_path / "in")
    _enroll(dataset, "p1")
    (summary,) = run_local(str(dataset), str(tmp_path / "out"), AS_OF, workers=1)
    assert summary.patients == 1 and summary.set_aside == 0


def test_without_pyarrow_a_parquet_partition_says_what_to_install(
    cohort: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, as_parquet = cohort
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # (import fails as if absent)
    with pytest.raises(ProgressorError, match=r"pip install 'progressor\[parquet\]'"):
        run_local(str(as_parquet), str(tmp_path / "out"), AS_OF, workers=1, parts=[0])


def test_a_parquet_dataset_at_a_url(cohort: tuple[Path, Path], tmp_path: Path) -> None:
    # fsspec's in-memory filesystem stands in for s3:// or gs:// (one process: workers=1).
    fsspec = pytest.importorskip("fsspec")
    jsonl, as_parquet = cohort
    memory = fsspec.filesystem("memory")
    memory.put(str(as_parquet), "/parquet-clinic/in", recursive=True)
    url = "memory://parquet-clinic"
    run_local(f"{url}/in", f"{url}/out", AS_OF, workers=1, out_format="parquet")
    again = run_local(f"{url}/in", f"{url}/out", AS_OF, workers=1, out_format="parquet")
    assert [s.skipped for s in again] == [True, True, True]
    run_local(str(jsonl), str(tmp_path / "j"), AS_OF, workers=1)
    for part in range(3):
        decisions = parquet.read_table(f"{url}/out/decisions/part-{part:05d}.parquet")
        expected = (tmp_path / "j" / "decisions" / f"part-{part:05d}.jsonl").read_text()
        assert decisions == expected.splitlines()


# -- output -----------------------------------------------------------------------------------


def test_parquet_output_holds_the_jsonl_rows_in_a_fixed_schema(
    cohort: tuple[Path, Path], tmp_path: Path
) -> None:
    jsonl, _ = cohort
    run_local(str(jsonl), str(tmp_path / "j"), AS_OF, workers=1)
    run_local(str(jsonl), str(tmp_path / "p"), AS_OF, workers=1, out_format="parquet")
    assert not list((tmp_path / "p" / "prescriptions").glob("*.jsonl"))
    for name, text in tables(tmp_path / "j").items():
        table, part = name.split("/")
        location = tmp_path / "p" / table / part.replace(".jsonl", ".parquet")
        assert parquet.read_table(str(location)) == text.decode().splitlines()
        assert pq.read_schema(location) == parquet.schema(table)
    decisions = pq.read_table(tmp_path / "p" / "decisions" / "part-00000.parquet")
    assert set(decisions.column("action").to_pylist()) <= {"progress", "hold", "regress", "pause"}
    # A re-run skips the partitions; a deleted Parquet table is written again.
    (tmp_path / "p" / "alerts" / "part-00002.parquet").unlink()
    again = run_local(str(jsonl), str(tmp_path / "p"), AS_OF, workers=1, out_format="parquet")
    assert [s.skipped for s in again] == [True, True, False]
    assert (tmp_path / "p" / "alerts" / "part-00002.parquet").exists()


def test_switching_the_output_format_leaves_no_tables_of_the_other(
    cohort: tuple[Path, Path], tmp_path: Path
) -> None:
    jsonl, _ = cohort
    out = tmp_path / "o"
    run_local(str(jsonl), str(out), AS_OF, workers=1)
    first = tables(out)
    run_local(str(jsonl), str(out), AS_OF, workers=1, out_format="parquet")
    assert not list((out / "prescriptions").glob("*.jsonl"))  # (last run's rows, stale)
    assert len(list((out / "prescriptions").glob("*.parquet"))) == 3
    run_local(str(jsonl), str(out), AS_OF, workers=1)
    assert not list(out.rglob("*.parquet")) and not list((out / "_jsonl").rglob("*.jsonl"))
    assert tables(out) == first


def test_dask_and_local_cores_write_the_same_parquet(
    cohort: tuple[Path, Path], tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed")
    from progressor.dataset.run import run_dask

    _, as_parquet = cohort
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        run_dask(str(as_parquet), str(tmp_path / "dask"), AS_OF, client, out_format="parquet")
    run_local(str(as_parquet), str(tmp_path / "local"), AS_OF, workers=2, out_format="parquet")
    written = tables(tmp_path / "dask", ".parquet")
    assert len(written) == 12 and written == tables(tmp_path / "local", ".parquet")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """A Parquet partition of twelve patients without rows set aside, and its Parquet output."""
    location = tmp_path_factory.mktemp("small")
    engine = progressor.Engine()
    path = PROGRAMS / "low-back-pain.toml"
    program = [(engine.compile(progressor.load_program(path)), path.read_text(encoding="utf-8"))]
    synthesize_dataset(str(location / "jsonl"), program, patients=12, weeks=2, seed=9, partitions=1)
    parquet.to_parquet(str(location / "jsonl"), str(location / "in"))
    out = location / "out"
    run_local(str(location / "in"), str(out), AS_OF, workers=1, out_format="parquet")
    assert not parquet.read_table(str(out / "set_aside" / "part-00000.parquet"))
    return location / "in", tables(out, ".parquet")


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.randoms(use_true_random=False))
def test_parquet_output_is_byte_identical_in_any_record_order(
    small: tuple[Path, dict[str, bytes]], tmp_path_factory: pytest.TempPathFactory, random: Any
) -> None:
    dataset, expected = small
    shuffled = tmp_path_factory.mktemp("shuffled")
    shutil.copytree(dataset / "programs", shuffled / "programs")
    shutil.copytree(dataset / "enrollments", shuffled / "enrollments")
    table = pq.read_table(dataset / "records" / "part-00000.parquet")
    order = list(range(table.num_rows))
    random.shuffle(order)
    (shuffled / "records").mkdir()
    pq.write_table(table.take(order), shuffled / "records" / "part-00000.parquet")
    out = shuffled / "out"
    run_local(str(shuffled), str(out), AS_OF, workers=1, out_format="parquet")
    assert tables(out, ".parquet") == expected


def test_without_pyarrow_parquet_output_says_what_to_install(
    cohort: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jsonl, _ = cohort
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # (import fails as if absent)
    with pytest.raises(ProgressorError, match=r"pip install 'progressor\[parquet\]'"):
        run_local(str(jsonl), str(tmp_path / "out"), AS_OF, workers=1, out_format="parquet")


# -- command line -----------------------------------------------------------------------------


def test_synth_and_recompute_read_and_write_parquet_from_the_command_line(
    tmp_path: Path,
) -> None:
    data, out = tmp_path / "in", tmp_path / "out"
    synth = ("synth", "--patients", "30", "--weeks", "1", "--start", str(START))
    made = run(*synth, "--out", str(data), "--partitions", "2", "--format", "parquet")
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (data / "records").iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    week = str(START + dt.timedelta(days=7))
    args = ("recompute", "--dataset", str(data), "--out", str(out), "--week", week)
    done = run(*args, "--out-format", "parquet", "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert "30 patients in 2 partitions (0 already done)" in done.stdout
    assert sorted(p.name for p in (out / "decisions").iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    prescribed = parquet.read_table(str(out / "prescriptions" / "part-00000.parquet"))
    assert prescribed and all(json.loads(row)["week"] == 2 for row in prescribed)
    store = run("recompute", "--out-format", "parquet", "--store", str(tmp_path / "s.db"))
    assert store.returncode == 1 and "--out-format go with --dataset" in store.stderr
    into_store = run(*synth, "--format", "parquet", "--store", str(tmp_path / "s.db"))
    assert into_store.returncode == 1 and "--format goes with --out" in into_store.stderr
    assert "Traceback" not in store.stderr + into_store.stderr


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('{"patient": "p1", "kind": "pain", "date": "2026-01-07", "pain": 9, "pain": 1}', "twice"),
        ('{"patient": "p1", "kind": "pain", "date": "2026-01-07T08:00:00", "pain": 9}', "a day"),
        ('{"patient": "p1", "kind": "pain", "date": "2026-01-07", "pain": 9', "fix the line"),
        ('["p1", 9]', "not a JSON object"),
        ('{"patient": "p1", "kind": "pain", "date": "2026-W02-3", "pain": 9}', "a day"),
    ],
)
def test_to_parquet_refuses_a_line_a_row_would_change_and_leaves_no_file(
    line: str, why: str, tmp_path: Path
) -> None:
    """A row keeping one of a repeated key's values would hide the 9 the JSONL reader keeps."""
    source, target = tmp_path / "jsonl", tmp_path / "parquet"
    for folder in ("enrollments", "records", "programs"):
        (source / folder).mkdir(parents=True)
    enrolled = {"patient": "p1", "program": "low-back-pain", "start": START.isoformat()}
    (source / "enrollments" / "part-00000.jsonl").write_text(json.dumps(enrolled) + "\n")
    good = '{"patient": "p1", "kind": "pain", "date": "2026-01-06", "pain": 2}'
    (source / "records" / "part-00000.jsonl").write_text(f"{good}\n\n{line}\n")
    with pytest.raises(ProgressorError, match=why) as refused:
        parquet.to_parquet(str(source), str(target))
    assert "records/part-00000.jsonl, line 3" in str(refused.value)
    assert not (target / "records" / "part-00000.parquet").exists()
    assert not list(target.rglob("*.writing"))  # (nothing half-written left either)


def test_to_parquet_refuses_a_column_of_two_types(tmp_path: Path) -> None:
    source = tmp_path / "jsonl"
    for folder in ("enrollments", "records", "programs"):
        (source / folder).mkdir(parents=True)
    lines = [
        '{"patient": "p1", "date": "2026-01-06", "pain": 2.0}',
        '{"patient": "p1", "pain": "8"}',
    ]
    (source / "records" / "part-00000.jsonl").write_text("".join(f"{x}\n" for x in lines))
    with pytest.raises(ProgressorError, match="different types"):
        parquet.to_parquet(str(source), str(tmp_path / "parquet"))
    assert not (tmp_path / "parquet" / "records" / "part-00000.parquet").exists()


def test_to_parquet_leaves_no_partition_when_one_is_refused(tmp_path: Path) -> None:
    """A partition with its enrollments and no records would run, its flares unseen."""
    source, target = tmp_path / "jsonl", tmp_path / "parquet"
    for folder in ("enrollments", "records", "programs"):
        (source / folder).mkdir(parents=True)
    shutil.copy(PROGRAMS / "low-back-pain.toml", source / "programs")
    for part, patient in enumerate(("p1", "p2")):
        enrolled = {"patient": patient, "program": "low-back-pain", "start": START.isoformat()}
        name = f"part-{part:05d}.jsonl"
        (source / "enrollments" / name).write_text("\ufeff" + json.dumps(enrolled) + "\n")
        report = {"patient": patient, "kind": "pain", "date": "2026-01-06", "pain": 9}
        (source / "records" / name).write_text(json.dumps(report) + "\n")
    big = '{"patient": "p2", "kind": "outcome", "date": "2026-01-06", "exercise": "bridge", '
    with (source / "records" / "part-00001.jsonl").open("a") as records:
        records.write(big + '"rpe": 99999999999999999999999}\n')
    with pytest.raises(ProgressorError, match=r"part-00001\.jsonl: cannot convert"):
        parquet.to_parquet(str(source), str(target))
    assert not list(target.rglob("*.parquet")) and not list(target.rglob("*.writing"))
    (source / "records" / "part-00001.jsonl").write_text(json.dumps(report) + "\n")
    parquet.to_parquet(str(source), str(target))  # (a byte-order mark is read as JSONL's)
    assert len(list(target.rglob("*.parquet"))) == 4
