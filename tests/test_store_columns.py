"""The store's recompute with the column engine (`engine="columns"`): the same stored rows as
the per-patient engine, flares paused, idempotent re-runs, clinician actions, several program
versions, a run killed with SIGKILL, and the command line."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import progressor
from progressor.demo import shipped_text
from progressor.errors import ProgressorError
from progressor.reading import parse_record
from progressor.reading.records import plain_fields
from progressor.store.batch import Summary, recompute
from progressor.store.columns import StoreColumns
from progressor.store.database import Store
from progressor.store.values import canonical_json
from progressor.synth import DEFAULT_START, synthesize_into_store
from tests.conftest import ROOT, full_week
from tests.fuzzing.run import same_field
from tests.test_batch import KILLED_RUN

WEEK = dt.timedelta(days=7)
AS_OF = DEFAULT_START + WEEK  # the first week has ended
SHIPPED = ("low-back-pain", "achilles-tendinopathy", "graded-walking")
SEED_TEXT = shipped_text("low-back-pain")
SEED = progressor.parse_program(SEED_TEXT)
#: The seed program at another version: its patients are computed by their own version.
SEED_NEXT_TEXT = SEED_TEXT.replace('version = "1.0.0"', 'version = "1.1.0"', 1)


def dump(path: Path) -> list[str]:
    with Store.open(path) as store:
        return list(store.dump_results())


def rows(patient: str, records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps({**record, "patient": patient}) for record in records]


def enrollment(patient: str, start: dt.date = DEFAULT_START) -> progressor.Enrollment:
    return progressor.Enrollment(patient=patient, program=SEED.id, start=start)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic one-week clinic on three shipped programs, and patients the column engine
    leaves to the per-patient one: a flare, two ended weeks, a week under way, a patient
    discharged; and one on another version of the seed program."""
    path = tmp_path_factory.mktemp("store-columns") / "template.db"
    engine = progressor.Engine()
    texts = [shipped_text(name) for name in SHIPPED]
    programs = [(engine.compile(progressor.parse_program(t)), t) for t in texts]
    with Store.init(path) as store:
        synthesize_into_store(store, programs, 240, 1, seed=3)
        store.enroll(enrollment("x-flare"), SEED)
        store.enroll(enrollment("x-two-weeks", DEFAULT_START - WEEK), SEED)
        store.enroll(enrollment("x-under-way", DEFAULT_START + dt.timedelta(days=3)), SEED)
        store.enroll(enrollment("x-discharged"), SEED)
        flare = {"kind": "pain", "date": str(DEFAULT_START + dt.timedelta(days=2)), "pain": 8}
        lines = rows("x-flare", [*full_week(DEFAULT_START), flare])
        lines += rows("x-two-weeks", full_week(DEFAULT_START - WEEK) + full_week(DEFAULT_START))
        lines += rows("x-under-way", full_week(DEFAULT_START + dt.timedelta(days=3), days=(0,)))
        lines += rows("x-discharged", full_week(DEFAULT_START))
        next_version = progressor.parse_program(SEED_NEXT_TEXT)
        store.add_program(next_version, SEED_NEXT_TEXT)
        store.enroll(enrollment("x-next-version"), next_version)
        lines += rows("x-next-version", full_week(DEFAULT_START, pain=1))
        store.import_records(lines, "week-1.jsonl", today=AS_OF)
        store.discharge("x-discharged", "moved away", "dr-lee")
    return path


def both(template: Path, folder: Path, **options: Any) -> tuple[Summary, Summary]:
    """The same store recomputed by each engine (copies in `folder`); their summaries."""
    summaries = []
    for engine in ("patients", "columns"):
        shutil.copy(template, folder / f"{engine}.db")
        summaries.append(recompute(folder / f"{engine}.db", as_of=AS_OF, engine=engine, **options))
    return summaries[0], summaries[1]


def test_both_engines_store_the_same_rows(template: Path, tmp_path: Path) -> None:
    by_patients, by_columns = both(template, tmp_path)
    assert dump(tmp_path / "columns.db") == dump(tmp_path / "patients.db")
    assert by_columns.computed == by_patients.computed == 240 + 4  # (not the discharged)
    assert by_columns.actions == by_patients.actions and by_columns.alerts == by_patients.alerts
    assert by_patients.paths == {"patients": 244}
    # The seed program's one-week patients (a third of the clinic, and the other version's)
    # go by columns; the flare, the longer and the shorter timelines per patient.
    assert 60 <= by_columns.paths["columns"] <= 100
    assert sum(by_columns.paths.values()) == 244


