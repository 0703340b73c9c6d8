"""The one rounding rule: a half goes up, wherever progressor rounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import progressor
from progressor.core.rounding import round_half_up, round_whole


@pytest.mark.parametrize(
    ("value", "digits", "rounded"),
    [
        (682.5, 0, 683),  # round() gives 682
        (2.5, 0, 3),
        (682.49, 0, 682),
        (0.125, 2, 0.13),  # round() gives 0.12
        (2.675, 2, 2.68),  # 2.67499... in binary, a half as written
        (1.005, 2, 1.01),
        (3.14159, 2, 3.14),
        (-0.125, 2, -0.13),  # a pain difference: away from zero, as its size would be
        (0.0, 2, 0.0),
    ],
)
def test_a_half_goes_up(value: float, digits: int, rounded: float) -> None:
    assert round_half_up(value, digits) == rounded


@given(st.integers(min_value=0, max_value=10**6))
def test_whole_numbers_and_halves(n: int) -> None:
    assert round_whole(n) == n
    assert round_whole(n + 0.5) == n + 1
    assert round_whole(n + 0.49) == n


def test_a_dose_rounds_by_the_same_rule() -> None:
    dose = progressor.Dose(sets=1, reps=5, load_kg=10.0)
    assert dose.with_value("reps", 6.5).reps == 7
    assert dose.with_value("load_kg", 10.125).load_kg == 10.13
