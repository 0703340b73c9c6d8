"""The red-flags rule on the seed program: what pauses, what only holds, and what it survives.

Uses the fixtures of progressor's pytest plugin (progressor.testing): engines, outcomes and
compiled programs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import progressor_red_flags as rf
import pytest

import progressor as p

PROGRAMS = Path(__file__).resolve().parents[3] / "programs"
LBP = PROGRAMS / "low-back-pain.toml"
EXERCISES = ("pelvic-tilt", "knee-to-chest", "bridge")
START = dt.date(2026, 1, 5)  # a Monday
MODULE = "progressor_red_flags"  # what the tests load
# ... and its name in results: its entry point's (installed, as `make test` does).
PLUGIN = "red-flags"


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n)


@pytest.fixture
def engine(progressor_engine_factory: Callable[..., p.Engine]) -> p.Engine:
    return progressor_engine_factory([MODULE])


@pytest.fixture
def lbp(engine: p.Engine, compile_program: Callable[..., p.CompiledProgram]) -> p.CompiledProgram:
    return compile_program(LBP, engine)


@pytest.fixture
def full_week(outcome: Callable[..., p.Outcome]) -> Callable[..., list[p.Outcome]]:
    """Every seed exercise at its starting dose, pain 2, on Monday, Wednesday and Friday."""

    def make(*, flags: dict[int, tuple[str, ...]] | None = None) -> list[p.Outcome]:
        flags = flags or {}
        return [
            outcome(name, day(d), reps=(5,), hold_s=5, pain=2, flags=flags.get(d, ()))
            for d in (0, 2, 4)
            for name in EXERCISES
        ]

    return make


def enrol(compiled: p.CompiledProgram) -> p.Prescription:
    return compiled.first_week(
        p.Enrollment(patient="ben", program=compiled.program.id, start=START)
    )


def red_flag_matches(result: p.StepResult) -> list[p.RuleMatch]:
    return [m for d in result.decisions for m in d.matches if m.rule == "red-flags"]


def step(compiled: p.CompiledProgram, records: Iterable[p.Record]) -> p.StepResult:
    return compiled.step(enrol(compiled), records)


def report(d: int, *flags: str, pain: float = 3) -> p.PainReport:
    # The pain_report fixture takes no flags: a PainReport is built directly.
    return p.PainReport(date=day(d), pain=pain, flags=flags)


# -- urgent codes pause the program ----------------------------------------------------------


@pytest.mark.parametrize("code", list(rf.SYMPTOMS))
def test_each_default_code_pauses_the_program_with_an_urgent_alert(
    lbp: p.CompiledProgram, full_week: Callable[..., list[p.Outcome]], code: str
) -> None:
    result = step(lbp, full_week(flags={2: (code,)}))

    assert result.prescription.status == "paused"
    assert {d.action for d in result.decisions} == {"pause"}
    assert {(d.rule, d.plugin) for d in result.decisions} == {("red-flags", PLUGIN)}
    assert {s.status for s in result.prescription.exercises.values()} == {"paused"}
    [alert] = result.alerts
    assert (alert.rule, alert.plugin, alert.urgent, alert.patient) == (
        "red-flags",
        PLUGIN,
        True,
        "ben",
    )
    assert f"({code}) on {day(2)}" in alert.message
    assert "contact the patient today" in alert.message
    assert "urgent medical review" in alert.message
    assert [f.code for f in result.prescription.flags] == [rf.URGENT_FLAG]


def test_the_reason_names_every_symptom_and_its_days(
    lbp: p.CompiledProgram, full_week: Callable[..., list[p.Outcome]]
) -> None:
    records: list[p.Record] = [
        *full_week(flags={0: ("night-pain",), 4: ("night-pain", "fever")}),
        report(5, "fever"),
    ]

    [alert] = step(lbp, records).alerts

    assert "constant pain at night (night-pain) on 2026-01-05, 2026-01-09" in alert.message
    assert "fever or feeling unwell (fever) on 2026-01-09, 2026-01-10" in alert.message
    [match] = {m.model_dump_json() for m in red_flag_matches(step(lbp, records))}
    assert '"symptoms":"fever, night-pain"' in match
    assert '"first_reported":"2026-01-05"' in match


def test_a_pain_report_with_a_red_flag_pauses_even_without_any_session(
    lbp: p.CompiledProgram,
) -> None:
    result = step(lbp, [report(3, "saddle-numbness", pain=1)])

    assert result.prescription.status == "paused"
    assert [a.urgent for a in result.alerts] == [True]


def test_a_red_flag_logged_under_an_unknown_exercise_still_counts(
    lbp: p.CompiledProgram, outcome: Callable[..., p.Outcome]
) -> None:
    stray = outcome("brigde", day(1), flags=("bladder-bowel",))

    result = step(lbp, [stray])

    assert result.prescription.status == "paused"
    assert "bladder-bowel" in result.alerts[0].message
    assert result.set_aside  # the stray is still never counted towards progress


@pytest.mark.parametrize(
    ("logged", "code"),
    [
        ("Saddle numbness", "saddle-numbness"),
        ("LEG_WEAKNESS", "leg-weakness"),
        (" night  pain ", "night-pain"),
        ("saddle anaesthesia", "saddle-numbness"),
        ("bowel-bladder", "bladder-bowel"),
    ],
)
def test_codes_are_read_whatever_their_spelling(
    lbp: p.CompiledProgram, full_week: Callable[..., list[p.Outcome]], logged: str, code: str
) -> None:
    result = step(lbp, full_week(flags={2: (logged,)}))

    assert result.prescription.status == "paused"
    assert f"({code}) on 2026-01-07" in result.alerts[0].message


def test_the_result_does_not_depend_on_record_order(
    lbp: p.CompiledProgram, full_week: Callable[..., list[p.Outcome]]
) -> None:
    records: list[p.Record] = [
        *full_week(flags={0: ("weight-loss",), 4: ("fever",)}),
        report(6, "night-pain"),
    ]

    assert step(lbp, records) == step(lbp, records[::-1])


# -- no red flag: the program goes on --------------------------------------------------------


def test_other_plugins_codes_and_no_codes_change_nothing(
    lbp: p.CompiledProgram, full_week: Callable[..., list[p.Outcome]]
) -> None:
    result = step(lbp, full_week(flags={0: ("centralisation",)}))

    assert result.prescription.status == "active"
    assert {d.action for d in result.decisions} == {"progress"}
    assert red_flag_matches(result) == []
    assert result.alerts == ()


# -- configuration ------------------------------------------------------------------------------


def program_with(safety: str) -> str:
    return LBP.read_text(encoding="utf-8").replace(
        "[safety.new-pain]", f"{safety}\n\n[safety.new-pain]"
    )


def test_review_codes_hold_and_flag_without_pausing(
    engine: p.Engine,
    compile_program: Callable[..., p.CompiledProgram],
    full_week: Callable[..., list[p.Outcome]],
) -> None:
    compiled = compile_program(
        program_with(
            '[safety.red-flags]\nreview = ["weight-loss", "night-pain"]\n'
            'urgent = ["saddle-numbness", "bladder-bowel", "leg-weakness", "fever"]'
        ),
        engine,
    )

    result = step(compiled, full_week(flags={2: ("weight-loss",)}))

    assert result.prescription.status == "active"
    assert {(d.action, d.rule) for d in result.decisions} == {("hold", "red-flags")}
    assert [f.code for f in result.prescription.flags] == ["review"]
    [alert] = result.alerts
    assert not alert.urgent
    assert "unexplained weight loss (weight-loss) on 2026-01-07" in alert.message


@pytest.mark.parametrize("code", rf.ALWAYS_URGENT)
@pytest.mark.parametrize("where", ["review", "neither"])
def test_cauda_equina_and_nerve_deficit_codes_cannot_be_downgraded(
    engine: p.Engine, compile_program: Callable[..., p.CompiledProgram], code: str, where: str
) -> None:
    others = [c for c in rf.SYMPTOMS if c != code]
    review = f'review = ["{code}"]' if where == "review" else ""
    safety = f"[safety.red-flags]\nurgent = {json.dumps(others)}\n{review}"

    with pytest.raises(p.ProgramError) as caught:
        compile_program(program_with(safety), engine)

    [problem] = caught.value.problems
    assert problem.path[:2] == ("safety", "red-flags")
    assert problem.line is not None
    assert f"{code} must stay urgent" in problem.message


def test_an_unknown_parameter_is_refused_with_a_suggestion(
    engine: p.Engine, compile_program: Callable[..., p.CompiledProgram]
) -> None:
    with pytest.raises(p.ProgramError) as caught:
        compile_program(program_with('[safety.red-flags]\nurgnet = ["fever"]'), engine)

    [problem] = caught.value.problems
    assert problem.path == ("safety", "red-flags", "urgnet")
    assert problem.suggestion == "did you mean 'urgent'?"


@pytest.mark.parametrize(
    "params",
    [
        {"urgent": [*rf.ALWAYS_URGENT, "Fever"]},
        {"review": ["fever"]},
        {"urgent": [*rf.ALWAYS_URGENT, ""]},
    ],
)
def test_bad_code_lists_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        rf.RedFlagsParams(**params)


def test_a_near_miss_of_a_code_holds_and_asks_to_check_with_the_patient(
    lbp: p.CompiledProgram, full_week: Callable[..., list[p.Outcome]]
) -> None:
    result = step(lbp, full_week(flags={0: ("sadle-numbnes",)}))

    assert result.prescription.status == "active"
    assert {(d.action, d.rule) for d in result.decisions} == {("hold", "red-flags")}
    [alert] = result.alerts
    assert "'sadle-numbnes' (did you mean 'saddle-numbness'?)" in alert.message


# -- essential: every program, cannot be blocked, survives failures and pauses -----------------


def test_the_rule_applies_to_a_program_that_does_not_list_it(lbp: p.CompiledProgram) -> None:
    assert "red-flags" not in lbp.program.safety
    assert ("red-flags", PLUGIN) in lbp.rules


def test_the_rule_cannot_be_blocked(progressor_engine_factory: Callable[..., p.Engine]) -> None:
    with pytest.raises(p.PluginError, match="essential"):
        progressor_engine_factory([MODULE], block=["red-flags"])


def test_without_the_plugin_the_codes_are_ignored(
    compile_program: Callable[..., p.CompiledProgram], full_week: Callable[..., list[p.Outcome]]
) -> None:
    # The contrast that shows the tests above test the plugin, not the core.
    result = step(compile_program(LBP), full_week(flags={0: ("saddle-numbness",)}))

    assert result.prescription.status == "active"


def test_a_paused_patient_reporting_a_red_flag_still_raises_an_urgent_alert(
    lbp: p.CompiledProgram, outcome: Callable[..., p.Outcome]
) -> None:
    flare = step(lbp, [outcome("bridge", day(0), pain=(3, 8, 8))])
    assert flare.prescription.status == "paused"
    assert [a.rule for a in flare.alerts] == ["pain-flare"]

    later = lbp.step(flare.prescription, [report(9, "bladder-bowel", pain=2)])

    assert later.prescription.status == "paused"
    assert [(a.rule, a.urgent) for a in later.alerts] == [("red-flags", True)]


class _Broken(p.SafetyRule):
    name = "broken"

    def evaluate(self, week: p.WeekView, params: Any) -> Iterable[p.Finding]:
        raise RuntimeError("boom")


class _BrokenPlugin:
    __name__ = "broken-plugin"

    @p.hookimpl
    def progressor_register_safety_rules(self, register: Callable[[p.SafetyRule], None]) -> None:
        register(_Broken())


def test_a_red_flag_still_pauses_when_another_plugin_fails(
    progressor_engine_factory: Callable[..., p.Engine],
    compile_program: Callable[..., p.CompiledProgram],
    full_week: Callable[..., list[p.Outcome]],
) -> None:
    engine = progressor_engine_factory([MODULE, _BrokenPlugin()])
    compiled = compile_program(program_with("[safety.broken]"), engine)

    result = step(compiled, full_week(flags={4: ("fever",)}))

    assert result.prescription.status == "paused"
    assert {f.code for f in result.prescription.flags} == {"plugin-failure", rf.URGENT_FLAG}
    assert [(a.rule, a.urgent) for a in result.alerts] == [("red-flags", True)]


def test_loaded_from_its_entry_point_under_the_name_red_flags() -> None:
    engine = p.Engine(entry_points=True, allow=["red-flags"])

    assert engine.registries.safety_rules["red-flags"].plugin == "red-flags"
    assert {"webhook", "file"} <= set(engine.registries.alert_channels)
