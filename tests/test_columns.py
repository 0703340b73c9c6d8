"""The column engine (progressor.columns) against the per-patient engine: the same rows.

The column engine decides each distinct exercise week with the step's own code, but reads,
aggregates and screens in columns of its own: these differential tests are what holds the
two to one meaning (byte-identical output tables, whichever engine computed a patient).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from collections.abc import Callable
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
        "flags": st.sampled_from([[]] * 9 + [["night-pain"], ["adverse-event"]]),
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
    return json.dumps(enrollment), _broken(data, _week_lines(name, START, data))


def _week_lines(name: str, first: dt.date, week: dict[str, Any]) -> list[str]:
    """A week's record lines from its first day: the sessions of its days (each exercise,
    the same session), its odd outcomes and its pain reports."""
    records = []
    done = {k: v for k, v in week["session"].items() if v is not None}
    for day in sorted(week["days"]):
        for exercise in EXERCISES:
            record = {"date": str(first + dt.timedelta(days=day)), "exercise": exercise, **done}
            records.append(json.dumps({**record, "patient": name, "kind": "outcome"}))
    for o in week["outcomes"]:
        record = {k: v for k, v in o.items() if v is not None and k not in ("day", "at")}
        day = f"{first + dt.timedelta(days=o['day'])}{o['at']}"
        record.update(date=day, patient=name, kind="outcome")
        records.append(json.dumps(record))
    for r in week["reports"]:
        record = {"date": str(first + dt.timedelta(days=r["day"])), "pain": r["pain"]}
        record.update(context=r["context"], patient=name, kind="pain")
        records.append(json.dumps(record))
    return records


def _broken(data: dict[str, Any], records: list[str]) -> list[str]:
    if data["broken"] and records:
        records[0] = records[0][:-1]  # not JSON any more: read the readable way
    return records


def _same_through_both(
    cohort: list[dict[str, Any]],
    lines_of: Callable[[int, dict[str, Any]], tuple[str, list[str]]],
    as_of: dt.date | None = None,
) -> dict[str, int]:
    """The cohort (each patient's lines by `lines_of`) as a dataset through both engines
    (byte-identical tables); the paths its patients took."""
    enrollments, records = [], []
    for i, data in enumerate(cohort):
        enrollment, lines = lines_of(i, data)
        enrollments.append(enrollment)
        records += lines
    programs = {"low-back-pain": SEED, "at-top": AT_TOP, "at-floor": AT_FLOOR}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        dataset = _write(root / "in", programs, enrollments, records)
        return _both(dataset, root, as_of or AS_OF)


#: Hypothesis's settings for the generated cohorts (each example runs both engines: slow).
COHORTS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@COHORTS
@given(st.lists(patient, min_size=1, max_size=12))
def test_generated_cohorts_give_the_same_rows_through_both_engines(
    cohort: list[dict[str, Any]],
) -> None:
    paths = _same_through_both(cohort, _lines)
    event(f"computed in columns: {'some' if paths.get('columns') else 'none'}")


# -- hypothesis cohorts over several weeks: the fold from week to week --------------------------

WEEKS = 4  # (the weeks ended for a patient who started on START, by MULTI_AS_OF)
MULTI_AS_OF = START + dt.timedelta(days=7 * WEEKS)
#: One week of a patient's: the days they did their sessions, how, and a few odd records.
a_week = st.fixed_dictionaries(
    {
        "days": st.sets(st.integers(0, 6)),
        "session": session,
        "outcomes": st.one_of(st.just([]), st.just([]), st.just([]), st.lists(outcome, max_size=2)),
        "reports": st.one_of(st.just([]), st.just([]), st.lists(report, max_size=1)),
    }
)
weeks_patient = st.fixed_dictionaries(
    {
        "weeks": st.lists(a_week, min_size=WEEKS + 1, max_size=WEEKS + 1),
        "program": st.sampled_from(["low-back-pain"] * 4 + ["at-top", "at-floor"]),
        "late": st.sampled_from([0] * 4 + [1, 2, 3, WEEKS]),  # (weeks after START it starts)
        "broken": st.sampled_from([False] * 19 + [True]),
    }
)


def _weeks_lines(index: int, data: dict[str, Any]) -> tuple[str, list[str]]:
    """A patient's enrollment and records over their weeks (and the week under way, whose
    records the newest week's run reads too)."""
    name = f"p{index:04d}"
    start = START + dt.timedelta(days=7 * data["late"])
    enrollment = {"patient": name, "program": data["program"], "start": str(start)}
    records = []
    for number, week in enumerate(data["weeks"][: WEEKS - data["late"] + 1]):
        first = start + dt.timedelta(days=7 * number)
        if number == WEEKS - data["late"]:  # the week under way: now and then a record
            week = {**week, "days": set(list(week["days"])[:1]) if index % 3 == 0 else set()}
        records += _week_lines(name, first, week)
    return json.dumps(enrollment), _broken(data, records)


@COHORTS
@given(st.lists(weeks_patient, min_size=1, max_size=12))
def test_generated_cohorts_over_several_weeks_give_the_same_rows_through_both_engines(
    cohort: list[dict[str, Any]],
) -> None:
    paths = _same_through_both(cohort, _weeks_lines, MULTI_AS_OF)
    folded = any(d["late"] < WEEKS - 1 for d in cohort)
    event(f"more than one week, computed in columns: {bool(paths.get('columns')) and folded}")


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
        *_week("new-pain", 3, pain_during=3.0),  # new-pain: paused, in columns
        *_week("unscored", 1, pain_during=None),  # missing-data: flagged, in columns
    ]
    names = ("met", "short", "flare", "new-pain", "unscored", "idle")
    dataset = _write(
        tmp_path / "in", {"low-back-pain": SEED}, [_enrolled(n) for n in names], records
    )
    paths = _both(dataset, tmp_path)
    assert paths == {"columns": 5, "patients": 1}  # all but the flare
    paused = (tmp_path / "out-columns" / "prescriptions" / f"{part_name(0)}.jsonl").read_text()
    row = next(line for line in paused.splitlines() if '"patient":"new-pain"' in line)
    assert '"status":"paused"' in row and "pain rose above the pain before" in row
    row = next(line for line in paused.splitlines() if '"patient":"unscored"' in line)
    assert "none with pain scores" in row


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


