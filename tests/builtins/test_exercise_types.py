"""Built-in exercise types: when a session met the dose, at the dose and one below it.

Each tiny program progresses one field linearly, so a met week shows as "progress" and a
week with one session short of the full dose shows as "hold" by the strategy.
"""

from __future__ import annotations

from typing import Any

import pytest

import progressor as p
from tests.builtins.conftest import (
    applied,
    decision,
    dose_of,
    enroll,
    lbp_sessions,
    one_exercise,
    outcome,
    sessions,
)


def two_full_and(
    compiled: p.CompiledProgram, full: dict[str, Any], last: list[dict[str, Any]]
) -> p.StepResult:
    """Two sessions at the full dose (Mon, Wed), then Friday's outcomes as given."""
    records = sessions(days=(0, 2), **full)
    records += [outcome(day=4, **fields) for fields in last]
    return compiled.step(enroll(compiled), records)


def assert_met(result: p.StepResult, met: bool) -> None:
    found = decision(result)
    assert found.action == ("progress" if met else "hold")
    assert applied(found).rule == "linear"
    assert applied(found).values["met_sessions"] == (3 if met else 2)


# -- reps --------------------------------------------------------------------------------------

SIT_TO_STAND = {"sets": 3, "reps": 10}
REPS = {"reps": [10, 10, 10]}


@pytest.fixture
def reps_program() -> p.CompiledProgram:
    return one_exercise(
        "reps", SIT_TO_STAND, {"strategy": "linear", "field": "reps", "step": 1, "max": 15}
    )


@pytest.mark.parametrize(
    ("reps", "met"),
    [
        ([10, 10, 10], True),  # exactly the dose
        ([12, 11, 10], True),  # above it
        ([10, 10, 9], False),  # the last set one short
        ([9, 10, 10], False),  # the first set one short
        ([10, 10], False),  # one set missing
        ([10, 10, 9, 10], True),  # a fourth set makes up for the short one: 3 sets of 10
    ],
)
def test_reps_met_when_every_prescribed_set_reached_its_reps(
    reps_program: p.CompiledProgram, reps: list[int], met: bool
) -> None:
    result = two_full_and(reps_program, REPS, [{"reps": reps}])
    assert_met(result, met)
    assert dose_of(result).reps == (11 if met else 10)


@pytest.mark.parametrize(
    ("load", "met"), [(20.0, True), (22.5, True), (19.5, False), (None, False)]
)
def test_reps_with_load_met_only_at_the_prescribed_load(load: float | None, met: bool) -> None:
    compiled = one_exercise(
        "reps",
        {"sets": 3, "reps": 10, "load_kg": 20},
        {"strategy": "linear", "field": "load_kg", "step": 2.5, "max": 40},
    )
    full = {"reps": [10, 10, 10], "load_kg": 20}
    result = two_full_and(compiled, full, [{"reps": [10, 10, 10], "load_kg": load}])
    assert_met(result, met)
    assert dose_of(result).load_kg == (22.5 if met else 20)


# -- hold --------------------------------------------------------------------------------------

PELVIC_TILT = {"sets": 1, "reps": 5, "hold_s": 5}


@pytest.fixture
def hold_program() -> p.CompiledProgram:
    return one_exercise(
        "hold", PELVIC_TILT, {"strategy": "linear", "field": "hold_s", "step": 1, "max": 10}
    )


@pytest.mark.parametrize(
    ("reps", "hold_s", "met"),
    [
        ([5], 5, True),  # exactly the dose
        ([6], 7, True),
        ([5], 4, False),  # held one second short
        ([4], 5, False),  # one repetition short
        ([5], None, False),  # no hold reported
        ([], 5, False),  # no repetitions reported
    ],
)
def test_hold_met_when_reps_and_hold_were_reached(
    hold_program: p.CompiledProgram, reps: list[int], hold_s: float | None, met: bool
) -> None:
    full = {"reps": [5], "hold_s": 5}
    result = two_full_and(hold_program, full, [{"reps": reps, "hold_s": hold_s}])
    assert_met(result, met)
    assert dose_of(result) == p.Dose(sets=1, reps=5, hold_s=6 if met else 5)


@pytest.mark.parametrize(("reps", "met"), [([5, 5, 5], True), ([5, 5, 4], False)])
def test_hold_with_sets_needs_every_set(reps: list[int], met: bool) -> None:
    # The Achilles isometric calf hold: 3 x 5 x 30 s.
    compiled = one_exercise(
        "hold",
        {"sets": 3, "reps": 5, "hold_s": 30},
        {"strategy": "linear", "field": "hold_s", "step": 5, "max": 45},
    )
    full = {"reps": [5, 5, 5], "hold_s": 30}
    result = two_full_and(compiled, full, [{"reps": reps, "hold_s": 30}])
    assert_met(result, met)
    assert dose_of(result).hold_s == (35 if met else 30)


def test_seed_pelvic_tilt_at_its_starting_dose_is_met(lbp: p.CompiledProgram) -> None:
    result = lbp.step(enroll(lbp), lbp_sessions())
    tilt = decision(result, "pelvic-tilt")
    assert (tilt.action, tilt.rule) == ("progress", "double")
    assert tilt.dose_after == p.Dose(sets=1, reps=6, hold_s=5)


