"""The plugin manager and the registries it fills.

A plugin manager is built by a function, never held in a module global, so that every
engine (and every test) gets exactly the plugins it asked for. Third-party plugins come
from the entry-point group ``progressor``, restricted by an allow-list
(``PROGRESSOR_PLUGINS``), or are named directly (``--plugin MODULE``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.metadata as metadata
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

import click
import pluggy

from progressor.core import hookspecs
from progressor.core.components import AlertChannel, ExerciseType, Exporter, SafetyRule, Strategy
from progressor.errors import PluginError, did_you_mean

#: Built-in behaviour: ordinary plugins, registered through the same hooks as a clinic's.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "progressor.builtins.exercise_types",
    "progressor.builtins.progressions",
    "progressor.builtins.safety",
    "progressor.builtins.outputs",
    "progressor.builtins.handouts",
)
ENTRY_POINT_GROUP = "progressor"
ALLOW_ENV = "PROGRESSOR_PLUGINS"
BLOCK_ENV = "PROGRESSOR_BLOCK"

T = TypeVar("T")


@dataclass(frozen=True)
class PluginInfo:
    """Where a loaded plugin came from."""

    name: str
    module: str
    builtin: bool = False
    distribution: str | None = None
    version: str | None = None
    how_to_disable: str = ""


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, plus where each plugin came from."""

    def __init__(self) -> None:
        super().__init__("progressor")
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}

    def add(self, plugin: object, info: PluginInfo) -> None:
        """Register `plugin`; a bad hook signature is an error naming the plugin."""
        if info.name in self.infos:
            return
        try:
            self.register(plugin, name=info.name)
        except ValueError as exc:  # pluggy: the same plugin object under another name
            raise PluginError(info.name, f"cannot be registered: {exc}") from None
        except pluggy.PluginValidationError as exc:
            raise PluginError(info.name, f"{exc}; {info.how_to_disable}") from None
        wrapper = _wrapper_hook(self, plugin)
        if wrapper:
            self.unregister(plugin)
            raise PluginError(
                info.name,
                f"{wrapper} is a wrapper (wrapper=True or hookwrapper=True): progressor calls "
                "each register hook on its own, so a wrapper would never run; make it a plain "
                f"hook implementation{'; ' + info.how_to_disable if info.how_to_disable else ''}",
            )
        self.infos[info.name] = info

    def check(self) -> None:
        """Every hook implementation matches a known hook, or the plugin is named."""
        try:
            self.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.get_name(exc.plugin) or repr(exc.plugin)
            info = self.infos.get(name)
            hint = f"; {info.how_to_disable}" if info and info.how_to_disable else ""
            raise PluginError(name, f"{exc}{hint}") from None


def _wrapper_hook(pm: pluggy.PluginManager, plugin: object) -> str | None:
    """The first of `plugin`'s hooks implemented as a wrapper, if any."""
    for caller in pm.get_hookcallers(plugin) or ():
        if any(i.plugin is plugin and (i.wrapper or i.hookwrapper) for i in caller.get_hookimpls()):
            return caller.name
    return None


def env_list(value: str | None) -> list[str] | None:
    """A comma list from an environment variable; None when the variable is not set."""
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def get_plugin_manager(
    plugins: Iterable[object | str] = (),
    *,
    builtins: bool = True,
    entry_points: bool = False,
    allow: Iterable[str] | None = None,
) -> PluginManager:
    """A fresh plugin manager: built-ins, then entry-point plugins, then `plugins`.

    `allow` restricts the entry-point plugins to those named (by entry-point name or
    module); None loads every installed one, an empty list none. A plugin in `plugins` is
    a module, a module name, or any object with hook implementations.
    """
    pm = PluginManager()
    if builtins:
        version = _own_version()
        for name in DEFAULT_PLUGINS:
            info = PluginInfo(name, name, True, "progressor", version)
            pm.add(importlib.import_module(name), info)
    if entry_points:
        chosen = allowed_entry_points(allow)
        for entry in chosen:
            others = [e.name for e in chosen if e.name != entry.name]
            _load_entry_point(pm, entry, others)
    installed = {e.module: e.name for e in allowed_entry_points(None)} if plugins else {}
    for plugin in plugins:
        if isinstance(plugin, str):
            hint = f"leave {plugin} out of the plugins to load (--plugin {plugin})"
            dist, version = _distribution_of(plugin)
            # An installed plugin named by its module has the name it has everywhere else
            # (its entry point's): in decisions, alerts and block lists, whichever way loaded.
            name = installed.get(plugin, plugin)
            info = PluginInfo(name, plugin, False, dist, version, hint)
            pm.add(_import(plugin, hint), info)
        else:
            name = plugin_name(plugin)
            pm.add(plugin, PluginInfo(name, getattr(plugin, "__module__", name) or name))
    pm.check()
    return pm


