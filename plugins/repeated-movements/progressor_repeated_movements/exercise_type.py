"""The exercise type ``repeated-movement``: bouts of end-range repetitions through the day.

A prone press-up is done as 10 repetitions, several times a day. The dose says how many
repetitions make a bout (`reps`) and how many bouts make the day (`sets`); at a sustained
stage each bout is also held at end range (`hold_s`). `variant` names the force stage.
"""

from __future__ import annotations

from collections.abc import Sequence

from progressor import Dose, ExerciseType, Outcome


def bouts_done(dose: Dose, outcomes: Sequence[Outcome]) -> int:
    """The bouts of the day that reached the reps (and the hold, when the dose has one).

    A patient may log the day in one outcome (``reps = [10, 10, 10]``) or one outcome per
    bout; the bouts of every outcome of the day count together. An outcome's `hold_s` is its
    shortest hold, so a bout counts towards a held dose only when that outcome reached it.
    """
    need_reps, need_hold = dose.reps or 0, dose.hold_s
    return sum(
        1
        for o in outcomes
        if need_hold is None or (o.hold_s or 0) >= need_hold
        for reps in o.reps
        if reps >= need_reps
    )


class RepeatedMovement(ExerciseType):
    name = "repeated-movement"
    description = (
        "repeated end-range movements in bouts through the day (e.g. prone press-ups, "
        "10 reps, several times a day): met when `sets` bouts of `reps` were done that day, "
        "each held `hold_s` at a sustained stage"
    )
    required = ("reps", "sets")
    optional = ("hold_s",)  # `variant` (the force stage) is allowed for every type

    def session_met(self, dose: Dose, outcomes: Sequence[Outcome]) -> bool:
        return bouts_done(dose, outcomes) >= (dose.sets or 1)
