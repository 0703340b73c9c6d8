"""The one rounding rule: a half goes up, as a clinician rounds (682.5 s is 683 s).

Python's round() sends a half to the even neighbour (682.5 -> 682, 0.125 -> 0.12); every
dose, quota, mean and pain difference progressor rounds goes through `round_half_up`.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal


def round_half_up(value: float, digits: int = 0) -> float:
    """`value` to `digits` decimals, a half away from zero (a half up for the values
    progressor rounds, which are positive but for pain differences)."""
    scale = 10.0**digits
    shifted = value * scale
    if not math.isfinite(shifted):  # left for validation to refuse, with its own message
        return value
    whole = math.floor(shifted)
    if abs(shifted - whole - 0.5) < 1e-6:
        # Near a half: decide on the decimal digits the value is written with (2.675 is
        # 2.67499... in binary, yet a half to whoever wrote it), not on its binary error.
        exact = Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP)
        return float(exact)
    # Not near a half: the nearest whole number, on either side of zero, and one zero.
    rounded = math.floor(shifted + 0.5) / scale
    return rounded if rounded else 0.0


def round_whole(value: float) -> int:
    """`value` to a whole number, a half up: counts and seconds of a dose."""
    if type(value) is int:  # (the usual case, a step of whole reps or seconds: nothing to round)
        return value
    if type(value) is float and value.is_integer():  # a whole number already (6.0 reps)
        return int(value)
    return int(round_half_up(value))
