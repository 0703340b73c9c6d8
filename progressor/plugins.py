"""The plugin manager and the registries it fills.

A plugin manager is built by a function, never held in a module global, so that every
engine (and every test) gets exactly the plugins it asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Generic, TypeVar

import pluggy

from progressor import hookspecs
from progressor.components import ExerciseType, SafetyRule, Strategy
from progressor.errors import PluginError

#: Built-in behaviour: ordinary plugins, registered through the same hooks as a clinic's.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "progressor.builtins.exercise_types",
    "progressor.builtins.progressions",
    "progressor.builtins.safety",
)

T = TypeVar("T")


def get_plugin_manager(
    plugins: Iterable[object | str] = (), *, builtins: bool = True
) -> pluggy.PluginManager:
    """A fresh plugin manager with the built-ins (unless told not to) and `plugins` registered.

    A plugin is a module, a module name, or any object with hook implementations.
    """
    pm = pluggy.PluginManager("progressor")
    pm.add_hookspecs(hookspecs)
    names: list[object | str] = [*DEFAULT_PLUGINS] if builtins else []
    for plugin in [*names, *plugins]:
        module = importlib.import_module(plugin) if isinstance(plugin, str) else plugin
        if pm.is_registered(module):
            continue
        pm.register(module, name=plugin_name(module))
    pm.check_pending()
    return pm


def plugin_name(plugin: object) -> str:
    """The name a plugin is known by: its module name, or its class name."""
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    return getattr(plugin, "__name__", None) or type(plugin).__name__


@dataclass(frozen=True)
class Registered(Generic[T]):
    """A component and the plugin that registered it."""

    component: T
    plugin: str


@dataclass
class Registry(Generic[T]):
    """Components of one kind by name, each with the plugin that supplied it."""

    kind: str
    entries: dict[str, Registered[T]] = field(default_factory=dict)

    def add(self, component: T, plugin: str) -> None:
        name = getattr(component, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(plugin, f"registered a {self.kind} without a name: {component!r}")
        if name in self.entries:
            first = self.entries[name].plugin
            raise PluginError(
                plugin, f"{self.kind} {name!r} is already registered by plugin {first!r}"
            )
        self.entries[name] = Registered(component, plugin)

    def __getitem__(self, name: str) -> Registered[T]:
        return self.entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def by_plugin(self) -> Mapping[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, entry in self.entries.items():
            out.setdefault(entry.plugin, []).append(name)
        return out


@dataclass(frozen=True)
class Registries:
    """Everything the plugins registered, resolved once per engine."""

    exercise_types: Registry[ExerciseType]
    strategies: Registry[Strategy]
    safety_rules: Registry[SafetyRule]


def _collect(
    pm: pluggy.PluginManager, hook_name: str, registry: Registry[T], kind: type[Any]
) -> Registry[T]:
    # Call each implementation on its own so every component is recorded with its plugin.
    for impl in getattr(pm.hook, hook_name).get_hookimpls():

        def register(component: T, _plugin: str = impl.plugin_name) -> None:
            if not isinstance(component, kind):
                raise PluginError(_plugin, f"registered {component!r}, not a {kind.__name__}")
            registry.add(component, _plugin)

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(impl.plugin_name, f"{hook_name} raised {exc!r}") from exc
    return registry


def resolve(pm: pluggy.PluginManager) -> Registries:
    """Call every register_* hook once and collect what the plugins registered."""
    return Registries(
        exercise_types=_collect(
            pm, "progressor_register_exercise_types", Registry("exercise type"), ExerciseType
        ),
        strategies=_collect(pm, "progressor_register_strategies", Registry("strategy"), Strategy),
        safety_rules=_collect(
            pm, "progressor_register_safety_rules", Registry("safety rule"), SafetyRule
        ),
    )
