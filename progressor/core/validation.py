"""Check a program against what the plugins registered, once, before anything is evaluated.

Every problem found is collected with its key path (and line, when the program came from a
file), so a clinician fixing a program sees all of them at once.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from pydantic import BaseModel, ValidationError

from progressor.core.components import ExerciseType, SafetyRule, Strategy
from progressor.core.models import NUMERIC_FIELDS, UNKNOWN_KEY_ERRORS, Exercise, Program
from progressor.core.plugins import ALLOW_ENV, Registries, Registry
from progressor.errors import KeyPath, Problem, ProgramError, did_you_mean

BoundTuple = tuple[str, str, Any, BaseModel]


@dataclass(frozen=True)
class Compiled:
    rules: tuple[BoundTuple, ...]
    exercises: tuple[tuple[Exercise, ExerciseType, BoundTuple], ...]


class _Collector:
    def __init__(self, source: str | None, lines: Mapping[KeyPath, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, path: KeyPath, message: str, suggestion: str | None = None) -> None:
        line = _locate(self.lines, path)
        self.problems.append(Problem(message, self.source, line, path, suggestion))

    def params(self, path: KeyPath, model: type[BaseModel], raw: Mapping[str, Any]) -> BaseModel:
        try:
            return strict_params(model, raw)
        except ValidationError as exc:
            for error in exc.errors():
                key = tuple(error["loc"])
                message, suggestion = error["msg"], None
                if error["type"] in UNKNOWN_KEY_ERRORS and key:
                    message = "unknown key"  # (as a program's own unknown keys read)
                    suggestion = did_you_mean(str(key[0]), model.model_fields)
                elif error["type"] in _NUMBER_ERRORS and isinstance(error["input"], str):
                    suggestion = f"write the number without quotes: {error['input']}"
                self.add((*path, *key), message, suggestion)
            return model.model_construct()


#: pydantic's error types for a value that is not a number where one belongs.
_NUMBER_ERRORS = frozenset({"float_type", "int_type", "float_parsing", "int_parsing"})


def strict_params(model: type[BaseModel], raw: Mapping[str, Any]) -> BaseModel:
    """A component's parameters, validated strictly: "7" is not the number 7, nor true 1.

    Every component's Params model, built-in or a clinic's, goes through here. The values are
    read as JSON (what a TOML table is, but for dates, written as ISO text): JSON's strict
    mode still takes an array for a tuple, where Python's would want a tuple.
    """
    try:
        text = json.dumps(dict(raw), default=str)
    except (ValueError, RecursionError) as exc:  # (a loop or a depth no TOML file gives)
        error: Any = {"type": "value_error", "loc": (), "input": raw, "ctx": {"error": exc}}
        raise ValidationError.from_exception_data(model.__name__, [error]) from None
    return model.model_validate_json(text, strict=True)


def locate(program: Program, path: KeyPath) -> int | None:
    """The line of the longest known prefix of `path` in the program's file."""
    return _locate(program._lines, path)