def test_a_second_week_without_sessions_is_folded_in_columns(tmp_path: Path) -> None:
    dataset = _write(tmp_path / "in", {"low-back-pain": SEED}, [_enrolled("p")], _week("p", 4))
    assert _both(dataset, tmp_path, as_of=AS_OF + dt.timedelta(days=7)) == {"columns": 1}
    row = (tmp_path / "out-columns" / "prescriptions" / f"{part_name(0)}.jsonl").read_text()
    assert '"week":3' in row and '"weeks_without_sessions":1' in row


def _weeks(name: str, *weeks: list[str]) -> list[str]:
    """A patient's records over several weeks: each `_week(name, ...)`'s, a week later."""
    moved = []
    for number, week in enumerate(weeks):
        for line in week:
            record = json.loads(line)
            day = dt.date.fromisoformat(record["date"]) + dt.timedelta(days=7 * number)
            moved.append(json.dumps({**record, "date": str(day)}))
    return moved


def test_the_fold_over_several_weeks_takes_the_column_path(tmp_path: Path) -> None:
    records = [
        *_weeks("steady", *[_week("steady", 4, reps=12, hold=30.0)] * 3),  # met, met, met
        # A rise of pain in one session of week 1: regressed and flagged, a flag that does
        # not outlive its week; then two met weeks.
        *_weeks("rose", _flagged_pain("rose"), _week("rose", 4), _week("rose", 4)),
        # Two rises in week 2 pause that exercise (and raise an alert): per patient.
        *_weeks("paused", _week("paused", 4), _week("paused", 3, pain_during=3.0), []),
        # A flare in week 1: the program paused until a clinician resumes it, per patient.
        *_weeks("flare", _week("flare", 1, pain_during=8.0), _week("flare", 4), []),
        # Records of the week under way (two days of it by the run's day): folded too, to
        # see that they raise no alert...
        *_weeks("under-way", *[_week("under-way", 4)] * 3, _week("under-way", 2)),
        # ... where new pain in both sessions raises one: per patient, which writes it.
        *_weeks("alerting", *[_week("alerting", 4)] * 3, _week("alerting", 2, pain_during=3)),
        # A record dated after the run's day: the reader sets it aside, per patient.
        *_weeks("future", *[_week("future", 4)] * 3, _week("future", 3)),
    ]
    names = ("steady", "rose", "paused", "flare", "under-way", "alerting", "future")
    dataset = _write(
        tmp_path / "in", {"low-back-pain": SEED}, [_enrolled(n) for n in names], records
    )
    as_of = START + dt.timedelta(days=22)  # three weeks ended, the fourth under way
    assert _both(dataset, tmp_path, as_of) == {"columns": 3, "patients": 4}
    rows = (tmp_path / "out-columns" / "prescriptions" / f"{part_name(0)}.jsonl").read_text()
    steady = json.loads(next(r for r in rows.splitlines() if '"patient":"steady"' in r))
    assert steady["week"] == 4 and steady["start"] == str(START + dt.timedelta(days=21))
    assert '"patient":"under-way","program"' in rows
    assert steady["exercises"]["pelvic-tilt"]["dose"]["reps"] == 8  # 5, 6, 7, 8
    decisions = (tmp_path / "out-columns" / "decisions" / f"{part_name(0)}.jsonl").read_text()
    assert all('"week":3' in d for d in decisions.splitlines())  # (the newest week's)