def allowed_entry_points(allow: Iterable[str] | None) -> list[metadata.EntryPoint]:
    """The installed plugins (entry points of the ``progressor`` group), by name, restricted
    to `allow` (entry-point names or modules) when it is given."""
    allowed = None if allow is None else set(allow)
    entries = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    return [e for e in entries if allowed is None or {e.name, e.module} & allowed]


def not_installed(allow: Iterable[str] | None) -> str | None:
    """A warning when the allow-list names plugins that are not installed, else None.

    Such a name loads nothing, silently: a typo in PROGRESSOR_PLUGINS would leave a clinic's
    rules out of every run. The warning lists the installed plugins to choose from.
    """
    if allow is None:
        return None
    installed = allowed_entry_points(None)
    known = {n for e in installed for n in (e.name, e.module)}
    missing = [name for name in allow if name not in known]
    if not missing:
        return None
    names = [e.name for e in installed]
    hints = [hint for name in missing if (hint := did_you_mean(name, names))]
    return (
        f"{ALLOW_ENV} names plugins that are not installed: {', '.join(missing)}"
        + (f" ({'; '.join(hints)})" if hints else "")
        + f"; installed plugins: {', '.join(names) or 'none'}"
    )


@functools.cache
def code_versions(plugins: tuple[str, ...] = ()) -> tuple[tuple[str, str | None], ...]:
    """What a saved result depends on besides its inputs: progressor's version and, for each
    plugin module named, its distribution's name and version (looked up once per process)."""
    named = [
        (f"{plugin} ({dist})", version)
        for plugin in sorted(plugins)
        for dist, version in [_distribution_of(plugin)]
    ]
    return (("progressor", _own_version()), *named)


def code_signature(registries: Registries) -> str:
    """What a kept result depends on besides its inputs, as one digest: progressor's version,
    every loaded plugin with its module, distribution and version, and the blocked components.
    The store and the dataset both compute a patient afresh when it changed (an upgrade of
    progressor or of a plugin, another plugin or block list)."""
    plugins = sorted(
        (i.name, i.module, i.distribution or "", i.version or "")
        for i in registries.plugins.values()
    )
    sources = _sources_digest(tuple(sorted({i.module for i in registries.plugins.values()})))
    text = json.dumps([code_versions(), plugins, sorted(registries.blocked), sources])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=64)
def _sources_digest(modules: tuple[str, ...]) -> str:
    """A digest of the source files of the packages the plugin modules come from (each
    package's .py files, or a module's own file), read once per process, as loaded: a
    clinic's own module, or a plugin edited in place without a new version, changes the
    signature too, so that kept results computed with the code before are computed again."""
    paths: set[Path] = set()
    for module in modules:
        top = sys.modules.get(module.split(".")[0])
        where = getattr(top, "__file__", None)
        if not where:
            continue
        if Path(where).name == "__init__.py":
            paths.update(Path(where).parent.rglob("*.py"))
        else:
            paths.add(Path(where))
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.name).encode("utf-8"))
        with contextlib.suppress(OSError):  # (a file gone since: its name still counts)
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _own_version() -> str | None:
    try:
        return metadata.version("progressor")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return None


def _distribution_of(module: str) -> tuple[str | None, str | None]:
    """The installed package that provides `module`, if any (for a program's `requires`)."""
    dists = metadata.packages_distributions().get(module.split(".")[0], [])
    if not dists:
        return None, None
    return dists[0], metadata.version(dists[0])


def _import(module: str, how_to_disable: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except Exception as exc:
        raise PluginError(
            module, f"failed to import: {type(exc).__name__}: {exc}; {how_to_disable}"
        ) from None


def _load_entry_point(pm: PluginManager, entry: metadata.EntryPoint, others: list[str]) -> None:
    dist = entry.dist.name if entry.dist else None
    hint = (
        f"disable it with {ALLOW_ENV}={','.join(others)} (an allow-list of the plugins to load)"
        + (f" or pip uninstall {dist}" if dist else "")
    )
    try:
        plugin = entry.load()
    except Exception as exc:
        raise PluginError(
            entry.name, f"failed to import {entry.value}: {type(exc).__name__}: {exc}; {hint}"
        ) from None
    version = entry.dist.version if entry.dist else None
    pm.add(plugin, PluginInfo(entry.name, entry.module, False, dist, version, hint))


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

    def add(self, component: T, plugin: str, name: str | None = None) -> None:
        name = name or getattr(component, "name", None)
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
    alert_channels: Registry[AlertChannel]
    exporters: Registry[Exporter]
    plugins: Mapping[str, PluginInfo] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)

    def kinds(self) -> dict[str, Registry[Any]]:
        return {
            "exercise types": self.exercise_types,
            "strategies": self.strategies,
            "safety rules": self.safety_rules,
            "alert channels": self.alert_channels,
            "exporters": self.exporters,
        }


