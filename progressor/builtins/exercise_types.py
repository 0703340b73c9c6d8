"""Built-in exercise types: reps, hold, stretch and timed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from progressor import hookimpl
from progressor.core.components import ExerciseType
from progressor.core.models import Dose, Outcome


def _reps_met(dose: Dose, outcome: Outcome) -> bool:
    # The `sets`-th best set must reach the reps: every prescribed set was completed.
    sets, done = dose.sets or 1, outcome.reps
    if len(done) < sets:
        return False
    best = max(done) if sets == 1 else sorted(done)[-sets]
    if best < (dose.reps or 0):
        return False
    return dose.load_kg is None or (outcome.load_kg or 0) >= dose.load_kg


class Reps(ExerciseType):
    name = "reps"
    description = "sets x reps, optionally with a load; met when every set reached its reps"
    required = ("reps",)
    optional = ("sets", "load_kg")

    def session_met(self, dose: Dose, outcomes: Sequence[Outcome]) -> bool:
        # A loop rather than any(): no generator to set up, for every session of every patient.
        for o in outcomes:  # noqa: SIM110
            if _reps_met(dose, o):
                return True
        return False


class Hold(ExerciseType):
    name = "hold"
    description = "sets x reps x hold_s (isometric); met when the reps and the hold were reached"
    required = ("reps", "hold_s")
    optional = ("sets",)

    def each_met(self, dose: Dose, outcomes: Sequence[Outcome]) -> list[bool]:
        need = dose.hold_s or 0
        if dose.sets in (None, 1) and dose.load_kg is None:  # the usual dose, as below
            reps = dose.reps or 0
            # (The last set usually has the reps: max() is asked only when it has not.)
            return [
                (o.hold_s or 0) >= need and (o.reps[-1] >= reps or max(o.reps) >= reps)
                if o.reps
                else False
                for o in outcomes
            ]
        return [(o.hold_s or 0) >= need and _reps_met(dose, o) for o in outcomes]

    def column_form(self) -> object:
        """`each_met` in columns (progressor.columns), for the usual dose."""
        from progressor.columns.builtin import HoldColumns

        return HoldColumns(each_side=False)

    def session_met(self, dose: Dose, outcomes: Sequence[Outcome]) -> bool:
        # The hold reached and every set's reps (_reps_met); a loop, not any() (see Reps).
        # The usual dose (one set, no load) is checked inline: a call per outcome costs more.
        need = dose.hold_s or 0
        simple = dose.sets in (None, 1) and dose.load_kg is None
        reps = dose.reps or 0
        for o in outcomes:
            if (o.hold_s or 0) < need:
                continue
            if simple:
                if o.reps and max(o.reps) >= reps:
                    return True
            elif _reps_met(dose, o):
                return True
        return False


class Stretch(ExerciseType):
    name = "stretch"
    description = (
        "reps x hold_s, optionally each side; met like hold, and on both sides when 'each'"
    )
    required = ("reps", "hold_s")
    optional = ("sets", "side")

    def each_met(self, dose: Dose, outcomes: Sequence[Outcome]) -> list[bool]:
        # One outcome alone meets an 'each side' dose only when it names no side (both done).
        each, need = dose.side == "each", dose.hold_s or 0
        if dose.sets in (None, 1) and dose.load_kg is None:  # the usual dose, as in Hold
            reps = dose.reps or 0
            return [
                (o.hold_s or 0) >= need
                and (o.reps[-1] >= reps or max(o.reps) >= reps)
                and (not each or o.side is None)
                if o.reps
                else False
                for o in outcomes
            ]
        return [
            (o.hold_s or 0) >= need and _reps_met(dose, o) and (not each or o.side is None)
            for o in outcomes
        ]

    def column_form(self) -> object:
        """`each_met` in columns (progressor.columns), for the usual dose."""
        from progressor.columns.builtin import HoldColumns

        return HoldColumns(each_side=True)

    def session_met(self, dose: Dose, outcomes: Sequence[Outcome]) -> bool:
        each, sides = dose.side == "each", set()
        need = dose.hold_s or 0
        for o in outcomes:
            # Met like hold: the hold reached, then every set's reps.
            if (o.hold_s or 0) >= need and _reps_met(dose, o):
                # An outcome without a side reports both sides done as prescribed.
                if not each or o.side is None:
                    return True
                sides.add(o.side)
        return {"left", "right"} <= sides


class Timed(ExerciseType):
    name = "timed"
    description = "sets x duration_s (plank, walking); met when every set lasted its duration"
    required = ("duration_s",)
    optional = ("sets", "distance_m")

    def session_met(self, dose: Dose, outcomes: Sequence[Outcome]) -> bool:
        sets = dose.sets or 1
        need = dose.duration_s or 0
        return any(len([d for d in o.duration_s if d >= need]) >= sets for o in outcomes)


@hookimpl
def progressor_register_exercise_types(register: Callable[[ExerciseType], None]) -> None:
    for exercise_type in (Reps(), Hold(), Stretch(), Timed()):
        register(exercise_type)
