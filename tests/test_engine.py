"""The engine's contract: the step's shape, replay, pause and resume, plugins, threads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import BaseModel

import progressor
from progressor.reading import parse_record
from tests.conftest import PROGRAMS, START, full_week


def records(rows: list[dict[str, Any]]) -> list[progressor.Record]:
    return [parse_record(r) for r in rows]


def enroll(compiled: progressor.CompiledProgram, patient: str = "anna") -> progressor.Prescription:
    return compiled.first_week(
        progressor.Enrollment(patient=patient, program=compiled.program.id, start=START)
    )


def test_a_met_week_progresses_every_exercise(seed: progressor.CompiledProgram) -> None:
    result = seed.step(enroll(seed), records(full_week()))
    actions = {d.exercise: (d.action, d.dose_after.describe()) for d in result.decisions}
    assert actions == {
        "pelvic-tilt": ("progress", "1 x 6 reps, hold 5 s"),
        "knee-to-chest": ("progress", "5 reps, hold 10 s, each side"),
        "bridge": ("progress", "1 x 6 reps, hold 5 s"),
    }
    nxt = result.prescription
    assert (nxt.week, nxt.start, nxt.status) == (2, START + dt.timedelta(days=7), "active")
    assert nxt.history.mean_pain == 2.0


def test_each_decision_marks_exactly_one_applied_match(seed: progressor.CompiledProgram) -> None:
    rows = full_week()
    rows[2]["pain_during"] = 4  # bridge: new pain once
    result = seed.step(enroll(seed), records(rows))
    for decision in result.decisions:
        applied = [m for m in decision.matches if m.applied]
        assert len(applied) == 1
        assert (applied[0].rule, applied[0].action) == (decision.rule, decision.action)
    bridge = next(d for d in result.decisions if d.exercise == "bridge")
    assert bridge.action == "regress" and bridge.rule == "new-pain"
    assert {m.rule for m in bridge.matches} == {"new-pain", "double"}
    assert bridge.matches[0].values["largest_rise"] == 2


def test_replay_is_the_fold_over_step(seed: progressor.CompiledProgram) -> None:
    weeks = [full_week(START + dt.timedelta(days=7 * k), reps=5 + k) for k in range(3)]
    enrollment = progressor.Enrollment(patient="anna", program=seed.program.id, start=START)
    replayed = seed.replay(enrollment, records([r for w in weeks for r in w]))
    prescription = seed.first_week(enrollment)
    for week, result in zip(weeks, replayed, strict=True):
        stepped = seed.step(prescription, records(week))
        assert stepped.model_dump_json() == result.model_dump_json()
        prescription = stepped.prescription
    assert len(replayed) == 3


def test_replay_until_adds_empty_weeks(seed: progressor.CompiledProgram) -> None:
    enrollment = progressor.Enrollment(patient="anna", program=seed.program.id, start=START)
    results = seed.replay(enrollment, records(full_week()), until=START + dt.timedelta(days=21))
    assert len(results) == 3
    assert results[-1].prescription.history.weeks_without_sessions == 2


def test_a_paused_patient_stays_paused_until_resumed(seed: progressor.CompiledProgram) -> None:
    rows = full_week()
    rows.append({"date": START.isoformat(), "pain": 8, "context": "flare"})
    paused = seed.step(enroll(seed), records(rows))
    assert paused.prescription.status == "paused"
    assert [a.rule for a in paused.alerts] == ["pain-flare"]
    later = seed.step(paused.prescription, records(full_week(START + dt.timedelta(days=7))))
    assert {d.action for d in later.decisions} == {"pause"}
    assert {d.rule for d in later.decisions} == {"awaiting-clinician"}
    resumed = seed.resume(later.prescription)
    assert resumed.status == "active"
    again = seed.step(resumed, records(full_week(resumed.start)))
    assert {d.action for d in again.decisions} == {"progress"}


def test_a_paused_week_is_not_a_missed_week_for_adherence(
    seed: progressor.CompiledProgram,
) -> None:
    # Week 1: a flare pauses the program. Week 2, paused: the patient obeys and logs nothing.
    # Resumed for week 3, still nothing logged: one idle week, not two (no step back).
    rows = full_week()
    rows.append({"date": START.isoformat(), "pain": 8, "context": "flare"})
    paused = seed.step(enroll(seed), records(rows))
    obeyed = seed.step(paused.prescription, [])
    assert obeyed.prescription.history.weeks_without_sessions == 0
    resumed = seed.resume(obeyed.prescription)
    idle = seed.step(resumed, [])
    assert idle.prescription.history.weeks_without_sessions == 1
    assert {d.action for d in idle.decisions} == {"hold"}
    assert "step back" not in " ".join(d.reason for d in idle.decisions)
    second = seed.step(idle.prescription, [])  # a second idle week after the resume: back
    assert {d.action for d in second.decisions} == {"regress"}
    assert "no session logged for 2 consecutive weeks" in second.decisions[0].reason


def test_step_refuses_a_prescription_of_another_program(
    engine: progressor.Engine, seed: progressor.CompiledProgram
) -> None:
    walking = engine.compile(progressor.load_program(PROGRAMS / "graded-walking.toml"))
    with pytest.raises(progressor.ProgressorError, match="program"):
        seed.step(enroll(walking), [])


def test_overrides_must_stay_within_limits(seed: progressor.CompiledProgram) -> None:
    too_much = progressor.Dose(sets=1, reps=20, hold_s=5)
    enrollment = progressor.Enrollment(
        patient="anna", program="low-back-pain", start=START, overrides={"bridge": too_much}
    )
    with pytest.raises(progressor.ProgressorError, match="above the ceiling"):
        seed.first_week(enrollment)
    gentle = progressor.Dose(sets=1, reps=3, hold_s=3)
    enrollment = enrollment.model_copy(update={"overrides": {"bridge": gentle}})
    assert seed.first_week(enrollment).exercises["bridge"].dose == gentle


class _Exploding(progressor.SafetyRule):
    name = "exploding"

    def evaluate(
        self, week: progressor.WeekView, params: BaseModel
    ) -> Iterator[progressor.Finding]:
        if week.prescription.patient.endswith("3"):
            raise RuntimeError("sensor table missing")
        yield from ()


class ExplodingPlugin:
    __name__ = "clinic_exploding"

    @progressor.hookimpl
    def progressor_register_safety_rules(
        self, register: Callable[[progressor.SafetyRule], None]
    ) -> None:
        register(_Exploding())


def test_a_raising_rule_holds_only_its_patients() -> None:
    engine = progressor.Engine(plugins=[ExplodingPlugin()])
    program = progressor.load_program(PROGRAMS / "low-back-pain.toml")
    program = program.model_copy(update={"safety": {**program.safety, "exploding": {}}})
    compiled = engine.compile(program)
    week = records(full_week())
    for n in range(1, 31):
        result = compiled.step(enroll(compiled, f"p{n:02d}"), week)
        actions = {d.action for d in result.decisions}
        if str(n).endswith("3"):
            assert actions == {"hold"}
            [flag] = result.prescription.flags
            assert flag.code == "plugin-failure" and flag.plugin == "clinic_exploding"
            assert "sensor table missing" in flag.message
        else:
            assert actions == {"progress"}


def test_two_plugins_registering_one_name_is_an_error_naming_both() -> None:
    class Again:
        __name__ = "clinic_again"

        @progressor.hookimpl
        def progressor_register_strategies(self, register: Callable[[object], None]) -> None:
            from progressor.builtins.progressions import Linear

            register(Linear())

    with pytest.raises(progressor.PluginError) as info:
        progressor.Engine(plugins=[Again()])
    message = str(info.value)
    assert "clinic_again" in message and "progressor.builtins.progressions" in message


def test_no_hook_is_called_per_patient(seed: progressor.CompiledProgram) -> None:
    calls: list[str] = []
    engine = progressor.Engine()
    engine.plugin_manager.add_hookcall_monitoring(
        lambda name, impls, kwargs: calls.append(name), lambda *a: None
    )
    compiled = engine.compile(seed.program)
    for n in range(50):
        compiled.step(enroll(compiled, f"p{n}"), records(full_week()))
    assert calls == []


def test_threads_share_one_compiled_program(seed: progressor.CompiledProgram) -> None:
    week = records(full_week())

    def one(n: int) -> str:
        return seed.step(enroll(seed, f"p{n % 7}"), week).model_dump_json()

    serial = [one(n) for n in range(200)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(one, range(200)))
    assert parallel == serial


class _BrokenHold(progressor.ExerciseType):
    name = "broken-hold"
    required = ("reps", "hold_s")
    optional = ("sets",)

    def __init__(self, result: object) -> None:
        self.result = result

    def session_met(self, dose: progressor.Dose, outcomes: Any) -> bool:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result  # type: ignore[return-value]


@pytest.mark.parametrize("result", [RuntimeError("sensor offline"), "yes", None])
def test_a_failing_exercise_type_holds_the_patient_and_names_its_plugin(result: object) -> None:
    class Plugin:
        __name__ = "clinic_broken_type"

        @progressor.hookimpl
        def progressor_register_exercise_types(self, register: Callable[[object], None]) -> None:
            register(_BrokenHold(result))

    text = (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8")
    program = progressor.parse_program(text.replace('type = "hold"', 'type = "broken-hold"', 1))
    compiled = progressor.Engine(plugins=[Plugin()]).compile(program)
    week = (r for r in records(full_week()))  # a generator: read once only
    outcome = compiled.step(enroll(compiled), week)
    assert {d.action for d in outcome.decisions} == {"hold"}
    [flag] = outcome.prescription.flags
    assert (flag.code, flag.plugin, flag.rule) == (
        "plugin-failure",
        "clinic_broken_type",
        "broken-hold",
    )
    flare = [*records(full_week()), progressor.PainReport(date=START, pain=9)]
    paused = compiled.step(enroll(compiled), flare)
    assert paused.prescription.status == "paused"  # the essential pause still wins


def test_the_api_refuses_what_it_cannot_use_with_a_clear_error() -> None:
    seed = progressor.Engine().compile(progressor.load_program(PROGRAMS / "low-back-pain.toml"))
    first = seed.first_week(
        progressor.Enrollment(patient="anna", program=seed.program.id, start=START)
    )
    with pytest.raises(
        progressor.ProgressorError, match="records must be Outcome or PainReport, not dict"
    ):
        seed.step(first, [{"date": "2026-01-05", "exercise": "bridge"}])  # type: ignore[list-item]
    paused = first.model_copy(update={"status": "paused"})
    with pytest.raises(
        progressor.ProgressorError, match=r"unknown exercises 'brige' \(did you mean 'bridge'"
    ):
        seed.resume(paused, ["brige"])
