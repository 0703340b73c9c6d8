"""Built-in exercise types: reps, hold, stretch and timed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from progressor import hookimpl
from progressor.components import ExerciseType
from progressor.models import Dose, Outcome


def _reps_met(dose: Dose, outcome: Outcome) -> bool:
    sets = dose.sets or 1
    done = [r for r in outcome.reps if r >= (dose.reps or 0)]
    if len(done) < sets:
        return False
    return dose.load_kg is None or (outcome.load_kg or 0) >= dose.load_kg


def _hold_met(dose: Dose, outcome: Outcome) -> bool:
    return _reps_met(dose, outcome) and (outcome.hold_s or 0) >= (dose.hold_s or 0)


def _any_met(dose: Dose, outcomes: Sequence[Outcome], met: Callable[[Dose, Outcome], bool]) -> bool:
    return any(met(dose, o) for o in outcomes)


class Reps(ExerciseType):
    name = "reps"
    description = "sets x reps, optionally with a load; met when every set reached its reps"
    required = ("reps",)
    optional = ("sets", "load_kg")

    def session_met(self, dose: Dose, outcomes: Sequence[Outcome]) -> bool:
        return _any_met(dose, outcomes, _reps_met)


class Hold(ExerciseType):
    name = "hold"
    description = "sets x reps x hold_s (isometric); met when the reps and the hold were reached"
    required = ("reps", "hold_s")
    optional = ("sets",)

    def session_met(self, dose: Dose, outcomes: Sequence[Outcome]) -> bool:
        return _any_met(dose, outcomes, _hold_met)


class Stretch(ExerciseType):
    name = "stretch"
    description = (
        "reps x hold_s, optionally each side; met like hold, and on both sides when 'each'"
    )
    required = ("reps", "hold_s")
    optional = ("sets", "side")

    def session_met(self, dose: Dose, outcomes: Sequence[Outcome]) -> bool:
        met = [o for o in outcomes if _hold_met(dose, o)]
        if dose.side != "each":
            return bool(met)
        # An outcome without a side reports both sides done as prescribed.
        sides = {o.side for o in met}
        return None in sides or {"left", "right"} <= sides


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
