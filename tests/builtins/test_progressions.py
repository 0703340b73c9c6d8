"""Built-in progression strategies: progress, hold one session short, ceiling, regress, floor.

A regress is triggered by the new-pain rule (one session with pain above the pain before),
so that the step back comes from the strategy's own ladder, applied by the engine.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import progressor as p
from progressor.builtins.progressions import Double, DoubleParams
from progressor.core.rounding import round_half_up
from tests.builtins.conftest import (
    EX,
    applied,
    decision,
    dose_of,
    enroll,
    flags,
    match,
    one_exercise,
    outcome,
    sessions,
)

NEW_PAIN = {"new-pain": {}}
RISE = (2, 3, 2)  # pain before 2, during 3: new pain once -> regress


def step(
    compiled: p.CompiledProgram,
    records: list[p.Outcome],
    start: dict[str, Any] | None = None,
) -> p.StepResult:
    return compiled.step(enroll(compiled, {EX: start} if start else None), records)


def ready_flag(result: p.StepResult, rule: str) -> bool:
    return ("ready-for-next-phase", EX, rule) in flags(result)


def one_rise(week: int = 1, **fields: Any) -> list[p.Outcome]:
    """A week at the given performance with pain rising above the pain before once."""
    rising = outcome(week=week, day=4, pain=RISE, **fields)
    return [*sessions(week=week, days=(0, 2), **fields), rising]


# -- linear ------------------------------------------------------------------------------------

KNEE_TO_CHEST_HOLD = {"reps": [5], "hold_s": 30}  # enough for any prescribed hold up to 30 s


@pytest.fixture
def linear() -> p.CompiledProgram:
    # The seed's knee-to-chest stretch: hold + 5 s a met week, up to 30 s, floor 3 s.
    return one_exercise(
        "stretch",
        {"reps": 5, "hold_s": 5, "side": "each"},
        {"strategy": "linear", "field": "hold_s", "step": 5, "max": 30},
        floor={"reps": 3, "hold_s": 3},
        ceiling={"reps": 10, "hold_s": 30},
        safety=NEW_PAIN,
    )


def test_linear_met_week_adds_one_step(linear: p.CompiledProgram) -> None:
    result = step(linear, sessions(reps=[5], hold_s=5))
    found = decision(result)
    assert (found.action, found.rule) == ("progress", "linear")
    assert (found.dose_before.hold_s, found.dose_after.hold_s) == (5, 10)
    assert dose_of(result) == p.Dose(reps=5, hold_s=10, side="each")
    assert result.prescription.flags == ()


def test_linear_one_session_short_holds(linear: p.CompiledProgram) -> None:
    records = [*sessions(days=(0, 2), reps=[5], hold_s=5), outcome(day=4, reps=[5], hold_s=4)]
    found = decision(step(linear, records))
    assert (found.action, found.rule) == ("hold", "linear")
    assert found.dose_after == found.dose_before
    assert applied(found).values == {"met_sessions": 2, "sessions_required": 3}


def test_linear_two_sessions_hold_three_progress(linear: p.CompiledProgram) -> None:
    assert decision(step(linear, sessions(days=(0, 3), reps=[5], hold_s=5))).action == "hold"
    assert decision(step(linear, sessions(days=(0, 3, 6), reps=[5], hold_s=5))).action == "progress"


def test_linear_step_is_capped_at_max(linear: p.CompiledProgram) -> None:
    start = {"reps": 5, "hold_s": 28, "side": "each"}
    result = step(linear, sessions(**KNEE_TO_CHEST_HOLD), start)
    assert decision(result).action == "progress"
    assert dose_of(result).hold_s == 30
    assert not ready_flag(result, "linear")


def test_linear_at_ceiling_holds_and_flags_ready_for_next_phase(linear: p.CompiledProgram) -> None:
    start = {"reps": 5, "hold_s": 30, "side": "each"}
    result = step(linear, sessions(**KNEE_TO_CHEST_HOLD), start)
    found = decision(result)
    assert (found.action, found.rule) == ("hold", "linear")
    assert found.dose_after == found.dose_before == p.Dose(**start)
    assert "ready for the next phase" in found.reason
    assert ready_flag(result, "linear")


@pytest.mark.parametrize(("hold_s", "after"), [(15, 10), (10, 5), (5, 3), (3, 3)])
def test_linear_regress_one_step_never_below_floor(
    linear: p.CompiledProgram, hold_s: int, after: int
) -> None:
    start = {"reps": 5, "hold_s": hold_s, "side": "each"}
    found = decision(step(linear, one_rise(**KNEE_TO_CHEST_HOLD), start))
    assert (found.action, found.rule) == ("regress", "new-pain")
    assert found.dose_after == p.Dose(reps=5, hold_s=after, side="each")
    assert ("already at the floor" in found.reason) == (hold_s == 3)


# -- double ------------------------------------------------------------------------------------


@pytest.fixture
def double() -> p.CompiledProgram:
    return _double()


def _double() -> p.CompiledProgram:
    # The seed's pelvic tilt: reps 5 -> 10, then hold + 1 s and reps back to 5.
    return one_exercise(
        "hold",
        {"sets": 1, "reps": 5, "hold_s": 5},
        {"strategy": "double", "first": "reps", "first_top": 10, "second": "hold_s"},
        floor={"reps": 3, "hold_s": 3},
        ceiling={"reps": 10, "hold_s": 10},
        safety=NEW_PAIN,
    )


def tilt(reps: int, hold_s: int) -> dict[str, int]:
    return {"sets": 1, "reps": reps, "hold_s": hold_s}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ((5, 5), (6, 5)),  # raise the first field by its step
        ((9, 5), (10, 5)),  # up to its top
        ((10, 5), (5, 6)),  # top met: raise the second, reset the first to its bottom
        ((10, 9), (5, 10)),  # up to the second field's ceiling
    ],
)
def test_double_progression(
    double: p.CompiledProgram, before: tuple[int, int], after: tuple[int, int]
) -> None:
    records = sessions(reps=[before[0]], hold_s=before[1])
    result = step(double, records, tilt(*before))
    found = decision(result)
    assert (found.action, found.rule) == ("progress", "double")
    assert dose_of(result) == p.Dose(**tilt(*after))


def test_double_one_session_short_of_the_top_holds(double: p.CompiledProgram) -> None:
    records = [*sessions(days=(0, 2), reps=[10], hold_s=5), outcome(day=4, reps=[9], hold_s=5)]
    found = decision(step(double, records, tilt(10, 5)))
    assert (found.action, found.rule) == ("hold", "double")
    assert found.dose_after == p.Dose(**tilt(10, 5))


def test_double_both_fields_at_ceiling_holds_and_flags(double: p.CompiledProgram) -> None:
    result = step(double, sessions(reps=[10], hold_s=10), tilt(10, 10))
    found = decision(result)
    assert (found.action, found.rule) == ("hold", "double")
    assert dose_of(result) == p.Dose(**tilt(10, 10))
    assert ready_flag(result, "double")


def test_double_resets_to_first_bottom_when_given() -> None:
    compiled = one_exercise(
        "reps",
        {"sets": 3, "reps": 8, "load_kg": 10},
        {
            "strategy": "double",
            "first": "reps",
            "first_bottom": 6,
            "first_top": 12,
            "second": "load_kg",
            "second_step": 2.5,
        },
    )
    result = step(
        compiled, sessions(reps=[12, 12, 12], load_kg=10), {"sets": 3, "reps": 12, "load_kg": 10}
    )
    assert decision(result).action == "progress"
    assert dose_of(result) == p.Dose(sets=3, reps=6, load_kg=12.5)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ((7, 5), (6, 5)),  # one rep back
        ((6, 7), (5, 7)),
        ((5, 6), (5, 5)),  # at the first field's bottom: lower the second, keep the first
        ((5, 4), (5, 3)),
        ((5, 3), (4, 3)),  # the second at its floor: the first below its bottom
        ((4, 7), (4, 6)),  # (a clinician's dose below the bottom: the second first)
        ((4, 3), (3, 3)),
        ((3, 3), (3, 3)),  # both at the floor: stays
    ],
)
def test_double_regress_one_step_never_below_floor(
    double: p.CompiledProgram, before: tuple[int, int], after: tuple[int, int]
) -> None:
    result = step(double, one_rise(reps=[10], hold_s=10), tilt(*before))
    found = decision(result)
    assert (found.action, found.rule) == ("regress", "new-pain")
    assert found.dose_after == p.Dose(**tilt(*after))
    assert dose_of(result) == p.Dose(**tilt(*after))
    assert ("already at the floor" in found.reason) == (before == (3, 3))


@settings(max_examples=60, deadline=None)
@given(
    reps=st.integers(min_value=3, max_value=10),
    hold_s=st.integers(min_value=3, max_value=10),
)
def test_double_step_back_walks_down_to_the_floor_and_says_so_only_there(
    reps: int, hold_s: int
) -> None:
    compiled = _double()
    found = decision(step(compiled, one_rise(reps=[10], hold_s=10), tilt(reps, hold_s)))
    after = found.dose_after
    assert after.reps is not None and after.hold_s is not None
    assert after.reps >= 3 and after.hold_s >= 3  # never below the floor
    assert after.reps <= reps and after.hold_s <= hold_s  # a step back raises nothing
    at_floor = (reps, hold_s) == (3, 3)
    assert (after == found.dose_before) == at_floor  # one step down unless at the floor
    assert ("already at the floor" in found.reason) == at_floor


@settings(max_examples=200, deadline=None)
@given(
    first=st.integers(min_value=1, max_value=20),
    second=st.floats(min_value=0, max_value=60, allow_nan=False).map(lambda x: round_half_up(x, 2)),
    first_floor=st.none() | st.integers(min_value=1, max_value=20),
    second_floor=st.none()
    | st.floats(min_value=0, max_value=60).map(lambda x: round_half_up(x, 2)),
    first_bottom=st.none() | st.integers(min_value=1, max_value=20),
    steps=st.tuples(st.integers(min_value=1, max_value=3), st.sampled_from([0.5, 1.0, 2.5])),
)
def test_double_regress_never_goes_below_a_floor(
    first: int,
    second: float,
    first_floor: int | None,
    second_floor: float | None,
    first_bottom: int | None,
    steps: tuple[int, float],
) -> None:
    floor = p.Limits(reps=first_floor, load_kg=second_floor)
    low_first = first_floor or steps[0]
    low_second = steps[1] if second_floor is None else second_floor
    assume(first >= low_first and second >= low_second)
    exercise = p.Exercise(
        id=EX,
        name="Squat",
        type="reps",
        dose=p.Dose(sets=1, reps=first, load_kg=second),
        floor=floor,
        progression={"strategy": "double", "first": "reps", "first_top": 20, "second": "load_kg"},
    )
    params = DoubleParams(
        first="reps",
        first_step=steps[0],
        first_bottom=first_bottom,
        first_top=20,
        second="load_kg",
        second_step=steps[1],
    )
    before = p.Dose(sets=1, reps=first, load_kg=second)
    after = Double().regress(exercise, before, params)
    assert after.reps is not None and after.load_kg is not None
    assert low_first <= after.reps <= first and low_second <= after.load_kg <= second
    at_floor = first == low_first and second == low_second
    assert (after == before) == at_floor


# -- two-for-two -------------------------------------------------------------------------------

HEEL_RAISE = {"sets": 3, "reps": 12, "load_kg": 10}
BEAT = [12, 12, 14]  # the last set beat 12 by 2
SHORT = [12, 12, 13]  # by 1 only


@pytest.fixture
def two_for_two() -> p.CompiledProgram:
    # The seed's heel raise: +10 % rounded up to 2.5 kg plates, 0 to 30 kg.
    return one_exercise(
        "reps",
        HEEL_RAISE,
        {
            "strategy": "two-for-two",
            "field": "load_kg",
            "surplus": 2,
            "sessions": 2,
            "increase_pct": 10,
            "increment": 2.5,
        },
        floor={"load_kg": 0},
        ceiling={"load_kg": 30},
        safety=NEW_PAIN,
    )


def heel(week: int, day: int, reps: list[int], load_kg: float = 10, **kw: Any) -> p.Outcome:
    return outcome(week=week, day=day, reps=reps, load_kg=load_kg, **kw)


def test_two_for_two_two_consecutive_sessions_raise_the_load(
    two_for_two: p.CompiledProgram,
) -> None:
    result = step(two_for_two, [heel(1, 0, BEAT), heel(1, 2, BEAT)])
    found = decision(result)
    assert (found.action, found.rule) == ("progress", "two-for-two")
    assert dose_of(result) == p.Dose(sets=3, reps=12, load_kg=12.5)
    assert result.prescription.exercises[EX].memory == {"streak": 0}
    assert applied(found).values["target_last_set"] == 14


def test_two_for_two_one_rep_short_of_the_surplus_holds(two_for_two: p.CompiledProgram) -> None:
    result = step(two_for_two, [heel(1, d, SHORT) for d in (0, 2, 4)])
    found = decision(result)
    assert (found.action, found.rule) == ("hold", "two-for-two")
    assert dose_of(result).load_kg == 10
    assert result.prescription.exercises[EX].memory == {"streak": 0}


def test_two_for_two_needs_consecutive_sessions(two_for_two: p.CompiledProgram) -> None:
    records = [heel(1, 0, BEAT), heel(1, 2, SHORT), heel(1, 4, BEAT)]
    result = step(two_for_two, records)
    assert decision(result).action == "hold"
    assert result.prescription.exercises[EX].memory == {"streak": 1}


def test_two_for_two_a_beating_set_below_the_full_dose_does_not_count(
    two_for_two: p.CompiledProgram,
) -> None:
    # The last set reached 14 but the first set stopped at 11: the dose was not done.
    records = [heel(1, 0, BEAT), heel(1, 2, [11, 12, 14])]
    assert decision(step(two_for_two, records)).action == "hold"
    # The same reps at a lighter load than prescribed are not the full dose either.
    records = [heel(1, 0, BEAT), heel(1, 2, BEAT, load_kg=7.5)]
    assert decision(step(two_for_two, records)).action == "hold"


def test_two_for_two_streak_is_carried_across_weeks(two_for_two: p.CompiledProgram) -> None:
    week1 = two_for_two.step(enroll(two_for_two), [heel(1, 0, SHORT), heel(1, 4, BEAT)])
    assert decision(week1).action == "hold"
    assert week1.prescription.exercises[EX].memory == {"streak": 1}

    week2 = two_for_two.step(week1.prescription, [heel(2, 0, BEAT), heel(2, 2, SHORT)])
    found = decision(week2)
    assert (found.action, found.rule) == ("progress", "two-for-two")
    assert dose_of(week2).load_kg == 12.5
    assert week2.prescription.exercises[EX].memory == {"streak": 0}


def test_two_for_two_streak_starts_afresh_after_a_week_stepped_back_for_pain(
    two_for_two: p.CompiledProgram,
) -> None:
    # Two beating sessions, but the second with new pain: new-pain steps the load back, and
    # those sessions do not count towards the next increase (no load rise the week after).
    week1 = two_for_two.step(
        enroll(two_for_two), [heel(1, 0, BEAT), heel(1, 2, BEAT, pain=(2, 4, 4))]
    )
    assert (decision(week1).action, decision(week1).rule) == ("regress", "new-pain")
    assert week1.prescription.exercises[EX].memory == {"streak": 0}
    lighter = dose_of(week1).load_kg
    week2 = two_for_two.step(week1.prescription, [heel(2, 0, BEAT, load_kg=lighter)])
    assert decision(week2).action == "hold" and dose_of(week2).load_kg == lighter


def test_two_for_two_streak_broken_by_a_short_session_at_the_start_of_a_week(
    two_for_two: p.CompiledProgram,
) -> None:
    week1 = two_for_two.step(enroll(two_for_two), [heel(1, 4, BEAT)])
    week2 = two_for_two.step(week1.prescription, [heel(2, 0, SHORT), heel(2, 2, BEAT)])
    assert decision(week2).action == "hold"
    assert week2.prescription.exercises[EX].memory == {"streak": 1}


@pytest.mark.parametrize(("load", "raised"), [(0, 2.5), (20, 22.5), (26, 30), (29, 30)])
def test_two_for_two_load_step_and_ceiling(
    two_for_two: p.CompiledProgram, load: float, raised: float
) -> None:
    # +10 % rounded up to a 2.5 kg plate, at least one plate; never above the 30 kg ceiling.
    result = step(
        two_for_two,
        [heel(1, 0, BEAT, load), heel(1, 2, BEAT, load)],
        {**HEEL_RAISE, "load_kg": load},
    )
    assert decision(result).action == "progress"
    assert dose_of(result).load_kg == raised


def test_two_for_two_at_ceiling_holds_and_flags(two_for_two: p.CompiledProgram) -> None:
    result = step(
        two_for_two, [heel(1, 0, BEAT, 30), heel(1, 2, BEAT, 30)], {**HEEL_RAISE, "load_kg": 30}
    )
    found = decision(result)
    assert (found.action, found.rule) == ("hold", "two-for-two")
    assert dose_of(result).load_kg == 30
    assert ready_flag(result, "two-for-two")


def test_two_for_two_default_parameters_add_five_percent_in_half_kilos() -> None:
    compiled = one_exercise(
        "reps", {"sets": 3, "reps": 8, "load_kg": 22}, {"strategy": "two-for-two"}
    )
    records = [outcome(day=d, reps=[8, 8, 10], load_kg=22) for d in (0, 2)]
    result = step(compiled, records)
    assert decision(result).action == "progress"
    assert dose_of(result).load_kg == 23.5  # 5 % of 22 = 1.1, rounded up to 1.5


@pytest.mark.parametrize(("load", "after"), [(20, 17.5), (10, 7.5), (2.5, 0), (0, 0)])
def test_two_for_two_regress_one_step_never_below_floor(
    two_for_two: p.CompiledProgram, load: float, after: float
) -> None:
    records = [heel(1, 0, SHORT, load), heel(1, 2, SHORT, load, pain=RISE)]
    found = decision(step(two_for_two, records, {**HEEL_RAISE, "load_kg": load}))
    assert (found.action, found.rule) == ("regress", "new-pain")
    assert found.dose_after.load_kg == after


# -- rpe ---------------------------------------------------------------------------------------

SKIPPING = {"sets": 2, "duration_s": 30}


@pytest.fixture
def rpe() -> p.CompiledProgram:
    # The seed's skipping: target RPE 6, margin 1.5, +/- 15 s, 15 to 120 s.
    return one_exercise(
        "timed",
        SKIPPING,
        {"strategy": "rpe", "field": "duration_s", "step": 15, "target": 6, "margin": 1.5},
        floor={"duration_s": 15},
        ceiling={"duration_s": 120},
    )


def skip_rope(rpes: list[float | None], durations: list[float] | None = None) -> list[p.Outcome]:
    return [
        outcome(day=day, duration_s=durations or [30, 30], rpe=value)
        for day, value in zip((0, 2, 4, 6), rpes, strict=False)
    ]


@pytest.mark.parametrize(
    ("rpes", "median", "action", "duration"),
    [
        ([4, 4.5, 5], 4.5, "progress", 45),  # exactly margin below the target
        ([3, 3, 3], 3, "progress", 45),
        ([4, 4.6, 5], 4.6, "hold", 30),  # just inside the margin
        ([6, 6, 6], 6, "hold", 30),
        ([7, 7.4, 8], 7.4, "hold", 30),
        ([7, 7.5, 8], 7.5, "regress", 15),  # exactly margin above the target
        ([9, 9, 9], 9, "regress", 15),
        ([4, 5], 4.5, "progress", 45),  # the median of an even count
    ],
)
def test_rpe_median_against_target_and_margin(
    rpe: p.CompiledProgram, rpes: list[float], median: float, action: str, duration: int
) -> None:
    records = skip_rope(rpes)
    if len(rpes) < 3:  # a third scored session at the full dose, without RPE
        records.append(outcome(day=6, duration_s=[30, 30]))
    found = decision(step(rpe, records))
    assert (found.action, found.rule) == (action, "rpe")
    assert applied(found).values["median_rpe"] == median
    assert found.dose_after.duration_s == duration


def test_rpe_low_but_one_session_short_holds(rpe: p.CompiledProgram) -> None:
    records = [*skip_rope([3, 3]), outcome(day=4, duration_s=[30, 29], rpe=3)]
    found = decision(step(rpe, records))
    assert (found.action, found.rule) == ("hold", "rpe")
    assert found.dose_after.duration_s == 30


def test_rpe_from_unscored_sessions_is_not_counted(rpe: p.CompiledProgram) -> None:
    # Scored: 6 and 8 (median 7, hold). The unscored 9 would make the median 8 (regress).
    records = [*skip_rope([6, 8]), outcome(day=4, duration_s=[30, 30], rpe=9, pain=None)]
    found = decision(step(rpe, records))
    assert (found.action, found.rule) == ("hold", "rpe")
    assert applied(found).values["median_rpe"] == 7


def test_rpe_without_any_rpe_holds(rpe: p.CompiledProgram) -> None:
    found = decision(step(rpe, skip_rope([None, None, None])))
    assert (found.action, found.rule) == ("hold", "rpe")


def test_rpe_at_ceiling_holds_and_flags(rpe: p.CompiledProgram) -> None:
    result = step(rpe, skip_rope([3, 3, 3], [120, 120]), {"sets": 2, "duration_s": 120})
    assert decision(result).action == "hold"
    assert dose_of(result).duration_s == 120
    assert ready_flag(result, "rpe")


def test_rpe_regress_never_below_floor(rpe: p.CompiledProgram) -> None:
    for start, after in ((40, 25), (25, 15), (15, 15)):
        result = step(rpe, skip_rope([9, 9, 9], [start, start]), {"sets": 2, "duration_s": start})
        found = decision(result)
        assert (found.action, found.rule) == ("regress", "rpe")
        assert dose_of(result).duration_s == after


# -- ladder ------------------------------------------------------------------------------------

VARIANTS = ["bridge", "marching-bridge", "single-leg-bridge"]


@pytest.fixture
def ladder() -> p.CompiledProgram:
    return one_exercise(
        "hold",
        {"sets": 1, "reps": 5, "hold_s": 5, "variant": "bridge"},
        {"strategy": "ladder", "variants": VARIANTS, "field": "reps", "start": 5, "top": 10},
        floor={"reps": 3},
        safety=NEW_PAIN,
    )


def bridge(variant: str, reps: int) -> dict[str, Any]:
    return {"sets": 1, "reps": reps, "hold_s": 5, "variant": variant}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (("bridge", 5), ("bridge", 6)),
        (("bridge", 9), ("bridge", 10)),
        (("bridge", 10), ("marching-bridge", 5)),  # top met: next variant at its start
        (("marching-bridge", 10), ("single-leg-bridge", 5)),
    ],
)
def test_ladder_progression(
    ladder: p.CompiledProgram, before: tuple[str, int], after: tuple[str, int]
) -> None:
    result = step(ladder, sessions(reps=[before[1]], hold_s=5), bridge(*before))
    found = decision(result)
    assert (found.action, found.rule) == ("progress", "ladder")
    assert dose_of(result) == p.Dose(**bridge(*after))


def test_ladder_one_session_short_holds(ladder: p.CompiledProgram) -> None:
    records = [*sessions(days=(0, 2), reps=[10], hold_s=5), outcome(day=4, reps=[9], hold_s=5)]
    found = decision(step(ladder, records, bridge("bridge", 10)))
    assert (found.action, found.rule) == ("hold", "ladder")
    assert found.dose_after == p.Dose(**bridge("bridge", 10))


def test_ladder_last_variant_at_top_holds_and_flags(ladder: p.CompiledProgram) -> None:
    result = step(ladder, sessions(reps=[10], hold_s=5), bridge("single-leg-bridge", 10))
    assert decision(result).action == "hold"
    assert dose_of(result) == p.Dose(**bridge("single-leg-bridge", 10))
    assert ready_flag(result, "ladder")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (("marching-bridge", 7), ("marching-bridge", 6)),
        (("marching-bridge", 5), ("bridge", 10)),  # back to the easier variant at its top
        (("bridge", 6), ("bridge", 5)),
        (("bridge", 5), ("bridge", 5)),  # the first variant's start: stays
    ],
)
def test_ladder_regress_one_step_back(
    ladder: p.CompiledProgram, before: tuple[str, int], after: tuple[str, int]
) -> None:
    found = decision(step(ladder, one_rise(reps=[10], hold_s=5), bridge(*before)))
    assert (found.action, found.rule) == ("regress", "new-pain")
    assert found.dose_after == p.Dose(**bridge(*after))


# -- quota (the graded-walking seed: baseline week, 70 %, +120 s a met week, goal 2700 s) -------


def walks(week: int, durations: list[float], pain: Any = 2) -> list[p.Outcome]:
    return [
        outcome("walk", week=week, day=day, duration_s=[d], pain=pain)
        for day, d in zip((0, 1, 3, 5, 6), durations, strict=False)
    ]


def walk_dose(duration: float) -> p.Dose:
    return p.Dose(sets=1, duration_s=duration)


def quota_phase(walking: p.CompiledProgram, duration: float) -> p.Prescription:
    """A patient whose baseline gave a first quota, now walking `duration` seconds."""
    week1 = walking.step(enroll(walking), walks(1, [1000, 1000, 1000, 1000]))
    assert week1.prescription.exercises["walk"].memory == {"phase": "quota"}
    state = p.ExerciseState(dose=walk_dose(duration), memory={"phase": "quota"})
    exercises = {**week1.prescription.exercises, "walk": state}
    return week1.prescription.model_copy(update={"exercises": exercises})


def test_quota_first_quota_is_70_percent_of_the_baseline_mean(
    walking: p.CompiledProgram,
) -> None:
    result = walking.step(enroll(walking), walks(1, [800, 1000, 1200, 1000]))
    found = decision(result, "walk")
    assert (found.action, found.rule) == ("progress", "quota")
    assert applied(found).values["baseline_mean"] == 1000
    assert dose_of(result, "walk") == walk_dose(700)
    assert result.prescription.exercises["walk"].memory == {"phase": "quota"}


def test_quota_first_quota_rounds_a_half_up(walking: p.CompiledProgram) -> None:
    # Mean 975 s: 70 % is 682.5 s, which a clinician rounds to 683 (round() gives 682).
    result = walking.step(enroll(walking), walks(1, [900, 1000, 1000, 1000]))
    assert dose_of(result, "walk") == walk_dose(683)
    assert "first quota duration_s 683" in decision(result, "walk").reason


def test_quota_a_thin_baseline_week_is_no_baseline(walking: p.CompiledProgram) -> None:
    # One scored long walk and three walks without pain scores: no first quota from that.
    unscored = [outcome("walk", week=1, day=d, duration_s=[300], pain=None) for d in (1, 3, 5)]
    week1 = walking.step(enroll(walking), [*walks(1, [3000]), *unscored])
    found = decision(week1, "walk")
    assert (found.action, found.rule) == ("hold", "quota")
    assert "this week had 1 scored sessions, a baseline week needs 4" in found.reason
    week2 = walking.step(week1.prescription, walks(2, [1000, 1000, 1000, 1000]))
    assert decision(week2, "walk").action == "progress"  # mean of 5 sessions: 1400 s
    assert dose_of(week2, "walk") == walk_dose(980)


def test_quota_baseline_pain_does_not_change_the_first_quota(walking: p.CompiledProgram) -> None:
    result = walking.step(enroll(walking), walks(1, [800, 1000, 1200, 1000], pain=(2, 5, 4)))
    assert decision(result, "walk").action == "progress"
    assert dose_of(result, "walk") == walk_dose(700)


def test_quota_first_quota_never_below_floor(walking: p.CompiledProgram) -> None:
    result = walking.step(enroll(walking), walks(1, [400, 400, 400, 400]))
    assert dose_of(result, "walk") == walk_dose(300)  # 70 % of 400 = 280, floor 300


def test_quota_met_week_adds_the_increment(walking: p.CompiledProgram) -> None:
    week2 = walking.step(quota_phase(walking, 700), walks(2, [700, 700, 710, 700]))
    found = decision(week2, "walk")
    assert (found.action, found.rule) == ("progress", "quota")
    assert dose_of(week2, "walk") == walk_dose(820)


def test_quota_pain_does_not_change_the_quota(walking: p.CompiledProgram) -> None:
    week2 = walking.step(quota_phase(walking, 700), walks(2, [700] * 4, pain=(3, 6, 5)))
    assert decision(week2, "walk").action == "progress"
    assert dose_of(week2, "walk") == walk_dose(820)


def test_quota_one_session_short_holds(walking: p.CompiledProgram) -> None:
    week2 = walking.step(quota_phase(walking, 700), walks(2, [700, 700, 700, 699]))
    found = decision(week2, "walk")
    assert (found.action, found.rule) == ("hold", "quota")
    assert dose_of(week2, "walk") == walk_dose(700)


def test_quota_increment_capped_at_goal_then_ready_flag(walking: p.CompiledProgram) -> None:
    near = walking.step(quota_phase(walking, 2640), walks(2, [2640] * 4))
    assert decision(near, "walk").action == "progress"
    assert dose_of(near, "walk") == walk_dose(2700)

    at_goal = walking.step(near.prescription, walks(3, [2700] * 4))
    found = decision(at_goal, "walk")
    assert (found.action, found.rule) == ("hold", "quota")
    assert dose_of(at_goal, "walk") == walk_dose(2700)
    assert ("ready-for-next-phase", "walk", "quota") in flags(at_goal)


def test_quota_baseline_over_several_weeks_uses_the_mean_of_all() -> None:
    compiled = one_exercise(
        "timed",
        {"sets": 1, "duration_s": 600},
        {"strategy": "quota", "baseline_weeks": 2, "increment": 60, "goal": 1800},
    )
    week1 = compiled.step(enroll(compiled), sessions(duration_s=[600]))
    found = decision(week1)
    assert (found.action, found.rule) == ("hold", "quota")
    assert dose_of(week1).duration_s == 600
    week2 = compiled.step(week1.prescription, sessions(week=2, duration_s=[1000]))
    assert decision(week2).action == "progress"
    assert dose_of(week2).duration_s == 560  # 70 % of (3 x 600 + 3 x 1000) / 6 = 800


def test_quota_regress_one_increment_never_below_floor(walking: p.CompiledProgram) -> None:
    # Two weeks without a session: the adherence rule steps every exercise back.
    for quota, after in ((700, 580), (380, 300), (300, 300)):
        week2 = walking.step(quota_phase(walking, quota), [])
        assert decision(week2, "walk").action == "hold"
        week3 = walking.step(week2.prescription, [])
        found = decision(week3, "walk")
        assert (found.action, found.rule) == ("regress", "adherence")
        assert dose_of(week3, "walk") == walk_dose(after)


def test_quota_first_quota_equal_to_the_baseline_dose_starts_the_quota_phase(
    walking: p.CompiledProgram,
) -> None:
    # Baseline mean 857 s: 70 % is 600 s, the same as the baseline week's nominal dose. That is
    # the first quota, not a ceiling: no "ready for the next phase", and the quota phase starts.
    week1 = walking.step(enroll(walking), walks(1, [840, 870, 860, 858]))
    assert dose_of(week1, "walk") == walk_dose(600)
    assert ("ready-for-next-phase", "walk", "quota") not in flags(week1)
    week2 = walking.step(week1.prescription, walks(2, [600] * 4))
    assert dose_of(week2, "walk") == walk_dose(720)


def test_quota_baseline_ignores_sessions_without_pain_scores(walking: p.CompiledProgram) -> None:
    # A session without pain scores never counts towards a progression: the unscored 3000 s
    # walk must not raise the baseline mean (1000 s over the four scored walks).
    records = walks(1, [1000, 1000, 1000, 1000])
    records.append(outcome("walk", day=2, duration_s=[3000], pain=None))
    result = walking.step(enroll(walking), records)
    assert dose_of(result, "walk") == walk_dose(700)
    assert match(decision(result, "walk"), "missing-data").values == {"unscored": 1}
