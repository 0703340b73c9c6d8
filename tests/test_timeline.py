"""The one timeline every road folds a patient's weeks with (progressor.core.timeline), and the
command line's behaviour that rests on it."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import progressor as p
from progressor.core.timeline import (
    KEPT_AS_OF_TODAY,
    ended_weeks,
    fold,
    week_of,
    week_start,
)
from progressor.reading import parse_record
from progressor.reading.records import FUTURE_GRACE, read_log
from tests.conftest import PROGRAMS, START, full_week
from tests.test_cli import SEED, WriteLog, run

days = st.integers(min_value=-30, max_value=400)
WEEK = dt.timedelta(days=7)


def records(rows: list[dict[str, object]]) -> list[p.Record]:
    return [parse_record(row) for row in rows]


@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=6))
def test_week_k_is_the_seven_days_from_its_start(week: int, day: int) -> None:
    first = week_start(START, week)
    assert first == START + dt.timedelta(days=7 * (week - 1))
    assert week_of(START, first + dt.timedelta(days=day)) == week


@given(days)
def test_a_week_has_ended_once_its_last_day_is_past(offset: int) -> None:
    day = START + dt.timedelta(days=offset)
    ended = ended_weeks(START, day)
    assert ended == max(0, offset // 7)
    if ended:  # the last ended week's last day is before `day`, the next one's is not
        assert week_start(START, ended + 1) <= day < week_start(START, ended + 2)


def test_days_before_the_start_fall_in_week_one() -> None:
    assert week_of(START, START - dt.timedelta(days=3)) == 1
    assert ended_weeks(START, START - dt.timedelta(days=3)) == 0


@pytest.fixture
def seed() -> p.CompiledProgram:
    return p.Engine().compile(p.load_program(PROGRAMS / "low-back-pain.toml"))


def enrollment() -> p.Enrollment:
    return p.Enrollment(patient="anna", program="low-back-pain", start=START)


def test_fold_judges_the_weeks_that_ended_and_raises_the_week_under_ways_alerts(
    seed: p.CompiledProgram,
) -> None:
    week1 = records(full_week())
    flare = p.PainReport(date=START + dt.timedelta(days=8), pain=9, context="flare")
    timeline = fold(seed, enrollment(), [*week1, flare], as_of=START + dt.timedelta(days=9))
    assert len(timeline.results) == 1 and timeline.results[0].prescription.week == 2
    assert timeline.current.week == 2 and len(timeline.prescriptions) == 2
    assert [a.rule for a in timeline.early_alerts] == ["pain-flare"]
    assert timeline.early_alerts[0].week == 2 and timeline.waiting == 1
    # The same records through the step by hand: the fold adds nothing of its own.
    by_hand = seed.step(seed.first_week(enrollment()), week1)
    assert timeline.results[0] == by_hand


def test_a_record_from_the_future_is_set_aside_at_its_line_and_its_pain_seen_now(
    seed: p.CompiledProgram,
) -> None:
    read_on = START + dt.timedelta(days=3)
    later = read_on + FUTURE_GRACE + dt.timedelta(days=365)
    lines = [
        json.dumps({"date": str(START), "pain": 2}),
        json.dumps(
            {"date": str(later), "exercise": "bridge", "reps": [5], "hold_s": 5}
            | {"pain_before": 2, "pain_during": 9}
        ),
        json.dumps({"date": str(read_on + FUTURE_GRACE), "pain": 3}),  # within the grace
    ]
    log = read_log(lines, "a.jsonl", "jsonl", today=read_on)
    (aside,) = log.set_aside
    assert (aside.source, aside.line) == ("a.jsonl", 2) and f"dated {later}" in aside.reason
    kept = [r for r in log.records if getattr(r, "note", None) == KEPT_AS_OF_TODAY]
    assert [(r.date, getattr(r, "pain", None)) for r in kept] == [(read_on, 9)]
    timeline = fold(seed, enrollment(), log.arrived("a.jsonl"), as_of=read_on)
    assert [a.rule for a in timeline.early_alerts] == ["pain-flare"]


def test_a_pain_kept_as_of_the_reading_day_alerts_though_the_weeks_judged_stop_short(
    seed: p.CompiledProgram,
) -> None:
    # `next` without --as-of judges the log's own weeks (here: one); the day the log was read
    # lies months later, and so does the pain kept as of it (next year's date typed).
    read_on = START + dt.timedelta(days=200)
    lines = [
        *(json.dumps(r) for r in full_week()),
        json.dumps({"date": str(read_on + dt.timedelta(days=365)), "pain": 9}),
    ]
    log = read_log(lines, "a.jsonl", "jsonl", today=read_on)
    timeline = fold(seed, enrollment(), log.arrived("a.jsonl"), as_of=read_on, weeks=1)
    assert len(timeline.results) == 1 and timeline.later == 1
    (alert,) = timeline.early_alerts
    assert (alert.rule, alert.week) == ("pain-flare", 2)  # (raised now: the week under way's)
    # A record of a later week that is no kept pain waits for its week, as before.
    later = p.PainReport(date=read_on, pain=9)
    timeline = fold(seed, enrollment(), [*records(full_week()), later], as_of=read_on, weeks=1)
    assert timeline.early_alerts == () and timeline.later == 1


def test_a_record_the_step_sets_aside_is_reported_at_its_file_and_line(
    seed: p.CompiledProgram,
) -> None:
    week = [*full_week(), {**full_week()[0], "exercise": "plank"}]
    log = read_log([json.dumps(r) for r in week], "anna.jsonl", "jsonl")
    timeline = fold(seed, enrollment(), log.arrived("anna.jsonl"), as_of=START + WEEK)
    (aside,) = timeline.set_aside
    assert (aside.source, aside.line) == ("anna.jsonl", len(week))
    assert aside.reason == "unknown exercise 'plank'"


def test_without_a_reading_day_nothing_is_taken_for_the_future(seed: p.CompiledProgram) -> None:
    later = p.PainReport(date=START + dt.timedelta(days=400), pain=9)
    timeline = fold(seed, enrollment(), [later], as_of=START)
    assert timeline.set_aside == () and timeline.later == 1 and timeline.early_alerts == ()


def test_replay_is_the_fold(seed: p.CompiledProgram) -> None:
    two = records(full_week() + full_week(START + dt.timedelta(days=7)))
    replayed = seed.replay(enrollment(), two)
    folded = fold(seed, enrollment(), two, as_of=START + dt.timedelta(days=14))
    assert replayed == list(folded.results) and len(replayed) == 2


# -- the command line ---------------------------------------------------------------------------


def test_next_with_no_week_ended_says_so_and_exits_1(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    for start in (dt.date.today(), dt.date.today() + dt.timedelta(days=3)):
        done = run("next", SEED, "--log", str(empty), "--start", start.isoformat())
        assert done.returncode == 1, done.stdout
        assert "has not ended" in done.stderr and done.stdout == ""


def test_next_sends_a_first_week_flare_at_once(write_log: WriteLog) -> None:
    today = dt.date.today()
    log = write_log([{"date": today.isoformat(), "pain": 9, "context": "flare"}], "anna.jsonl")
    done = run("next", SEED, "--log", str(log), "--alerts", "stderr")
    assert done.returncode == 1  # nothing to compute yet: week 1 has not ended
    sent = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [s["alert"]["rule"] for s in sent] == ["pain-flare"]
    assert sent[0]["alert"]["week"] == 1


def test_a_plugin_that_raised_says_so_in_the_exit_code(write_log: WriteLog, tmp_path: Path) -> None:
    (tmp_path / "clinic_boom.py").write_text(
        textwrap.dedent(
            """
            import progressor

            class Boom(progressor.SafetyRule):
                name = "boom"

                def evaluate(self, week, params):
                    raise RuntimeError("sensor table missing")

            @progressor.hookimpl
            def progressor_register_safety_rules(register):
                register(Boom())
            """
        ),
        encoding="utf-8",
    )
    program = tmp_path / "lbp.toml"
    program.write_text(
        Path(SEED).read_text(encoding="utf-8") + "\n[safety.boom]\n", encoding="utf-8"
    )
    log = write_log(full_week(), "anna.jsonl")
    done = run(
        "next",
        str(program),
        "--log",
        str(log),
        "--plugin",
        "clinic_boom",
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 5, done.stderr
    assert "plugin-failure" in done.stdout and "sensor table missing" in done.stdout
