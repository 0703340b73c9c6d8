"""The column engine (progressor.columns) against the per-patient engine: the same rows.

The column engine decides each distinct exercise week with the step's own code, but reads,
aggregates and screens in columns of its own: these differential tests are what holds the
two to one meaning (byte-identical output tables, whichever engine computed a patient).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import progressor
from progressor.dataset import TABLES_OUT, part_name
from progressor.dataset.partition import compute_partition
from progressor.demo import shipped_text
from progressor.errors import ProgressorError
from progressor.synth import synthesize_dataset

pytest.importorskip("polars")

START = dt.date(2026, 1, 5)
AS_OF = START + dt.timedelta(days=7)  # one week ended: the usual clinic run
SEED = shipped_text("low-back-pain")
#: The seed at its ceilings: a met week holds, flagged ready for the next phase.
AT_TOP = (
    SEED.replace('id = "low-back-pain"', 'id = "at-top"')
    .replace(
        "dose = { sets = 1, reps = 5, hold_s = 5 }",
        "dose = { sets = 1, reps = 10, hold_s = 10 }",
        1,
    )
    .replace(
        'dose = { reps = 5, hold_s = 5, side = "each" }',
        'dose = { reps = 5, hold_s = 30, side = "each" }',
    )
)
#: The seed at its floors, sessions_required 1.
AT_FLOOR = (
    SEED.replace('id = "low-back-pain"', 'id = "at-floor"')
    .replace("sessions_required = 3", "sessions_required = 1")
    .replace(
        "dose = { sets = 1, reps = 5, hold_s = 5 }", "dose = { sets = 1, reps = 3, hold_s = 3 }"
    )
)
EXERCISES = ("pelvic-tilt", "knee-to-chest", "bridge")


def _write(root: Path, programs: dict[str, str], enrollments: list[str], records: list[str]) -> str:
    for folder in ("programs", "enrollments", "records"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, text in programs.items():
        (root / "programs" / f"{name}.toml").write_text(text, encoding="utf-8")
    name = f"{part_name(0)}.jsonl"
    (root / "enrollments" / name).write_text("".join(f"{e}\n" for e in enrollments))
    (root / "records" / name).write_text("".join(f"{r}\n" for r in records))
    return str(root)


def _both(dataset: str, root: Path, as_of: dt.date = AS_OF, **kwargs: Any) -> dict[str, int]:
    """Compute partition 0 with each engine; assert byte-identical tables; the paths taken."""
    summaries = {}
    for engine in ("patients", "columns"):
        out = str(root / f"out-{engine}")
        summaries[engine] = compute_partition(dataset, out, 0, as_of, engine=engine, **kwargs)
    for table in TABLES_OUT:
        name = f"{table}/{part_name(0)}.jsonl"
        by_patients = (root / "out-patients" / name).read_bytes()
        by_columns = (root / "out-columns" / name).read_bytes()
        assert by_columns == by_patients, table
    first, second = summaries["patients"], summaries["columns"]
    assert (first.actions, first.paused, first.alerts) == (
        second.actions,
        second.paused,
        second.alerts,
    )
    assert first.paths == {}  # (counted with the column engine only)
    assert sum(second.paths.values()) == second.patients
    return second.paths


# -- hypothesis cohorts on the seed program ---------------------------------------------------

pains = st.one_of(st.none(), st.integers(0, 10).map(float), st.sampled_from([0.5, 2.25, 6.99, 7.0]))
outcome = st.fixed_dictionaries(
    {
        "day": st.integers(-1, 8),  # (before the start, and the week after, sometimes)
        "at": st.sampled_from(["", "", "", "T23:30:00", " 09:30+02:00"]),  # a date-time
        "exercise": st.sampled_from([*EXERCISES, "plank"]),
        "reps": st.lists(st.integers(0, 13), max_size=3),
        "hold_s": st.one_of(st.none(), st.sampled_from([2.0, 3.0, 5, 10.0, 30, 4.999])),
        "pain_before": pains,
        "pain_during": pains,
        "pain_after": pains,
        "side": st.sampled_from([None, None, "left", "right"]),
        "skipped": st.sampled_from([False] * 4 + [True]),
        "adverse_event": st.sampled_from([False] * 9 + [True]),
        "flags": st.sampled_from([[]] * 9 + [["night-pain"]]),
    }
)
report = st.fixed_dictionaries(
    {
        "day": st.integers(0, 7),
        "pain": st.integers(0, 10).map(float),
        "context": st.sampled_from(["flare", "morning", "other"]),
    }
)
#: A session as the patient was told to do it, more or less: met weeks, holds just short,
#: ceilings reached (the random outcomes above rarely make a met week).
session = st.fixed_dictionaries(
    {
        "reps": st.sampled_from([[5], [5], [6], [4], [10], [12], [3], [5, 5]]),
        "hold_s": st.sampled_from([5.0, 5, 4.999, 10.0, 30.0, 3.0]),
        "pain_before": st.sampled_from([0.0, 1.0, 2.5]),
        "pain_during": st.sampled_from([0.0, 1.0, 2.5, 1.25, None]),
        "side": st.sampled_from([None] * 5 + ["left"]),
    }
)
patient = st.fixed_dictionaries(
    {
        "days": st.sets(st.integers(0, 6)),
        "session": session,
        "program": st.sampled_from(["low-back-pain"] * 4 + ["at-top", "at-floor"]),
        "start_days_back": st.sampled_from([0] * 8 + [7, -3]),  # two weeks ended; none yet
        "overrides": st.sampled_from([{}] * 9 + [{"bridge": {"sets": 1, "reps": 6, "hold_s": 5}}]),
        # (Most patients log only their sessions: an odd record sends many per-patient.)
        "outcomes": st.one_of(st.just([]), st.just([]), st.lists(outcome, max_size=6)),
        "reports": st.one_of(st.just([]), st.lists(report, max_size=2)),
        "broken": st.sampled_from([False] * 9 + [True]),
    }
)


def _lines(index: int, data: dict[str, Any]) -> tuple[str, list[str]]:
    name = f"p{index:04d}"
    start = START - dt.timedelta(days=data["start_days_back"])
    enrollment = {
        "patient": name,
        "program": data["program"],
        "start": str(start),
        "overrides": data["overrides"],
    }
    records = []
    done = {k: v for k, v in data["session"].items() if v is not None}
    for day in sorted(data["days"]):
        for exercise in EXERCISES:
            record = {"date": str(START + dt.timedelta(days=day)), "exercise": exercise, **done}
            records.append(json.dumps({**record, "patient": name, "kind": "outcome"}))
    for o in data["outcomes"]:
        record = {k: v for k, v in o.items() if v is not None and k not in ("day", "at")}
        day = f"{START + dt.timedelta(days=o['day'])}{o['at']}"
        record.update(date=day, patient=name, kind="outcome")
        records.append(json.dumps(record))
    for r in data["reports"]:
        record = {"date": str(START + dt.timedelta(days=r["day"])), "pain": r["pain"]}
        record.update(context=r["context"], patient=name, kind="pain")
        records.append(json.dumps(record))
    if data["broken"] and records:
        records[0] = records[0][:-1]  # not JSON any more: read the readable way
    return json.dumps(enrollment), records


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(patient, min_size=1, max_size=12))
def test_generated_cohorts_give_the_same_rows_through_both_engines(
    cohort: list[dict[str, Any]],
) -> None:
    enrollments, records = [], []
    for i, data in enumerate(cohort):
        enrollment, lines = _lines(i, data)
        enrollments.append(enrollment)
        records += lines
    programs = {"low-back-pain": SEED, "at-top": AT_TOP, "at-floor": AT_FLOOR}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        paths = _both(_write(root / "in", programs, enrollments, records), root)
    event(f"computed in columns: {'some' if paths.get('columns') else 'none'}")


# -- examples: what the column path takes, and what it leaves -----------------------------------


def _week(
    name: str, days: int, pain_during: float | None = 1.0, reps: int = 5, hold: float = 5.0
) -> list[str]:
    return [
        json.dumps(
            {
                "date": str(START + dt.timedelta(days=d)),
                "exercise": exercise,
                "reps": [reps],
                "hold_s": hold,
                "pain_before": 1.0,
                "pain_during": pain_during,
                "patient": name,
                "kind": "outcome",
            }
        )
        for d in range(days)
        for exercise in EXERCISES
    ]


def _enrolled(name: str, program: str = "low-back-pain") -> str:
    return json.dumps({"patient": name, "program": program, "start": str(START)})


def test_the_column_path_takes_the_usual_week_and_routes_the_rest(tmp_path: Path) -> None:
    records = [
        *_week("met", 4),  # progresses
        *_week("short", 2),  # held: too few sessions (adherence, in columns)
        *_week("flare", 3, pain_during=8.0),  # pain-flare: per patient
        *_week("new-pain", 3, pain_during=3.0),  # new-pain: per patient
        *_week("unscored", 1, pain_during=None),  # missing-data: per patient
    ]
    names = ("met", "short", "flare", "new-pain", "unscored", "idle")
    dataset = _write(
        tmp_path / "in", {"low-back-pain": SEED}, [_enrolled(n) for n in names], records
    )
    paths = _both(dataset, tmp_path)
    assert paths == {"columns": 3, "patients": 3}  # met, short, idle; the others


def test_a_program_at_its_ceiling_holds_ready_for_the_next_phase_in_columns(
    tmp_path: Path,
) -> None:
    dataset = _write(
        tmp_path / "in",
        {"at-top": AT_TOP},
        [_enrolled("top", "at-top")],
        _week("top", 4, reps=10, hold=30.0),
    )
    assert _both(dataset, tmp_path) == {"columns": 1}
    row = (tmp_path / "out-columns" / "prescriptions" / f"{part_name(0)}.jsonl").read_text()
    assert '"code":"ready-for-next-phase"' in row


def test_a_second_week_goes_per_patient(tmp_path: Path) -> None:
    dataset = _write(tmp_path / "in", {"low-back-pain": SEED}, [_enrolled("p")], _week("p", 4))
    assert _both(dataset, tmp_path, as_of=AS_OF + dt.timedelta(days=7)) == {"patients": 1}


def test_a_rule_without_a_column_form_sends_its_patients_per_patient(tmp_path: Path) -> None:
    dataset = _write(tmp_path / "in", {"low-back-pain": SEED}, [_enrolled("p")], _week("p", 4))
    paths = _both(dataset, tmp_path, plugins=("progressor_red_flags",))
    assert paths == {"patients": 1}


@pytest.mark.parametrize(
    "program", ["low-back-pain", "achilles-tendinopathy", "graded-walking", "lumbar-extension"]
)
def test_every_shipped_program_gives_the_same_rows_through_both_engines(
    program: str, tmp_path: Path
) -> None:
    plugins = ("progressor_repeated_movements",) if program == "lumbar-extension" else ()
    engine = progressor.Engine(plugins)
    text = shipped_text(program)
    compiled = engine.compile(progressor.parse_program(text))
    synthesize_dataset(str(tmp_path / "in"), [(compiled, text)], 120, 1, 5, 1, START)
    paths = _both(str(tmp_path / "in"), tmp_path, plugins=plugins)
    if program == "low-back-pain":
        assert paths.get("columns", 0) > 60  # most of a synthetic clinic's week
    else:  # strategies without a column form (two-for-two, rpe, quota, a plugin's)
        assert "columns" not in paths


def test_an_unknown_engine_is_refused(tmp_path: Path) -> None:
    dataset = _write(tmp_path / "in", {"low-back-pain": SEED}, [_enrolled("p")], [])
    with pytest.raises(ProgressorError, match="unknown engine"):
        compute_partition(dataset, str(tmp_path / "out"), 0, AS_OF, engine="rows")


def test_recompute_with_the_column_engine_from_the_command_line(tmp_path: Path) -> None:
    from tests.test_cli import run

    data = tmp_path / "in"
    synth = ("synth", "--patients", "60", "--weeks", "1", "--start", str(START))
    assert run(*synth, "--out", str(data), "--partitions", "2").returncode == 0
    only_builtins = {"PROGRESSOR_PLUGINS": ""}  # (an installed plugin's rule has no column form)
    outputs = {}
    for engine in ("patients", "columns"):
        out = tmp_path / engine
        command = ("recompute", "--dataset", str(data), "--out", str(out), "--week", str(AS_OF))
        done = run(*command, "--engine", engine, env=only_builtins)
        assert done.returncode == 0, done.stderr
        outputs[engine] = done.stdout
        tables = [
            (out / t / f"{part_name(p)}.jsonl").read_bytes() for t in TABLES_OUT for p in (0, 1)
        ]
        outputs[f"{engine} tables"] = b"".join(tables)
    assert outputs["columns tables"] == outputs["patients tables"]
    assert "computed by the column engine: " in outputs["columns"]
    assert "per patient:" in outputs["columns"] and "column engine" not in outputs["patients"]
    wrong = run("recompute", "--out", str(tmp_path / "o"), "--week", str(AS_OF))
    assert wrong.returncode == 1 and "go with --dataset" in wrong.stderr


def test_auto_uses_the_column_engine_when_polars_is_installed(tmp_path: Path) -> None:
    dataset = _write(tmp_path / "in", {"low-back-pain": SEED}, [_enrolled("p")], _week("p", 4))
    summary = compute_partition(dataset, str(tmp_path / "out"), 0, AS_OF, engine="auto")
    assert summary.paths == {"columns": 1}


def test_without_polars_columns_says_what_to_install_and_auto_computes_per_patient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from progressor.dataset import partition

    monkeypatch.setitem(sys.modules, "progressor.columns.engine", None)  # (import fails)
    monkeypatch.setattr(partition, "_COLUMNS", [])
    dataset = _write(tmp_path / "in", {"low-back-pain": SEED}, [_enrolled("p")], _week("p", 4))
    with pytest.raises(ProgressorError, match=r"pip install 'progressor\[columns\]'"):
        compute_partition(dataset, str(tmp_path / "out"), 0, AS_OF, engine="columns")
    summary = compute_partition(dataset, str(tmp_path / "auto"), 0, AS_OF, engine="auto")
    assert summary.paths == {} and summary.patients == 1


FAILING_PLUGIN = '''
from progressor import hookimpl
from progressor.builtins.progressions import Linear


class Brittle(Linear):
    """A clinic's strategy with a column form whose proposal raises (a plugin's bug)."""

    name = "brittle"

    def propose(self, week, params):
        raise RuntimeError("brittle broke")


@hookimpl
def progressor_register_strategies(register):
    register(Brittle())
'''


def test_a_column_form_whose_component_fails_leaves_its_patients_to_the_fail_safe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "brittle_plugin.py").write_text(FAILING_PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    program = SEED.replace('strategy = "linear"', 'strategy = "brittle"')
    dataset = _write(tmp_path / "in", {"low-back-pain": program}, [_enrolled("p")], _week("p", 4))
    assert _both(dataset, tmp_path, plugins=("brittle_plugin",)) == {"patients": 1}
    row = (tmp_path / "out-columns" / "prescriptions" / f"{part_name(0)}.jsonl").read_text()
    assert '"code":"plugin-failure"' in row and "brittle broke" in row
