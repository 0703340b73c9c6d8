"""progressor plugin: repeated end-range movements (McKenzie) and their force progressions.

Registers the exercise type ``repeated-movement``, the strategy ``force-progression`` and
the safety rule ``peripheralisation``. Installed, it loads through the entry-point group
``progressor``; or name the module: ``Engine(plugins=["progressor_repeated_movements"])``.
"""

from __future__ import annotations

from collections.abc import Callable

from progressor import ExerciseType, SafetyRule, Strategy, hookimpl
from progressor_repeated_movements.exercise_type import RepeatedMovement, bouts_done
from progressor_repeated_movements.progression import (
    STAGES,
    ForceProgression,
    ForceProgressionParams,
)
from progressor_repeated_movements.safety import Peripheralisation, PeripheralisationParams


@hookimpl
def progressor_register_exercise_types(register: Callable[[ExerciseType], None]) -> None:
    register(RepeatedMovement())


@hookimpl
def progressor_register_strategies(register: Callable[[Strategy], None]) -> None:
    register(ForceProgression())


@hookimpl
def progressor_register_safety_rules(register: Callable[[SafetyRule], None]) -> None:
    register(Peripheralisation())


__all__ = [
    "STAGES",
    "ForceProgression",
    "ForceProgressionParams",
    "Peripheralisation",
    "PeripheralisationParams",
    "RepeatedMovement",
    "bouts_done",
    "progressor_register_exercise_types",
    "progressor_register_safety_rules",
    "progressor_register_strategies",
]
