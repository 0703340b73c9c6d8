"""Every hook progressor calls. Hooks are called once, when an engine is built, never per patient.

Each register_* hook receives a `register` callable instead of returning a list, so the core
knows which plugin supplied what and refuses two components with the same name.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from progressor.components import ExerciseType, SafetyRule, Strategy

hookspec = pluggy.HookspecMarker("progressor")


@hookspec
def progressor_register_exercise_types(register: Callable[[ExerciseType], None]) -> None:
    """Register exercise types by calling ``register(instance)`` once per type.

    Every implementation is called, in plugin order; a name registered twice is an error
    that names both plugins.

    :param register: takes an :class:`ExerciseType` instance.
    """


@hookspec
def progressor_register_strategies(register: Callable[[Strategy], None]) -> None:
    """Register progression strategies by calling ``register(instance)`` once per strategy.

    Every implementation is called, in plugin order; a name registered twice is an error
    that names both plugins.

    :param register: takes a :class:`Strategy` instance.
    """


@hookspec
def progressor_register_safety_rules(register: Callable[[SafetyRule], None]) -> None:
    """Register safety rules by calling ``register(instance)`` once per rule.

    Every implementation is called, in plugin order; a name registered twice is an error
    that names both plugins. Rules marked ``essential`` apply to every program.

    :param register: takes a :class:`SafetyRule` instance.
    """