def test_patients_alike_but_for_their_id_store_each_their_own_rows(tmp_path: Path) -> None:
    # The column path makes a week-after prescription's row once for patients who fared
    # alike and puts each one's id in it: ids beyond ASCII, an id that is part of another, the
    # same week with another mean pain, another start day; and an id JSON writes with escapes
    # (its lines are not plain: per patient).
    path = tmp_path / "alike.db"
    ids = ["ann", "ann-2", "zoë", "o'neil", "ann 3", "日本-1", 'say "hi"']
    later = DEFAULT_START + dt.timedelta(days=1)
    with Store.init(path) as store:
        store.add_program(SEED, SEED_TEXT)
        lines = []
        for n, patient in enumerate(ids):
            store.enroll(enrollment(patient), SEED)
            lines += rows(patient, full_week(DEFAULT_START, pain=1 + n % 2))
        store.enroll(enrollment("ann-later", later), SEED)
        lines += rows("ann-later", full_week(later, pain=1))
        store.import_records(lines, "alike.jsonl", today=AS_OF + dt.timedelta(days=1))
    shutil.copy(path, tmp_path / "columns.db")
    day = AS_OF + dt.timedelta(days=1)
    by_columns = recompute(tmp_path / "columns.db", as_of=day, engine="columns")
    by_patients = recompute(path, as_of=day, engine="patients")
    assert by_columns.paths == {"columns": len(ids), "patients": 1}
    assert by_patients.computed == len(ids) + 1
    assert dump(tmp_path / "columns.db") == dump(path)
    with Store.open(tmp_path / "columns.db") as store:
        for patient in [*ids, "ann-later"]:
            assert [p.patient for p in store.prescriptions(patient)] == [patient, patient]


def test_a_flare_pauses_and_is_alerted_whichever_engine(template: Path, tmp_path: Path) -> None:
    by_patients, by_columns = both(template, tmp_path)
    assert by_columns.alerts == by_patients.alerts >= 1
    with Store.open(tmp_path / "columns.db") as store:
        assert store.prescriptions("x-flare")[-1].status == "paused"
        assert [a.rule for a in store.alerts("x-flare")] == ["pain-flare"]
        assert store.prescriptions("x-next-version")[-1].program_version == "1.1.0"


def test_a_second_run_does_nothing_and_new_data_is_computed_alike(
    template: Path, tmp_path: Path
) -> None:
    both(template, tmp_path)
    new = {"kind": "pain", "date": str(DEFAULT_START + dt.timedelta(days=5)), "pain": 3}
    for engine in ("patients", "columns"):
        path = tmp_path / f"{engine}.db"
        before = dump(path)
        again = recompute(path, as_of=AS_OF, engine=engine)
        assert (again.due, again.computed) == (0, 0) and dump(path) == before
        with Store.open(path) as store:
            store.import_records(rows("p0003", [new]) + rows("p0006", [new]), "late.jsonl")
        assert recompute(path, as_of=AS_OF, engine=engine).computed == 2
    assert dump(tmp_path / "columns.db") == dump(tmp_path / "patients.db")


def test_a_patient_with_clinician_actions_is_computed_per_patient(
    template: Path, tmp_path: Path
) -> None:
    both(template, tmp_path)
    dose = progressor.Dose(sets=1, reps=6, hold_s=5)
    for engine in ("patients", "columns"):
        path = tmp_path / f"{engine}.db"
        with Store.open(path) as store:
            week = store.prescriptions("p0003")[-1].week
            store.override("p0003", "pelvic-tilt", dose, "too easy", "dr-lee", week=1)
            store.resume("x-flare", "settled", "dr-lee")
        again = recompute(path, as_of=AS_OF, engine=engine)
        assert again.paths == {"patients": 2} and week == 2
    assert dump(tmp_path / "columns.db") == dump(tmp_path / "patients.db")


