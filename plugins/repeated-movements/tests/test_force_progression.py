"""The strategy `force-progression` on the lumbar-extension program and on tiny programs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import progressor as p

PRESS = "press-up"
GENERATED, OVERPRESSURE, SUSTAINED = "patient-generated", "patient-overpressure", "sustained"


def decision(result: p.StepResult, exercise: str = PRESS) -> p.Decision:
    [found] = [d for d in result.decisions if d.exercise == exercise]
    return found


def flags(result: p.StepResult) -> set[tuple[str, str | None]]:
    return {(f.code, f.exercise) for f in result.prescription.flags}


def stage(result: p.StepResult, exercise: str = PRESS) -> tuple[str | None, int | None]:
    dose = result.prescription.exercises[exercise].dose
    return dose.variant, dose.hold_s


def test_met_weeks_climb_the_stages_then_the_hold_to_its_top(
    lumbar: p.CompiledProgram,
    enrol: Callable[..., p.Prescription],
    full_week: Callable[..., list[p.Outcome]],
) -> None:
    prescription, seen = enrol(lumbar), []
    for _ in range(8):
        result = lumbar.step(prescription, full_week(prescription))
        seen.append((decision(result).action, *stage(result)))
        prescription = result.prescription

    assert seen == [
        ("progress", OVERPRESSURE, None),
        ("progress", SUSTAINED, 10),
        ("progress", SUSTAINED, 15),
        ("progress", SUSTAINED, 20),
        ("progress", SUSTAINED, 25),
        ("progress", SUSTAINED, 30),
        ("hold", SUSTAINED, 30),
        ("hold", SUSTAINED, 30),
    ]
    assert ("ready-for-next-phase", PRESS) in flags(result)
    assert "the hold is at its top (30 s)" in decision(result).reason


def test_the_reason_says_which_force_comes_next(
    lumbar: p.CompiledProgram,
    enrol: Callable[..., p.Prescription],
    full_week: Callable[..., list[p.Outcome]],
) -> None:
    prescription = lumbar.step(enrol(lumbar), full_week(enrol(lumbar))).prescription
    found = decision(lumbar.step(prescription, full_week(prescription)))

    assert (found.rule, found.plugin) == ("force-progression", "repeated-movements")
    assert "force patient-overpressure -> sustained, holding 10 s" in found.reason
    assert found.dose_after == p.Dose(sets=5, reps=10, hold_s=10, variant=SUSTAINED)


@pytest.mark.parametrize(
    ("days", "changes"),
    [
        (range(4), {}),  # four days of five
        (range(5), {(PRESS, 2): {"reps": (10, 10, 10, 10)}}),  # one day a bout short
        (range(5), {(PRESS, 0): {"pain_before": None}}),  # one day without pain scores
    ],
)
def test_a_week_short_of_five_full_scored_days_holds_the_stage(
    lumbar: p.CompiledProgram,
    enrol: Callable[..., p.Prescription],
    full_week: Callable[..., list[p.Outcome]],
    days: range,
    changes: dict[tuple[str, int], dict[str, Any]],
) -> None:
    prescription = enrol(lumbar)

    result = lumbar.step(prescription, full_week(prescription, days, changes))

    assert decision(result).action == "hold"
    assert stage(result) == (GENERATED, None)


@pytest.mark.parametrize(
    ("start", "after"),
    [
        ({"variant": SUSTAINED, "hold_s": 20}, (OVERPRESSURE, None)),
        ({"variant": OVERPRESSURE}, (GENERATED, None)),
    ],
)
def test_new_pain_steps_back_one_force_stage(
    lumbar: p.CompiledProgram,
    enrol: Callable[..., p.Prescription],
    full_week: Callable[..., list[p.Outcome]],
    start: dict[str, Any],
    after: tuple[str, int | None],
) -> None:
    prescription = enrol(lumbar, {PRESS: {"sets": 5, "reps": 10, **start}})
    hurt = {(PRESS, 1): {"pain_before": 2, "pain_during": 4}}  # 2 above: beyond tolerance 1

    result = lumbar.step(prescription, full_week(prescription, changes=hurt))

    found = decision(result)
    assert (found.action, found.rule) == ("regress", "new-pain")
    assert stage(result) == after


def test_a_step_back_never_goes_below_the_first_stage(
    lumbar: p.CompiledProgram,
    enrol: Callable[..., p.Prescription],
    full_week: Callable[..., list[p.Outcome]],
) -> None:
    prescription = enrol(lumbar)
    hurt = {(PRESS, 1): {"pain_during": 5}}

    result = lumbar.step(prescription, full_week(prescription, changes=hurt))

    found = decision(result)
    assert found.action == "regress"
    assert "already at the floor" in found.reason
    assert stage(result) == (GENERATED, None)


def test_the_exercise_ceiling_caps_the_hold(
    tiny: Callable[..., p.CompiledProgram],
    enrol: Callable[..., p.Prescription],
    full_week: Callable[..., list[p.Outcome]],
) -> None:
    compiled = tiny(
        dose={"sets": 5, "reps": 10, "variant": SUSTAINED, "hold_s": 15},
        progression={"hold_step": 10, "hold_max": 60},
        ceiling={"hold_s": 20},
    )
    prescription, holds = enrol(compiled), []
    for _ in range(2):
        result = compiled.step(prescription, full_week(prescription, range(3)))
        holds.append((decision(result).action, stage(result)[1]))
        prescription = result.prescription

    assert holds == [("progress", 20), ("hold", 20)]


def test_the_sustained_stage_starts_no_higher_than_the_ceiling(
    tiny: Callable[..., p.CompiledProgram],
    enrol: Callable[..., p.Prescription],
    full_week: Callable[..., list[p.Outcome]],
) -> None:
    compiled = tiny(
        dose={"sets": 5, "reps": 10, "variant": OVERPRESSURE},
        progression={"hold_start": 10},
        ceiling={"hold_s": 8},
    )
    prescription = enrol(compiled)

    result = compiled.step(prescription, full_week(prescription, range(3)))

    assert decision(result).action == "progress"
    assert stage(result) == (SUSTAINED, 8)


def test_a_clinic_may_name_its_own_stages_without_a_hold(
    tiny: Callable[..., p.CompiledProgram],
    enrol: Callable[..., p.Prescription],
    full_week: Callable[..., list[p.Outcome]],
) -> None:
    stages = ["flexion-lying", "flexion-sitting", "flexion-standing"]
    compiled = tiny(
        dose={"sets": 6, "reps": 10, "variant": "flexion-lying"},
        progression={"stages": stages, "sustained": False},
    )
    prescription, seen = enrol(compiled), []
    for _ in range(3):
        result = compiled.step(prescription, full_week(prescription, range(3)))
        seen.append((decision(result).action, *stage(result)))
        prescription = result.prescription

    assert seen == [
        ("progress", "flexion-sitting", None),
        ("progress", "flexion-standing", None),
        ("hold", "flexion-standing", None),
    ]
    assert ("ready-for-next-phase", PRESS) in flags(result)


def test_an_override_with_an_unknown_stage_is_refused_at_enrollment(
    lumbar: p.CompiledProgram,
    enrol: Callable[..., p.Prescription],
) -> None:
    # The core asks the strategy to check a clinician's starting dose before week 1.
    with pytest.raises(p.ProgressorError, match="'clinician-overpressure'") as info:
        enrol(lumbar, {PRESS: {"sets": 5, "reps": 10, "variant": "clinician-overpressure"}})
    assert "override of" in str(info.value)


# -- checked when the program is compiled ------------------------------------------------------


@pytest.mark.parametrize(
    ("dose", "progression", "message"),
    [
        ({"sets": 5, "reps": 10}, {}, "the starting variant must be a stage"),
        (
            {"sets": 5, "reps": 10, "variant": "patient-overpresure"},
            {},
            "(did you mean 'patient-overpressure'?)",
        ),
        ({"sets": 5, "reps": 10, "variant": SUSTAINED}, {}, "needs hold_s"),
        ({"sets": 5, "reps": 10, "variant": GENERATED, "hold_s": 5}, {}, "sustained stage only"),
        ({"sets": 5, "reps": 10, "variant": SUSTAINED, "hold_s": 40}, {}, "above hold_max 30"),
        ({"sets": 5, "reps": 10, "variant": GENERATED}, {"hold_start": 40}, "above hold_max"),
        ({"sets": 5, "reps": 10, "variant": "a"}, {"stages": ["a", "b", "a"]}, "only once"),
        ({"sets": 5, "reps": 10, "variant": GENERATED}, {"stages": []}, "at least 1"),
    ],
)
def test_bad_starting_doses_and_parameters_are_refused_at_load(
    tiny: Callable[..., p.CompiledProgram],
    dose: dict[str, Any],
    progression: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(p.ProgramError) as caught:
        tiny(dose=dose, progression=progression)

    [problem] = caught.value.problems
    assert problem.path[:3] == ("exercises", 0, "progression")
    assert message in str(problem)


def test_an_unknown_parameter_gets_a_suggestion(tiny: Callable[..., p.CompiledProgram]) -> None:
    with pytest.raises(p.ProgramError) as caught:
        tiny(progression={"hold_stepp": 5})

    [problem] = caught.value.problems
    assert problem.path == ("exercises", 0, "progression", "hold_stepp")
    assert problem.suggestion == "did you mean 'hold_step'?"