def _locate(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None


def _lookup(
    out: _Collector, registry: Registry[Any], name: str, path: KeyPath, blocked: set[str]
) -> tuple[Any, str] | None:
    if name in registry:
        entry = registry[name]
        return entry.component, entry.plugin
    if name in blocked:
        out.add(path, f"{registry.kind} {name!r} is blocked", "unblock it to use this program")
    else:
        out.add(path, f"unknown {registry.kind} {name!r}", did_you_mean(name, registry))
    return None


def _check_dose(out: _Collector, exercise: Exercise, etype: ExerciseType, path: KeyPath) -> None:
    allowed = set(etype.required) | set(etype.optional) | {"variant"}
    dose = exercise.dose
    for name in etype.required:
        if getattr(dose, name) is None:
            out.add((*path, "dose"), f"a {etype.name!r} exercise needs {name!r} in its dose")
    for name in (*NUMERIC_FIELDS, "side"):
        if getattr(dose, name) is not None and name not in allowed:
            out.add(
                (*path, "dose", name),
                f"{name!r} is not a dose field of a {etype.name!r} exercise",
                f"allowed: {', '.join(sorted(allowed))}",
            )
    floor, ceiling = exercise.floor.values(), exercise.ceiling.values()
    for name, low in floor.items():
        if name in ceiling and ceiling[name] < low:
            out.add((*path, "ceiling", name), f"ceiling {ceiling[name]:g} is below floor {low:g}")
        current = getattr(dose, name)
        if current is not None and current < low:
            out.add((*path, "dose", name), f"starting {name} {current:g} is below floor {low:g}")
    for name, high in ceiling.items():
        current = getattr(dose, name)
        if current is not None and current > high:
            out.add((*path, "dose", name), f"starting {name} {current:g} is above ceiling {high:g}")


def _compile_exercise(
    out: _Collector, registries: Registries, index: int, exercise: Exercise
) -> tuple[Exercise, ExerciseType, BoundTuple] | None:
    path: KeyPath = ("exercises", index)
    found_type = _lookup(
        out, registries.exercise_types, exercise.type, (*path, "type"), registries.blocked
    )
    if found_type:
        _check_dose(out, exercise, found_type[0], path)
    progression = exercise.progression
    before = len(out.problems)
    bound = _progression(out, registries, path, progression.strategy, progression.params)
    if not (bound and found_type):
        return None
    if len(out.problems) == before:  # (a strategy checks only parameters that are valid)
        strategy, params = bound[2], bound[3]
        for message in strategy.check_exercise(exercise, params):
            out.add((*path, "progression"), message)
    return exercise, found_type[0], bound


def _progression(
    out: _Collector, registries: Registries, path: KeyPath, name: str, raw: Mapping[str, Any]
) -> BoundTuple | None:
    """The exercise's strategy bound to its parameters (None if the strategy is unknown)."""
    found = _lookup(
        out, registries.strategies, name, (*path, "progression", "strategy"), registries.blocked
    )
    if not found:
        return None
    strategy: Strategy = found[0]
    params = out.params((*path, "progression"), strategy.Params, raw)
    return strategy.name, found[1], strategy, params


def _compile_rules(
    out: _Collector, registries: Registries, safety: Mapping[str, Mapping[str, Any]]
) -> tuple[BoundTuple, ...]:
    rules: list[BoundTuple] = []
    names = [n for n in registries.safety_rules if registries.safety_rules[n].component.essential]
    names += [n for n in safety if n not in names]
    for name in names:
        found = _lookup(out, registries.safety_rules, name, ("safety", name), registries.blocked)
        if found:
            rule: SafetyRule = found[0]
            params = out.params(("safety", name), rule.Params, safety.get(name, {}))
            rules.append((name, found[1], rule, params))
    return tuple(rules)


def names_problems(
    document: Mapping[str, Any],
    source: str | None,
    lines: Mapping[KeyPath, int],
    registries: Registries,
) -> list[Problem]:
    """The unknown names and bad parameters of a program whose structure is not sound (as
    parsed TOML, not a Program), so that they are reported with its structural problems:
    what compile_program would find of them, as far as the structure lets them be read."""
    out = _Collector(source, lines)
    safety = document.get("safety")
    if isinstance(safety, dict):
        tables = {name: raw for name, raw in safety.items() if isinstance(raw, dict)}
        _compile_rules(out, registries, tables)
    exercises = document.get("exercises")
    for index, exercise in enumerate(exercises if isinstance(exercises, list) else ()):
        if not isinstance(exercise, dict):
            continue
        path: KeyPath = ("exercises", index)
        if isinstance(exercise.get("type"), str):
            types = registries.exercise_types
            _lookup(out, types, exercise["type"], (*path, "type"), registries.blocked)
        progression = exercise.get("progression")
        if isinstance(progression, dict) and isinstance(progression.get("strategy"), str):
            raw = {k: v for k, v in progression.items() if k != "strategy"}
            _progression(out, registries, path, progression["strategy"], raw)
    return out.problems


def _check_requirements(out: _Collector, registries: Registries, program: Program) -> None:
    loaded = {info.distribution: info for info in registries.plugins.values() if info.distribution}
    for index, need in enumerate(program.requires):
        path: KeyPath = ("requires", index)
        wanted = f"{need.name}{need.version}"
        try:
            specifier = SpecifierSet(need.version)
        except InvalidSpecifier:
            out.add((*path, "version"), f"{need.version!r} is not a version range, e.g. '>=1.2'")
            continue
        try:
            installed = metadata.version(need.name)
        except metadata.PackageNotFoundError:
            out.add(
                path,
                f"needs the plugin package {wanted!r}, which is not installed",
                f"install it: pip install '{wanted}'",
            )
            continue
        if installed not in specifier:
            out.add(
                path,
                f"needs {wanted!r}, but version {installed} is installed",
                f"install a matching version: pip install '{wanted}'",
            )
        elif canonicalize_name(need.name) not in {canonicalize_name(d) for d in loaded}:
            out.add(
                path,
                f"needs the plugin {need.name!r}: it is installed but not loaded",
                f"add its entry point to {ALLOW_ENV}, or load it with --plugin",
            )


def compile_program(program: Program, registries: Registries) -> Compiled:
    """Resolve every name in `program` and validate every parameter, or raise ProgramError."""
    out = _Collector(program.source, program._lines)
    _check_requirements(out, registries, program)
    rules = _compile_rules(out, registries, program.safety)
    exercises = [
        _compile_exercise(out, registries, index, exercise)
        for index, exercise in enumerate(program.exercises)
    ]
    if out.problems:
        raise ProgramError(out.problems)
    return Compiled(rules, tuple(e for e in exercises if e is not None))