def test_workers_and_a_failing_column_engine_store_the_same_rows(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    both(template, tmp_path)
    shutil.copy(template, tmp_path / "workers.db")
    # 9 batches: workers compute with the column engine each (spawned, not forked: this
    # process has run polars, whose threads would not survive a fork)
    two = recompute(
        tmp_path / "workers.db", as_of=AS_OF, workers=2, batch_size=30, engine="columns"
    )
    assert two.paths["columns"] > 0
    assert dump(tmp_path / "workers.db") == dump(tmp_path / "patients.db")

    def broken(*args: object) -> None:
        raise RuntimeError("a column form's bug")

    monkeypatch.setattr(StoreColumns, "compute", broken)
    shutil.copy(template, tmp_path / "broken.db")
    held = recompute(tmp_path / "broken.db", as_of=AS_OF, engine="columns")
    assert held.paths == {"patients": 244} and held.failures == ()
    assert dump(tmp_path / "broken.db") == dump(tmp_path / "patients.db")


def test_unknown_engine_and_missing_polars_are_clear_errors(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(template, tmp_path / "c.db")
    with pytest.raises(ProgressorError, match="unknown engine 'rows'"):
        recompute(tmp_path / "c.db", as_of=AS_OF, engine="rows")
    monkeypatch.setitem(sys.modules, "progressor.columns.engine", None)  # (import fails)
    with pytest.raises(ProgressorError, match=r"pip install 'progressor\[columns\]'"):
        recompute(tmp_path / "c.db", as_of=AS_OF, engine="columns")
    auto = recompute(tmp_path / "c.db", as_of=AS_OF, engine="auto")
    assert auto.paths == {"patients": 244}


def test_a_stored_record_goes_to_the_column_engine_as_it_is_stored() -> None:
    # The store keeps every field (canonical JSON, nulls included): the column engine's
    # reader takes such a line as it is, to the values the reader reads.
    pl = pytest.importorskip("polars")
    from progressor.columns.reading import PlainColumns

    outcome = progressor.Outcome(date=DEFAULT_START, exercise="bridge", patient="a", reps=(5,))
    report = progressor.PainReport(date=DEFAULT_START, pain=3, patient="a")
    lines = [canonical_json(outcome), canonical_json(report)]
    assert "null" in lines[0]
    rows, taken = PlainColumns().read(pl.Series(lines, dtype=pl.String))
    assert taken.to_list() == [True, True]
    for line, row in zip(lines, rows.drop("line").to_dicts(), strict=True):
        read = plain_fields([line])
        assert read is not None and parse_record(json.loads(line)) in (outcome, report)
        for name, value in read[0][0].items():
            assert same_field(value, row.get(name)), (name, value, row.get(name))


_RUN = KILLED_RUN.replace("ARGS", 'engine="columns"')


def test_a_column_run_killed_inside_a_write_then_run_again_equals_a_clean_run(
    template: Path, tmp_path: Path
) -> None:
    shutil.copy(template, tmp_path / "clean.db")
    recompute(tmp_path / "clean.db", as_of=AS_OF)
    path = tmp_path / "killed.db"
    shutil.copy(template, path)
    command = [sys.executable, "-c", _RUN, str(path), AS_OF.isoformat(), "130"]
    done = subprocess.run(command, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL
    with Store.open(path) as store:
        assert store.status().up_to_date == 120  # three batches stored, the fourth rolled back
    rest = recompute(path, as_of=AS_OF, engine="columns")
    assert rest.computed == 244 - 120 and rest.paths["columns"] > 0
    assert dump(path) == dump(tmp_path / "clean.db")


def test_recompute_engine_columns_on_the_store_from_the_command_line(tmp_path: Path) -> None:
    from tests.test_cli import run

    only_builtins = {"PROGRESSOR_PLUGINS": ""}  # (an installed plugin's rule has no column form)
    outputs = {}
    for engine in ("patients", "columns"):
        env = {**only_builtins, "PROGRESSOR_STORE": str(tmp_path / f"{engine}.db")}
        synth = ("synth", "--patients", "30", "--weeks", "1", "--start", str(DEFAULT_START))
        assert run(*synth, env=env).returncode == 0
        command = ("recompute", "--week", str(AS_OF), "--workers", "1", "--engine", engine)
        done = run(*command, env=env)
        assert done.returncode == 0, done.stderr
        outputs[engine] = done.stdout
    assert dump(tmp_path / "columns.db") == dump(tmp_path / "patients.db")
    assert "30 patients computed" in outputs["columns"]
    assert "computed by the column engine: " in outputs["columns"]
    assert "computed by the column engine: 0," not in outputs["columns"]
    assert "column engine" not in outputs["patients"]


#: recompute with --engine auto in a fresh interpreter: who computed whom, and whether polars
#: was imported (`python -c _AUTO STORE AS_OF`).
_AUTO = """
import datetime as dt, sys
from progressor.store.batch import recompute
summary = recompute(sys.argv[1], as_of=dt.date.fromisoformat(sys.argv[2]), engine="auto")
print(sorted(summary.paths.items()), "polars" in sys.modules)
"""


def test_auto_leaves_fewer_due_patients_than_the_dataset_s_smallest_run_to_the_per_patient_engine(
    template: Path, tmp_path: Path
) -> None:
    # The dataset's policy (progressor.engines): 244 due patients are too few for the
    # column engine's own cost; polars is not even imported.
    from progressor.engines import AUTO_SMALLEST

    assert AUTO_SMALLEST > 244
    shutil.copy(template, tmp_path / "c.db")
    command = [sys.executable, "-c", _AUTO, str(tmp_path / "c.db"), AS_OF.isoformat()]
    done = subprocess.run(command, cwd=ROOT, timeout=120, check=True, capture_output=True)
    assert done.stdout.decode().split() == ["[('patients',", "244)]", "False"]
    both(template, tmp_path)  # (tmp_path / "patients.db": the per-patient engine's rows)
    assert dump(tmp_path / "c.db") == dump(tmp_path / "patients.db")


def test_auto_computes_as_many_due_patients_as_the_dataset_s_smallest_run_in_columns(
    tmp_path: Path,
) -> None:
    from progressor.engines import AUTO_SMALLEST

    path = tmp_path / "c.db"
    compiled = progressor.Engine().compile(SEED)
    with Store.init(path) as store:
        synthesize_into_store(store, [(compiled, SEED_TEXT)], AUTO_SMALLEST, 1, seed=5)
    first = recompute(path, as_of=AS_OF, engine="auto")
    assert first.computed == AUTO_SMALLEST and first.paths["columns"] > AUTO_SMALLEST // 2
    new = {"kind": "pain", "date": str(DEFAULT_START + dt.timedelta(days=5)), "pain": 3}
    with Store.open(path) as store:
        store.import_records(rows("p0003", [new]) + rows("p0006", [new]), "late.jsonl")
    assert recompute(path, as_of=AS_OF, engine="auto").paths == {"patients": 2}