def _collect(
    pm: pluggy.PluginManager, hook_name: str, registry: Registry[T], kind: type[Any]
) -> Registry[T]:
    # Call each implementation on its own so every component is recorded with its plugin.
    for impl in getattr(pm.hook, hook_name).get_hookimpls():

        def register(component: T, _plugin: str = impl.plugin_name) -> None:
            if not isinstance(component, kind):
                raise PluginError(_plugin, f"registered {component!r}, not a {kind.__name__}")
            registry.add(component, _plugin)

        call_hook(impl, hook_name, register)
    return registry


def call_hook(impl: pluggy.HookImpl, hook_name: str, register: Callable[..., None]) -> None:
    """Call one plugin's register_* hook; anything it raises names the plugin.

    As pluggy calls an implementation: with the arguments its signature names (pluggy lets
    an implementation take fewer than the hook offers), here at most `register`.
    """
    offered = {"register": register}
    try:
        impl.function(**{name: offered[name] for name in impl.argnames})
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(impl.plugin_name, f"{hook_name} raised {exc!r}") from exc


def resolve(pm: PluginManager, block: Iterable[str] = ()) -> Registries:
    """Call every register_* hook once, collect what was registered, apply the block list."""
    registries = Registries(
        exercise_types=_collect(
            pm, "progressor_register_exercise_types", Registry("exercise type"), ExerciseType
        ),
        strategies=_collect(pm, "progressor_register_strategies", Registry("strategy"), Strategy),
        safety_rules=_collect(
            pm, "progressor_register_safety_rules", Registry("safety rule"), SafetyRule
        ),
        alert_channels=_collect(
            pm, "progressor_register_alert_channels", Registry("alert channel"), AlertChannel
        ),
        exporters=_collect(pm, "progressor_register_exporters", Registry("exporter"), Exporter),
        plugins=dict(pm.infos),
    )
    for name in block:
        _block(registries, name)
    return registries


def _block(registries: Registries, name: str) -> None:
    """Remove one built-in component (or every component of one plugin) from the registries."""
    name = _plugin_or_component(registries, name)
    named = _named(registries, name)
    if not named:
        known = [c for r in registries.kinds().values() for c in r] + list(registries.plugins)
        hint = did_you_mean(name, known)
        raise PluginError(
            "progressor",
            f"cannot block {name!r}: nothing has that name" + (f" ({hint})" if hint else ""),
        )
    # Every component checked before any is removed: a refused block leaves all in place.
    plugin_wide = name in registries.plugins
    for registry, component in named:
        _check_blockable(registries, registry[component], component, plugin_wide)
    for registry, component in named:
        del registry.entries[component]
        registries.blocked.add(component)


def _plugin_or_component(registries: Registries, name: str) -> str:
    """`name` as the registries know it: a plugin may be named by its module too (an
    installed plugin is named by its entry point, but block lists written with the module
    keep working)."""
    if name in registries.plugins:
        return name
    by_module = {info.module: n for n, info in registries.plugins.items() if info.module != n}
    return by_module.get(name, name)


def _named(registries: Registries, name: str) -> list[tuple[Registry[Any], str]]:
    """Each component called `name` or supplied by the plugin `name`, with its registry."""
    return [
        (registry, component)
        for registry in registries.kinds().values()
        for component in registry
        if component == name or registry[component].plugin == name
    ]


def _check_blockable(
    registries: Registries, entry: Registered[Any], component: str, plugin_wide: bool
) -> None:
    """Refuse to block an essential safety rule, or a plugin's component on its own."""
    if getattr(entry.component, "essential", False):
        raise PluginError(
            entry.plugin, f"{component!r} is an essential safety rule and cannot be blocked"
        )
    if not plugin_wide and not registries.plugins[entry.plugin].builtin:
        raise PluginError(
            entry.plugin,
            f"only built-ins are blocked one by one; leave the plugin out of {ALLOW_ENV} instead",
        )


def collect_commands(
    pm: pluggy.PluginManager, taken: Iterable[str]
) -> dict[str, Registered[click.Command]]:
    """Commands the plugins register, by name; a name already taken names both owners."""
    owners = dict.fromkeys(taken, "progressor")
    commands: dict[str, Registered[click.Command]] = {}
    for impl in pm.hook.progressor_register_commands.get_hookimpls():

        def register(command: click.Command, _plugin: str = impl.plugin_name) -> None:
            if not isinstance(command, click.Command) or not command.name:
                raise PluginError(_plugin, f"registered {command!r}, not a named click command")
            if command.name in owners:
                owner = owners[command.name]
                raise PluginError(
                    _plugin, f"command {command.name!r} is already taken by {owner!r}"
                )
            owners[command.name] = _plugin
            commands[command.name] = Registered(command, _plugin)

        call_hook(impl, "progressor_register_commands", register)
    return commands