def _flagged_pain(name: str) -> list[str]:
    """Four met days of `name`'s, the pelvic tilt's pain rising on the first one."""
    records = [json.loads(line) for line in _week(name, 4)]
    records[0]["pain_during"] = 2.0
    return [json.dumps(r) for r in records]


def test_the_history_s_mean_pain_is_the_last_week_with_pain_scores(tmp_path: Path) -> None:
    calm = _week("p", 4, pain_during=0.5)  # (a mean pain of 0.75)
    records = [*_weeks("p", calm, []), *_weeks("q", _week("q", 4, pain_during=0.5), _week("q", 4))]
    dataset = _write(
        tmp_path / "in", {"low-back-pain": SEED}, [_enrolled("p"), _enrolled("q")], records
    )
    as_of = START + dt.timedelta(days=14)  # two weeks ended; p logged nothing in week 2
    assert _both(dataset, tmp_path, as_of) == {"columns": 2}
    rows = (tmp_path / "out-columns" / "prescriptions" / f"{part_name(0)}.jsonl").read_text()
    history = {json.loads(r)["patient"]: json.loads(r)["history"] for r in rows.splitlines()}
    assert history == {
        "p": {"weeks_without_sessions": 1, "mean_pain": 0.75},
        "q": {"weeks_without_sessions": 0, "mean_pain": 1.0},
    }


NO_FORM_PLUGIN = '''
from progressor import SafetyRule, hookimpl


class Quiet(SafetyRule):
    """A clinic's essential rule without a column form (it finds nothing)."""

    name = "quiet"
    essential = True

    def evaluate(self, week, params):
        return iter(())


@hookimpl
def progressor_register_safety_rules(register):
    register(Quiet())
'''


