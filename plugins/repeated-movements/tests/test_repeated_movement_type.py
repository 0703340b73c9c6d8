"""The exercise type `repeated-movement`: when a day's bouts met the dose, and its dose fields."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import progressor_repeated_movements as rm
import pytest

import progressor as p

DAY = dt.date(2026, 1, 5)
PRESS_UPS = p.Dose(sets=5, reps=10, variant="patient-generated")
SUSTAINED = p.Dose(sets=5, reps=10, hold_s=10, variant="sustained")


def met(dose: p.Dose, *outcomes: p.Outcome) -> bool:
    return rm.RepeatedMovement().session_met(dose, outcomes)


@pytest.mark.parametrize(
    ("reps", "expected"),
    [
        ((10, 10, 10, 10, 10), True),
        ((10, 12, 10, 11, 10, 10), True),  # more bouts, or more reps, than prescribed
        ((10, 10, 10, 10), False),  # a bout short
        ((10, 10, 10, 10, 9), False),  # one bout short of its reps
        ((), False),
    ],
)
def test_a_day_is_met_by_enough_bouts_of_enough_reps(
    outcome: Callable[..., p.Outcome], reps: tuple[int, ...], expected: bool
) -> None:
    assert met(PRESS_UPS, outcome("press-up", DAY, reps=reps, hold_s=None)) is expected


def test_bouts_logged_one_outcome_each_count_together(outcome: Callable[..., p.Outcome]) -> None:
    bouts = [outcome("press-up", DAY, reps=(10,), hold_s=None) for _ in range(5)]

    assert rm.bouts_done(PRESS_UPS, bouts) == 5
    assert met(PRESS_UPS, *bouts)
    assert not met(PRESS_UPS, *bouts[:4])


@pytest.mark.parametrize(("hold", "expected"), [(10, True), (12, True), (9, False), (None, False)])
def test_a_sustained_dose_also_needs_the_hold(
    outcome: Callable[..., p.Outcome], hold: float | None, expected: bool
) -> None:
    assert met(SUSTAINED, outcome("press-up", DAY, reps=(10,) * 5, hold_s=hold)) is expected


def test_only_the_bouts_that_were_held_count(outcome: Callable[..., p.Outcome]) -> None:
    held = outcome("press-up", DAY, reps=(10, 10, 10), hold_s=10)
    short = outcome("press-up", DAY, reps=(10, 10), hold_s=6)

    assert rm.bouts_done(SUSTAINED, [held, short]) == 3
    assert not met(SUSTAINED, held, short)


def test_a_press_up_day_counts_only_with_pain_scores(
    tiny: Callable[..., p.CompiledProgram],
    enrol: Callable[..., p.Prescription],
    outcome: Callable[..., p.Outcome],
) -> None:
    compiled = tiny()
    days = [DAY + dt.timedelta(days=d) for d in range(3)]
    scored = [outcome("press-up", d, reps=(10,) * 5, hold_s=None) for d in days]
    unscored = [o.model_copy(update={"pain_before": None}) for o in scored]

    assert compiled.step(enrol(compiled), scored).decisions[0].action == "progress"
    assert compiled.step(enrol(compiled), unscored).decisions[0].action == "hold"


@pytest.mark.parametrize(
    ("dose", "message"),
    [
        ({"reps": 10, "variant": "patient-generated"}, "needs 'sets'"),
        ({"sets": 5, "variant": "patient-generated"}, "needs 'reps'"),
        ({"sets": 5, "reps": 10, "duration_s": 30, "variant": "patient-generated"}, "duration_s"),
    ],
)
def test_the_dose_fields_of_a_repeated_movement(
    tiny: Callable[..., p.CompiledProgram], dose: dict[str, Any], message: str
) -> None:
    with pytest.raises(p.ProgramError) as caught:
        tiny(dose=dose)

    assert any(message in problem.message for problem in caught.value.problems)
