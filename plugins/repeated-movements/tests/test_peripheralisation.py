"""The safety rule `peripheralisation`: symptoms spreading into the leg mean less force."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import progressor as p

PRESS = "press-up"


def decision(result: p.StepResult, exercise: str = PRESS) -> p.Decision:
    [found] = [d for d in result.decisions if d.exercise == exercise]
    return found


def spread(*days: int, exercise: str = PRESS, code: str = "peripheralisation") -> dict[Any, Any]:
    return {(exercise, d): {"flags": (code,)} for d in days}


@pytest.fixture
def sustained(lumbar: p.CompiledProgram, enrol: Callable[..., p.Prescription]) -> p.Prescription:
    """Week 1 with the press-up at the sustained stage, holding 20 s."""
    return enrol(lumbar, {PRESS: {"sets": 5, "reps": 10, "variant": "sustained", "hold_s": 20}})


@pytest.mark.parametrize("code", ["peripheralisation", "Peripheralization", "PERIPHERALISATION"])
def test_one_day_of_spreading_symptoms_steps_back_one_force_stage(
    lumbar: p.CompiledProgram,
    sustained: p.Prescription,
    full_week: Callable[..., list[p.Outcome]],
    code: str,
) -> None:
    result = lumbar.step(sustained, full_week(sustained, changes=spread(2, code=code)))

    found = decision(result)
    assert (found.action, found.rule, found.plugin) == (
        "regress",
        "peripheralisation",
        "repeated-movements",
    )
    assert "symptoms spread further into the leg on 2026-01-07" in found.reason
    assert result.prescription.exercises[PRESS].dose == p.Dose(
        sets=5, reps=10, variant="patient-overpressure"
    )
    assert [(f.code, f.exercise) for f in result.prescription.flags] == [("review", PRESS)]
    assert result.alerts == ()
    assert decision(result, "prone-lying").action == "progress"  # only that exercise


def test_two_days_pause_the_exercise_and_call_the_clinician(
    lumbar: p.CompiledProgram, sustained: p.Prescription, full_week: Callable[..., list[p.Outcome]]
) -> None:
    result = lumbar.step(sustained, full_week(sustained, changes=spread(1, 3)))

    found = decision(result)
    assert (found.action, found.rule, found.status) == ("pause", "peripheralisation", "paused")
    assert result.prescription.status == "active"  # the other exercises go on
    [alert] = result.alerts
    assert alert.rule == "peripheralisation"
    assert "2026-01-06, 2026-01-08" in alert.message


def test_centralisation_is_noted_without_changing_anything(
    lumbar: p.CompiledProgram, sustained: p.Prescription, full_week: Callable[..., list[p.Outcome]]
) -> None:
    result = lumbar.step(sustained, full_week(sustained, changes=spread(0, code="centralisation")))

    found = decision(result)
    assert (found.action, found.rule) == ("progress", "force-progression")
    [note] = [m for m in found.matches if m.rule == "peripheralisation"]
    assert note.action is None
    assert "symptoms centralised" in note.reason


def test_a_pain_report_of_spreading_symptoms_holds_every_exercise(
    lumbar: p.CompiledProgram, sustained: p.Prescription, full_week: Callable[..., list[p.Outcome]]
) -> None:
    report = p.PainReport(date=sustained.start, pain=3, flags=("peripheralisation",))

    result = lumbar.step(sustained, [*full_week(sustained), report])

    assert {(d.action, d.rule) for d in result.decisions} == {("hold", "peripheralisation")}
    assert [f.code for f in result.prescription.flags] == ["review"]


def test_a_program_may_pause_on_the_first_day(
    tiny: Callable[..., p.CompiledProgram],
    enrol: Callable[..., p.Prescription],
    full_week: Callable[..., list[p.Outcome]],
) -> None:
    compiled = tiny(safety={"peripheralisation": {"pause_after": 1}})
    prescription = enrol(compiled)

    result = compiled.step(prescription, full_week(prescription, range(3), spread(0)))

    assert decision(result).action == "pause"


def test_the_rule_applies_only_where_a_program_lists_it(
    tiny: Callable[..., p.CompiledProgram],
    enrol: Callable[..., p.Prescription],
    full_week: Callable[..., list[p.Outcome]],
) -> None:
    compiled = tiny()  # lists new-pain only
    prescription = enrol(compiled)

    result = compiled.step(prescription, full_week(prescription, range(3), spread(0)))

    assert decision(result).action == "progress"