def test_seed_pelvic_tilt_held_a_second_short_is_not_met(lbp: p.CompiledProgram) -> None:
    records = lbp_sessions(days=(0, 2)) + lbp_sessions(
        days=(4,), doses={"pelvic-tilt": {"reps": (5,), "hold_s": 4}}
    )
    result = lbp.step(enroll(lbp), records)
    tilt = decision(result, "pelvic-tilt")
    assert (tilt.action, tilt.rule) == ("hold", "double")
    assert tilt.dose_after == tilt.dose_before
    assert decision(result, "bridge").action == "progress"


# -- stretch -----------------------------------------------------------------------------------

KNEE_TO_CHEST = {"reps": 5, "hold_s": 5, "side": "each"}
STRETCH_FULL = {"reps": [5], "hold_s": 5}


@pytest.fixture
def stretch_program() -> p.CompiledProgram:
    return one_exercise(
        "stretch", KNEE_TO_CHEST, {"strategy": "linear", "field": "hold_s", "step": 5, "max": 30}
    )


@pytest.mark.parametrize(
    ("friday", "met"),
    [
        ([{"side": "left", **STRETCH_FULL}, {"side": "right", **STRETCH_FULL}], True),
        ([STRETCH_FULL], True),  # no side: both sides done as prescribed
        ([{"side": "left", **STRETCH_FULL}], False),  # one leg only
        ([{"side": "right", **STRETCH_FULL}], False),
        ([{"side": "left", **STRETCH_FULL}, {"side": "left", **STRETCH_FULL}], False),
        ([{"side": "left", **STRETCH_FULL}, {"side": "right", "reps": [5], "hold_s": 4}], False),
        ([{"side": "left", **STRETCH_FULL}, {"side": "right", "reps": [4], "hold_s": 5}], False),
        ([{"reps": [5], "hold_s": 4}], False),  # no side, one second short
        ([{"reps": [4], "hold_s": 5}], False),  # no side, one repetition short
    ],
)
def test_stretch_each_side_needs_both_sides(
    stretch_program: p.CompiledProgram, friday: list[dict[str, Any]], met: bool
) -> None:
    result = two_full_and(stretch_program, STRETCH_FULL, friday)
    assert_met(result, met)
    assert dose_of(result) == p.Dose(reps=5, hold_s=10 if met else 5, side="each")


def test_stretch_each_side_with_one_side_unscored_is_not_met(
    stretch_program: p.CompiledProgram,
) -> None:
    friday = [
        {"side": "left", **STRETCH_FULL},
        {"side": "right", "pain": (2, None, None), **STRETCH_FULL},
    ]
    result = two_full_and(stretch_program, STRETCH_FULL, friday)
    assert_met(result, False)


@pytest.mark.parametrize(("hold_s", "met"), [(5, True), (4, False)])
def test_stretch_without_sides_is_met_by_one_side(hold_s: int, met: bool) -> None:
    compiled = one_exercise(
        "stretch",
        {"reps": 5, "hold_s": 5},
        {"strategy": "linear", "field": "hold_s", "step": 5, "max": 30},
    )
    result = two_full_and(compiled, STRETCH_FULL, [{"side": "left", "reps": [5], "hold_s": hold_s}])
    assert_met(result, met)


def test_seed_knee_to_chest_logged_per_leg(lbp: p.CompiledProgram) -> None:
    both = [
        outcome("knee-to-chest", day=day, side=side, reps=[5], hold_s=5)
        for day in (0, 2, 4)
        for side in ("left", "right")
    ]
    result = lbp.step(enroll(lbp), both)
    knee = decision(result, "knee-to-chest")
    assert (knee.action, knee.rule) == ("progress", "linear")
    assert knee.dose_after == p.Dose(reps=5, hold_s=10, side="each")

    left_only = [o for o in both if not (o.side == "right" and o.date == both[-1].date)]
    knee = decision(lbp.step(enroll(lbp), left_only), "knee-to-chest")
    assert (knee.action, knee.dose_after.hold_s) == ("hold", 5)


# -- timed -------------------------------------------------------------------------------------

PLANK = {"sets": 2, "duration_s": 30}


@pytest.fixture
def timed_program() -> p.CompiledProgram:
    return one_exercise(
        "timed", PLANK, {"strategy": "linear", "field": "duration_s", "step": 15, "max": 120}
    )


@pytest.mark.parametrize(
    ("durations", "met"),
    [
        ([30, 30], True),  # exactly the dose
        ([45, 31], True),
        ([30, 29], False),  # the second set one second short
        ([29, 30], False),
        ([30], False),  # one set missing
        ([29, 30, 30], True),  # a third set makes up for the short one
    ],
)
def test_timed_met_when_every_set_lasted_its_duration(
    timed_program: p.CompiledProgram, durations: list[float], met: bool
) -> None:
    result = two_full_and(timed_program, {"duration_s": [30, 30]}, [{"duration_s": durations}])
    assert_met(result, met)
    assert dose_of(result) == p.Dose(sets=2, duration_s=45 if met else 30)


def test_one_met_outcome_among_several_on_a_day_makes_one_met_session(
    timed_program: p.CompiledProgram,
) -> None:
    # Friday: a short first attempt and a full second one; two days at the dose before.
    friday = [{"duration_s": [20, 15]}, {"duration_s": [30, 30]}]
    result = two_full_and(timed_program, {"duration_s": [30, 30]}, friday)
    assert_met(result, True)


def test_several_met_outcomes_on_one_day_count_as_one_session(
    timed_program: p.CompiledProgram,
) -> None:
    records = [outcome(day=0, duration_s=[30, 30]) for _ in range(2)]
    records += [outcome(day=2, duration_s=[30, 30])]
    result = timed_program.step(enroll(timed_program), records)
    assert_met(result, False)
