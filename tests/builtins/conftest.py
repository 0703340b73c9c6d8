"""Builders for the built-ins' tests: tiny programs, outcomes with pain scores, lookups.

Everything goes through the public API: a program is TOML text compiled by an engine with
the built-in plugins, and each test steps one patient's week and reads the decisions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import tomli_w

import progressor as p

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
START = dt.date(2026, 1, 5)  # a Monday: week k is [START + 7(k-1), START + 7k)
MWF = (0, 2, 4)  # Monday, Wednesday, Friday
EX = "ex"  # the id of a tiny program's exercise

#: A pain triple: a number (before = during = after), (before, during, after), or None.
PainArg = float | tuple[float | None, float | None, float | None] | None


@cache
def engine() -> p.Engine:
    """One engine with the built-ins: the step is pure, so tests may share it."""
    return p.Engine()


@cache
def seed_program(name: str) -> p.CompiledProgram:
    """A program of programs/, compiled once."""
    return engine().compile(p.load_program(PROGRAMS / f"{name}.toml"))


@pytest.fixture
def lbp() -> p.CompiledProgram:
    return seed_program("low-back-pain")


@pytest.fixture
def achilles() -> p.CompiledProgram:
    return seed_program("achilles-tendinopathy")


@pytest.fixture
def walking() -> p.CompiledProgram:
    return seed_program("graded-walking")


def exercise(
    exercise_type: str,
    dose: Mapping[str, Any],
    progression: Mapping[str, Any],
    *,
    id: str = EX,
    floor: Mapping[str, Any] | None = None,
    ceiling: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One exercise table of a program."""
    table: dict[str, Any] = {
        "id": id,
        "name": id.replace("-", " ").capitalize(),
        "type": exercise_type,
        "dose": dict(dose),
        "progression": dict(progression),
    }
    if floor:
        table["floor"] = dict(floor)
    if ceiling:
        table["ceiling"] = dict(ceiling)
    return table


def program_toml(
    *exercises: Mapping[str, Any],
    safety: Mapping[str, Mapping[str, Any]] | None = None,
    sessions_required: int = 3,
) -> str:
    """A small program's TOML text (the essential safety rules always apply)."""
    data = {
        "id": "tiny",
        "version": "0.1.0",
        "title": "Tiny test program",
        "sessions_required": sessions_required,
        "safety": {name: dict(params) for name, params in (safety or {}).items()},
        "exercises": [dict(e) for e in exercises],
    }
    return tomli_w.dumps(data)


def compile_program(
    *exercises: Mapping[str, Any],
    safety: Mapping[str, Mapping[str, Any]] | None = None,
    sessions_required: int = 3,
) -> p.CompiledProgram:
    text = program_toml(*exercises, safety=safety, sessions_required=sessions_required)
    return engine().compile(p.parse_program(text))


def one_exercise(
    exercise_type: str,
    dose: Mapping[str, Any],
    progression: Mapping[str, Any],
    *,
    floor: Mapping[str, Any] | None = None,
    ceiling: Mapping[str, Any] | None = None,
    safety: Mapping[str, Mapping[str, Any]] | None = None,
    sessions_required: int = 3,
) -> p.CompiledProgram:
    """A compiled program with a single exercise called EX."""
    ex = exercise(exercise_type, dose, progression, floor=floor, ceiling=ceiling)
    return compile_program(ex, safety=safety, sessions_required=sessions_required)


def enroll(
    compiled: p.CompiledProgram,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    patient: str = "pat-001",
) -> p.Prescription:
    """Week 1 of a patient starting on START, with clinician overrides of starting doses."""
    enrollment = p.Enrollment(
        patient=patient,
        program=compiled.program.id,
        start=START,
        overrides={name: p.Dose(**dose) for name, dose in (overrides or {}).items()},
    )
    return compiled.first_week(enrollment)


def on(week: int = 1, day: int = 0) -> dt.date:
    """The date of `day` (0 = the first day) of enrollment week `week`."""
    return START + dt.timedelta(days=7 * (week - 1) + day)


def outcome(
    exercise: str = EX, *, week: int = 1, day: int = 0, pain: PainArg = 2, **fields: Any
) -> p.Outcome:
    """One logged performance; `pain` sets the before / during / after scores."""
    if pain is None or isinstance(pain, int | float):
        before = during = after = pain
    else:
        before, during, after = pain
    values: dict[str, Any] = {
        "pain_before": before,
        "pain_during": during,
        "pain_after": after,
        **fields,
    }
    for name in ("reps", "duration_s"):
        if name in values:
            values[name] = tuple(values[name])
    return p.Outcome(date=on(week, day), exercise=exercise, **values)


def sessions(
    exercise: str = EX, *, week: int = 1, days: Iterable[int] = MWF, **fields: Any
) -> list[p.Outcome]:
    """The same outcome logged on several days of one week."""
    return [outcome(exercise, week=week, day=day, **fields) for day in days]


def report(pain: float, *, week: int = 1, day: int = 0, context: str = "flare") -> p.PainReport:
    """A standalone pain score."""
    return p.PainReport(date=on(week, day), pain=pain, context=context)


def lbp_sessions(
    week: int = 1,
    days: Iterable[int] = MWF,
    pain: PainArg = 2,
    doses: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[p.Outcome]:
    """Every low-back-pain exercise done at its starting dose (or `doses`) on `days`."""
    done = {
        "pelvic-tilt": {"reps": (5,), "hold_s": 5},
        "knee-to-chest": {"reps": (5,), "hold_s": 5},
        "bridge": {"reps": (5,), "hold_s": 5},
    }
    done.update({name: dict(dose) for name, dose in (doses or {}).items()})
    days = tuple(days)
    return [
        o
        for name, fields in done.items()
        for o in sessions(name, week=week, days=days, pain=pain, **fields)
    ]


def decision(result: p.StepResult, exercise: str = EX) -> p.Decision:
    [found] = [d for d in result.decisions if d.exercise == exercise]
    return found


def actions(result: p.StepResult) -> dict[str, str]:
    return {d.exercise: d.action for d in result.decisions}


def applied(found: p.Decision) -> p.RuleMatch:
    """The one applied match of a decision; it must agree with the decision itself."""
    marked = [m for m in found.matches if m.applied]
    assert len(marked) == 1, found.matches
    [match] = marked
    assert (match.rule, match.action) == (found.rule, found.action)
    return match


def match(found: p.Decision, rule: str) -> p.RuleMatch:
    """The one match of `rule` in a decision."""
    [hit] = [m for m in found.matches if m.rule == rule]
    return hit


def flags(result: p.StepResult) -> set[tuple[str, str | None, str]]:
    """The next prescription's flags as (code, exercise, rule)."""
    return {(f.code, f.exercise, f.rule) for f in result.prescription.flags}


def dose_of(result: p.StepResult, exercise: str = EX) -> p.Dose:
    return result.prescription.exercises[exercise].dose
