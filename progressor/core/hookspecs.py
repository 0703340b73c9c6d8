"""Every hook progressor calls. Hooks are called once, when an engine is built, never per patient.

Each register_* hook receives a `register` callable instead of returning a list, so the core
knows which plugin supplied what and refuses two components with the same name. Each
implementation is called on its own with the arguments its signature names (as pluggy
calls it); a wrapper implementation (wrapper=True, hookwrapper=True) is refused when its
plugin registers, since it would never run.
"""

from __future__ import annotations

from collections.abc import Callable

import click
import pluggy

from progressor.core.components import (
    AlertChannel,
    ExerciseType,
    Exporter,
    SafetyRule,
    Strategy,
)

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


@hookspec
def progressor_register_alert_channels(register: Callable[[AlertChannel], None]) -> None:
    """Register alert channels by calling ``register(instance)`` once per channel.

    Every implementation is called, in plugin order; a name registered twice is an error
    that names both plugins. A channel is used when an alert spec names it
    (``--alerts NAME[:TARGET]``); a channel that raises is retried, then reported.

    :param register: takes an :class:`AlertChannel` instance.
    """


@hookspec
def progressor_register_exporters(register: Callable[[Exporter], None]) -> None:
    """Register prescription exporters by calling ``register(instance)`` once per format.

    Every implementation is called, in plugin order; a name registered twice is an error
    that names both plugins. Each exporter becomes a ``--format`` choice.

    :param register: takes an :class:`Exporter` instance.
    """


@hookspec
def progressor_register_commands(register: Callable[[click.Command], None]) -> None:
    """Register command-line commands by calling ``register(command)`` with click commands.

    Every implementation is called once when the ``progressor`` command starts (plugins
    from entry points, as allowed by ``PROGRESSOR_PLUGINS``); a command whose name is
    taken, by a built-in command or another plugin, is an error naming both.

    :param register: takes a :class:`click.Command`.
    """
