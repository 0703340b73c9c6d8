"""The one rounding rule: a half goes up, wherever progressor rounds."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

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


@given(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=3),
)
def test_any_value_rounds_as_its_decimal_digits_half_up(value: float, digits: int) -> None:
    # The rule, stated on the decimal digits a value is written with: what round_half_up gives
    # for any value (its binary shortcut away from a half included), and never a -0.0.
    written = Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP)
    rounded = round_half_up(value, digits)
    assert rounded == float(written)
    assert math.copysign(1.0, rounded) == 1.0 or rounded != 0
