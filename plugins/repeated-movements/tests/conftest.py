"""Shared by this plugin's tests: the lumbar-extension program, tiny programs, full-dose weeks.

The record builders and the compile fixture come from progressor's pytest plugin
(progressor.testing).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import tomli_w

import progressor as p

ROOT = Path(__file__).resolve().parents[3]
LUMBAR = ROOT / "programs" / "lumbar-extension.toml"
START = dt.date(2026, 1, 5)  # a Monday
MODULE = "progressor_repeated_movements"  # what the tests load
# ... and its name in results: its entry point's (installed, as `make test` does).
PLUGIN = "repeated-movements"


def _full_dose(exercise: str, dose: p.Dose, date: dt.date, **fields: Any) -> p.Outcome:
    """One session of `exercise` done exactly at `dose`, pain 2 before, during and after."""
    sets = dose.sets or 1
    values: dict[str, Any] = {
        "pain_before": 2,
        "pain_during": 2,
        "pain_after": 2,
        "reps": (dose.reps,) * sets if dose.reps is not None else (),
        "hold_s": dose.hold_s,
        "duration_s": (dose.duration_s,) * sets if dose.duration_s is not None else (),
        **fields,
    }
    return p.Outcome(exercise=exercise, date=date, **values)


def _full_week(
    prescription: p.Prescription,
    days: Iterable[int] = range(5),
    changes: Mapping[tuple[str, int], Mapping[str, Any]] | None = None,
) -> list[p.Outcome]:
    """Every exercise at its prescribed dose on `days`; `changes[(exercise, day)]` edits one."""
    changes = changes or {}
    return [
        _full_dose(
            name,
            state.dose,
            prescription.start + dt.timedelta(days=d),
            **changes.get((name, d), {}),
        )
        for d in days
        for name, state in prescription.exercises.items()
    ]


def _enrol(
    compiled: p.CompiledProgram, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> p.Prescription:
    enrollment = p.Enrollment(
        patient="eva",
        program=compiled.program.id,
        start=START,
        overrides={name: p.Dose(**dose) for name, dose in (overrides or {}).items()},
    )
    return compiled.first_week(enrollment)


def press_up(
    dose: Mapping[str, Any] | None = None,
    progression: Mapping[str, Any] | None = None,
    *,
    ceiling: Mapping[str, Any] | None = None,
    safety: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """A one-exercise program (press-up, repeated-movement) as TOML text."""
    exercise: dict[str, Any] = {
        "id": "press-up",
        "name": "Prone press-up",
        "type": "repeated-movement",
        "dose": dict(dose or {"sets": 5, "reps": 10, "variant": "patient-generated"}),
        "progression": {"strategy": "force-progression", **(progression or {})},
    }
    if ceiling:
        exercise["ceiling"] = dict(ceiling)
    program = {
        "id": "press-up-only",
        "version": "0.1.0",
        "title": "Press-ups",
        "sessions_required": 3,
        "safety": {name: dict(params) for name, params in (safety or {"new-pain": {}}).items()},
        "exercises": [exercise],
    }
    return tomli_w.dumps(program)


@pytest.fixture
def engine(progressor_engine_factory: Callable[..., p.Engine]) -> p.Engine:
    """The built-ins and this plugin, loaded by module name."""
    return progressor_engine_factory([MODULE])


@pytest.fixture
def installed_engine(progressor_engine_factory: Callable[..., p.Engine]) -> p.Engine:
    """The built-ins and this plugin from its entry point, as the command line loads it.

    lumbar-extension.toml `requires` the distribution, and progressor only counts a plugin
    loaded from an entry point as that distribution's.
    """
    return progressor_engine_factory(entry_points=True, allow=["repeated-movements"])


@pytest.fixture
def lumbar(
    installed_engine: p.Engine, compile_program: Callable[..., p.CompiledProgram]
) -> p.CompiledProgram:
    return compile_program(LUMBAR, installed_engine)


@pytest.fixture
def tiny(
    engine: p.Engine, compile_program: Callable[..., p.CompiledProgram]
) -> Callable[..., p.CompiledProgram]:
    """Compile `press_up(...)`: tiny(dose=..., progression=..., ceiling=..., safety=...)."""

    def make(**kwargs: Any) -> p.CompiledProgram:
        return compile_program(press_up(**kwargs), engine)

    return make


@pytest.fixture
def full_week() -> Callable[..., list[p.Outcome]]:
    """full_week(prescription, days=range(5), changes={(exercise, day): {field: value}})."""
    return _full_week


@pytest.fixture
def enrol() -> Callable[..., p.Prescription]:
    """enrol(compiled, overrides=None): week 1 of patient "eva" from Monday 2026-01-05."""
    return _enrol