def test_a_rule_without_a_column_form_sends_its_patients_per_patient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "quiet_plugin.py").write_text(NO_FORM_PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    dataset = _write(tmp_path / "in", {"low-back-pain": SEED}, [_enrolled("p")], _week("p", 4))
    paths = _both(dataset, tmp_path, plugins=("quiet_plugin",))
    assert paths == {"patients": 1}


@pytest.mark.parametrize("weeks", [1, WEEKS])
@pytest.mark.parametrize(
    "program", ["low-back-pain", "achilles-tendinopathy", "graded-walking", "lumbar-extension"]
)
def test_every_shipped_program_gives_the_same_rows_through_both_engines(
    program: str, weeks: int, tmp_path: Path
) -> None:
    plugins = ("progressor_repeated_movements",) if program == "lumbar-extension" else ()
    engine = progressor.Engine(plugins)
    text = shipped_text(program)
    compiled = engine.compile(progressor.parse_program(text))
    synthesize_dataset(str(tmp_path / "in"), [(compiled, text)], 120, weeks, 5, 1, START)
    as_of = START + dt.timedelta(days=7 * weeks)
    paths = _both(str(tmp_path / "in"), tmp_path, as_of, plugins=plugins)
    if program == "low-back-pain":
        # Most of a synthetic clinic (those whose earlier week paused or alerted: per patient).
        assert paths.get("columns", 0) > 60
    else:  # strategies without a column form (two-for-two, rpe, quota, a plugin's)
        assert "columns" not in paths


def test_patients_computed_in_chunks_of_a_few_lines_give_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition's patients go through the column engine in chunks of about
    _CHUNK_LINES record lines, each patient whole: chunks of 40 lines (a patient over three
    weeks logs ~40, some more than a chunk) give the rows of one chunk and of the
    per-patient engine, and the column path still takes most patients."""
    from progressor.columns import engine as columns_engine

    text = shipped_text("low-back-pain")
    compiled = progressor.Engine().compile(progressor.parse_program(text))
    synthesize_dataset(str(tmp_path / "in"), [(compiled, text)], 90, 3, 7, 1, START)
    as_of = START + dt.timedelta(days=21)
    whole = _both(str(tmp_path / "in"), tmp_path / "whole", as_of)
    chunks: list[int] = []
    split = columns_engine._chunks

    def counted(group: Any, table: Any) -> Any:
        for chunk in split(group, table):
            chunks.append(len(chunk))
            yield chunk

    monkeypatch.setattr(columns_engine, "_CHUNK_LINES", 40)
    monkeypatch.setattr(columns_engine, "_chunks", counted)
    paths = _both(str(tmp_path / "in"), tmp_path / "chunked", as_of)
    assert paths == whole and paths.get("columns", 0) > 45
    assert len(chunks) > 30 and max(chunks) <= 2  # (a patient over 40 lines: a chunk alone)
    for table in TABLES_OUT:
        name = f"{table}/{part_name(0)}.jsonl"
        assert (tmp_path / "chunked/out-columns" / name).read_bytes() == (
            tmp_path / "whole/out-columns" / name
        ).read_bytes()


def test_an_unknown_engine_is_refused(tmp_path: Path) -> None:
    dataset = _write(tmp_path / "in", {"low-back-pain": SEED}, [_enrolled("p")], [])
    with pytest.raises(ProgressorError, match="unknown engine"):
        compute_partition(dataset, str(tmp_path / "out"), 0, AS_OF, engine="rows")


@pytest.mark.parametrize("weeks", [1, 3])
def test_recompute_with_the_column_engine_from_the_command_line(weeks: int, tmp_path: Path) -> None:
    from tests.test_cli import run

    data = tmp_path / "in"
    as_of = START + dt.timedelta(days=7 * weeks)
    synth = ("synth", "--patients", "60", "--weeks", str(weeks), "--start", str(START))
    assert run(*synth, "--out", str(data), "--partitions", "2").returncode == 0
    only_builtins = {"PROGRESSOR_PLUGINS": ""}  # (an installed plugin's rule has no column form)
    outputs = {}
    for engine in ("patients", "columns"):
        out = tmp_path / engine
        command = ("recompute", "--dataset", str(data), "--out", str(out), "--week", str(as_of))
        done = run(*command, "--engine", engine, env=only_builtins)
        assert done.returncode == 0, done.stderr
        outputs[engine] = done.stdout
        tables = [
            (out / t / f"{part_name(p)}.jsonl").read_bytes() for t in TABLES_OUT for p in (0, 1)
        ]
        outputs[f"{engine} tables"] = b"".join(tables)
    assert outputs["columns tables"] == outputs["patients tables"]
    taken = re.search(r"computed by the column engine: (\d+)", outputs["columns"])
    assert taken and int(taken[1]) > 5  # (the seed program's patients, most of them)
    assert "per patient:" in outputs["columns"] and "column engine" not in outputs["patients"]
    # Run again: both partitions are skipped as done, and nobody was computed by anyone.
    command = ("recompute", "--dataset", str(data), "--out", str(tmp_path / "columns"))
    again = run(*command, "--week", str(as_of), "--engine", "columns", env=only_builtins)
    assert "(2 already done)" in again.stdout
    assert "computed by the column engine: 0, per patient: 0 " in again.stdout
    wrong = run("recompute", "--out", str(tmp_path / "o"), "--week", str(AS_OF))
    assert wrong.returncode == 1 and "go with --dataset" in wrong.stderr


def test_auto_uses_the_column_engine_when_polars_is_installed_and_a_run_is_large(
    tmp_path: Path,
) -> None:
    from progressor.dataset.partition import AUTO_SMALLEST

    names = [f"p{i:04d}" for i in range(AUTO_SMALLEST)]
    records = [line for name in names for line in _week(name, 4)]
    enrollments = [_enrolled(name) for name in names]
    dataset = _write(tmp_path / "in", {"low-back-pain": SEED}, enrollments, records)
    summary = compute_partition(dataset, str(tmp_path / "out"), 0, AS_OF, engine="auto")
    assert summary.paths == {"columns": AUTO_SMALLEST}
    # One patient more logs a week: the incremental run computes one patient, per-patient.
    with open(Path(dataset) / "records" / f"{part_name(0)}.jsonl", "a") as log:
        log.write(_week("p0000", 5)[-1] + "\n")
    again = compute_partition(dataset, str(tmp_path / "out"), 0, AS_OF, engine="auto")
    assert again.paths == {"patients": 1}


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
    assert summary.paths == {"patients": 1} and summary.patients == 1


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


# -- every scenario folder through both engines ------------------------------------------------

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*/scenario.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.parent.name for p in SCENARIOS])
def test_every_scenario_folder_gives_the_same_rows_through_both_engines(
    path: Path, tmp_path: Path
) -> None:
    """Each scenario's patient, as a dataset after each of its weeks (the records logged so
    far; up to a week with a clinician's resume, which a dataset does not hold)."""
    from progressor.scenarios import load_scenario
    from progressor.synth import log_line

    scenario = load_scenario(path)
    spec = scenario.spec
    program = scenario.program
    # (The program file the scenario names, or the program.toml beside it.)
    text = (path.parent / (spec.program or "program.toml")).read_text(encoding="utf-8")
    enrollment = json.dumps(
        {
            "patient": spec.patient,
            "program": program.id,
            "start": str(spec.start),
            "overrides": {k: v.model_dump(exclude_none=True) for k, v in spec.overrides.items()},
        }
    )
    records: list[str] = []
    for number, week in enumerate(spec.weeks, start=1):
        if week.resume:
            break
        if week.log is not None:
            log = progressor.load_log(path.parent / week.log)
            records += [log_line(spec.patient, record) for record in log.records]
        root = tmp_path / f"week-{number}"
        dataset = _write(root / "in", {program.id: text}, [enrollment], records)
        as_of = spec.start + dt.timedelta(days=7 * number)
        paths = _both(dataset, root, as_of, plugins=spec.plugins)
        if path.parent.name == "seed-four-weeks-steady-progress" and number == 1:
            assert paths == {"columns": 1}  # (the usual first week: the column path takes it)


# -- symptom flags: the red-flags example plugin's rule in columns ------------------------------

RED_FLAGS = ("progressor_red_flags",)  # (loaded as the tests load the example plugins)
#: The seed with night pain and weight loss only to review (a hold, a flag and an alert).
REVIEW = SEED.replace('id = "low-back-pain"', 'id = "review-flags"').replace(
    "[safety.new-pain]",
    '[safety.red-flags]\nreview = ["night-pain", "weight-loss"]\n'
    'urgent = ["saddle-numbness", "bladder-bowel", "leg-weakness", "fever"]\n\n'
    "[safety.new-pain]",
)
#: Codes as patients' apps log them: urgent, to review, other spellings, near misses, the
#: core's own "adverse-event", and another plugin's code.
codes = st.sampled_from(
    [
        "saddle-numbness",
        "Saddle numbness",
        "bowel-bladder",
        "leg-weakness",
        "fever",
        "night-pain",
        " night  pain ",
        "weight-loss",
        "sadle-numbnes",
        "feverr",
        "centralisation",
        "adverse-event",
    ]
)
flagged_patient = st.fixed_dictionaries(
    {
        "patient": patient,
        "review": st.booleans(),
        # (A record of the patient's, by its place modulo their count, and its codes.)
        "on": st.lists(st.tuples(st.integers(0, 30), st.lists(codes, max_size=2)), max_size=2),
        "reports": st.lists(
            st.tuples(st.integers(0, 6), st.lists(codes, min_size=1, max_size=2)), max_size=1
        ),
    }
)


def _flagged_lines(index: int, data: dict[str, Any]) -> tuple[str, list[str]]:
    patient = data["patient"]
    if data["review"] and patient["program"] == "low-back-pain":
        patient = {**patient, "program": "review-flags"}
    enrollment, records = _lines(index, patient)
    for place, flags in data["on"]:
        if records and not (patient["broken"] and place % len(records) == 0):
            record = json.loads(records[place % len(records)])
            record["flags"] = flags
            records[place % len(records)] = json.dumps(record)
    for day, flags in data["reports"]:
        report = {"date": str(START + dt.timedelta(days=day)), "pain": 1.0, "flags": flags}
        records.append(json.dumps({**report, "patient": f"p{index:04d}", "kind": "pain"}))
    return enrollment, records


@COHORTS
@given(st.lists(flagged_patient, min_size=1, max_size=12))
def test_cohorts_with_red_flags_give_the_same_rows_through_both_engines(
    cohort: list[dict[str, Any]],
) -> None:
    enrollments, records = [], []
    for i, data in enumerate(cohort):
        enrollment, lines = _flagged_lines(i, data)
        enrollments.append(enrollment)
        records += lines
    programs = {
        "low-back-pain": SEED,
        "at-top": AT_TOP,
        "at-floor": AT_FLOOR,
        "review-flags": REVIEW,
    }
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        paths = _both(_write(root / "in", programs, enrollments, records), root, plugins=RED_FLAGS)
    event(f"computed in columns: {'some' if paths.get('columns') else 'none'}")


def _flagged(records: list[str], flags: dict[int, list[str]]) -> list[str]:
    """The records with these symptom flags on the records at these places."""
    flagged = [json.loads(r) for r in records]
    for place, codes in flags.items():
        flagged[place]["flags"] = codes
    return [json.dumps(r) for r in flagged]


def test_red_flags_pause_hold_and_alert_in_columns_as_per_patient(tmp_path: Path) -> None:
    report = {"date": str(START + dt.timedelta(days=5)), "pain": 1.0, "flags": ["fever"]}
    records = [
        *_flagged(_week("urgent", 3), {4: ["saddle-numbness"]}),  # pauses, urgent alert
        *_flagged(_week("review", 3), {0: ["night-pain"], 8: ["Weight loss"]}),  # holds, flags
        *_flagged(_week("near-miss", 3), {2: ["sadle-numbnes"]}),  # holds: "did you mean"
        *_flagged(_week("other", 4), {2: ["centralisation"]}),  # another plugin's code
        *_week("reported", 4),
        json.dumps({**report, "patient": "reported", "kind": "pain"}),  # a pain report's flag
        *_week("plain", 4),
    ]
    enrolled = [_enrolled(n) for n in ("urgent", "near-miss", "other", "reported", "plain")]
    dataset = _write(
        tmp_path / "in",
        {"low-back-pain": SEED, "review-flags": REVIEW},
        [*enrolled, _enrolled("review", "review-flags")],
        records,
    )

    assert _both(dataset, tmp_path, plugins=RED_FLAGS) == {"columns": 6}
    out = tmp_path / "out-columns"
    alerts = [
        json.loads(a)
        for a in (out / "alerts" / f"{part_name(0)}.jsonl").read_text().split("\n")
        if a
    ]
    assert sorted((a["patient"], a["urgent"]) for a in alerts) == [
        ("near-miss", False),
        ("reported", True),
        ("review", False),
        ("urgent", True),
    ]
    rows = (out / "prescriptions" / f"{part_name(0)}.jsonl").read_text().splitlines()
    status = {json.loads(r)["patient"]: json.loads(r)["status"] for r in rows}
    assert status == {
        "urgent": "paused",
        "review": "active",
        "near-miss": "active",
        "other": "active",
        "reported": "paused",
        "plain": "active",
    }


def test_an_adverse_event_flag_goes_per_patient_and_another_code_stays_in_columns(
    tmp_path: Path,
) -> None:
    records = [
        *_flagged(_week("adverse", 4), {1: ["adverse-event"]}),  # pain-flare's: per patient
        *_flagged(_week("coded", 4), {1: ["night-pain"]}),  # read by no built-in rule
    ]
    dataset = _write(
        tmp_path / "in",
        {"low-back-pain": SEED},
        [_enrolled("adverse"), _enrolled("coded")],
        records,
    )
    assert _both(dataset, tmp_path) == {"columns": 1, "patients": 1}


FLAG_BLIND_PLUGIN = '''
import polars as pl

from progressor import SafetyRule, hookimpl


class FlagBlindColumns:
    """A column form that says nothing of symptom flags (no `symptom_flags`)."""

    def routes(self, params):
        return pl.lit(False)

    def findings(self, params):
        return ()


class Quiet(SafetyRule):
    name = "quiet"
    essential = True

    def evaluate(self, week, params):
        return iter(())

    def column_form(self):
        return FlagBlindColumns()


@hookimpl
def progressor_register_safety_rules(register):
    register(Quiet())
'''


def test_a_flagged_record_goes_per_patient_when_a_rule_does_not_cover_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "flag_blind.py").write_text(FLAG_BLIND_PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    records = [*_flagged(_week("coded", 4), {1: ["night-pain"]}), *_week("plain", 4)]
    dataset = _write(
        tmp_path / "in", {"low-back-pain": SEED}, [_enrolled("coded"), _enrolled("plain")], records
    )
    assert _both(dataset, tmp_path, plugins=("flag_blind",)) == {"columns": 1, "patients": 1}
