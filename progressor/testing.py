"""A pytest plugin for plugin authors: fixtures, and scenarios replayed week by week.

Installed with progressor, it loads by itself (entry-point group ``pytest11``); without the
entry point, load it with ``-p progressor.testing``. It provides fixtures that build engines,
programs and log records, and collects every ``scenario.toml`` as one test that replays a
patient's weeks through `CompiledProgram.step` and compares each week with what it expects.
The format is described in docs/scenarios.md and read and replayed by progressor.scenarios.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pytest

import progressor
from progressor.scenarios import (
    SCENARIO_FILE,
    ExerciseExpectation,
    Scenario,
    ScenarioError,
    ScenarioFailure,
    ScenarioSpec,
    WeekExpectation,
    WeekSpec,
    load_scenario,
    run_scenario,
    scenario_engine,
)

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr, TracebackStyle

__all__ = [
    "CompileProgram",
    "EngineFactory",
    "ExerciseExpectation",
    "OutcomeBuilder",
    "PainArg",
    "PainReportBuilder",
    "Scenario",
    "ScenarioError",
    "ScenarioFailure",
    "ScenarioSpec",
    "WeekExpectation",
    "WeekSpec",
    "load_scenario",
    "make_outcome",
    "make_pain_report",
    "run_scenario",
    "scenario_engine",
]

#: A pain argument: one number for before = during = after, a (before, during, after) triple,
#: or None for a session logged without pain scores.
PainArg = float | tuple[float | None, float | None, float | None] | None


# -- record builders ----------------------------------------------------------------------------


def make_outcome(
    exercise: str,
    date: dt.date | str,
    *,
    reps: Iterable[int] = (5,),
    hold_s: float | None = 5,
    pain: PainArg = 2,
    **fields: Any,
) -> progressor.Outcome:
    """One logged session of `exercise`; `fields` sets any other Outcome field."""
    if pain is None or isinstance(pain, int | float):
        before = during = after = pain
    else:
        before, during, after = pain
    values: dict[str, Any] = {
        "reps": tuple(reps),
        "hold_s": hold_s,
        "pain_before": before,
        "pain_during": during,
        "pain_after": after,
        **fields,
    }
    if "duration_s" in values:
        values["duration_s"] = tuple(values["duration_s"])
    return progressor.Outcome.model_validate({"exercise": exercise, "date": date, **values})


def make_pain_report(
    date: dt.date | str,
    pain: float,
    context: Literal["flare", "morning", "other"] = "other",
    **fields: Any,
) -> progressor.PainReport:
    """A standalone pain score logged on `date`; `fields` adds e.g. flags=("fever",)."""
    return progressor.PainReport.model_validate(
        {"date": date, "pain": pain, "context": context, **fields}
    )


class EngineFactory(Protocol):
    def __call__(
        self, plugins: Iterable[object | str] = (), *, builtins: bool = True, **kwargs: Any
    ) -> progressor.Engine: ...


class OutcomeBuilder(Protocol):
    def __call__(
        self,
        exercise: str,
        date: dt.date | str,
        *,
        reps: Iterable[int] = ...,
        hold_s: float | None = ...,
        pain: PainArg = ...,
        **fields: Any,
    ) -> progressor.Outcome: ...


class PainReportBuilder(Protocol):
    def __call__(
        self,
        date: dt.date | str,
        pain: float,
        context: Literal["flare", "morning", "other"] = ...,
        **fields: Any,
    ) -> progressor.PainReport: ...


class CompileProgram(Protocol):
    def __call__(
        self, source: str | Path, engine: progressor.Engine | None = None
    ) -> progressor.CompiledProgram: ...


# -- fixtures -----------------------------------------------------------------------------------


def _make_engine(
    plugins: Iterable[object | str] = (), *, builtins: bool = True, **kwargs: Any
) -> progressor.Engine:
    return progressor.Engine(plugins, builtins=builtins, **kwargs)


@pytest.fixture
def progressor_engine_factory() -> EngineFactory:
    """Build an Engine: `make(plugins=(), *, builtins=True, **kwargs)`, a fresh one each call."""
    return _make_engine


@pytest.fixture
def progressor_engine() -> progressor.Engine:
    """An Engine with the built-in plugins only."""
    return progressor.Engine()


@pytest.fixture
def outcome() -> OutcomeBuilder:
    """Build an Outcome: `outcome(exercise, date, *, reps=(5,), hold_s=5, pain=2, **fields)`."""
    return make_outcome


@pytest.fixture
def pain_report() -> PainReportBuilder:
    """Build a PainReport: `pain_report(date, pain, context="other")`."""
    return make_pain_report


@pytest.fixture
def compile_program() -> CompileProgram:
    """Compile a program from a path or TOML text: `compile_program(source, engine=None)`.

    A `Path`, or a string without a newline or ``=``, is a file; any other string is TOML.
    Without an engine, one with the built-ins is built on first use.
    """
    default: list[progressor.Engine] = []

    def compile_(
        source: str | Path, engine: progressor.Engine | None = None
    ) -> progressor.CompiledProgram:
        if isinstance(source, Path) or not ("\n" in source or "=" in source):
            program = progressor.load_program(source)
        else:
            program = progressor.parse_program(source)
        if engine is None:
            default[:] = default or [progressor.Engine()]
            engine = default[0]
        return engine.compile(program)

    return compile_


# -- pytest collection --------------------------------------------------------------------------

_ENGINES = pytest.StashKey[dict[tuple[tuple[str, ...], bool], progressor.Engine]]()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    if file_path.name == SCENARIO_FILE:
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    """A scenario.toml: one test, named after its folder."""

    def collect(self) -> Iterable[pytest.Item]:
        yield ScenarioItem.from_parent(self, name=self.path.parent.name)


class ScenarioItem(pytest.Item):
    """One scenario, read when it runs so that a bad file fails only its own test."""

    def runtest(self) -> None:
        scenario = load_scenario(self.path)
        run_scenario(scenario, self._engine(scenario.spec))

    def _engine(self, spec: ScenarioSpec) -> progressor.Engine:
        # An engine is immutable once built: scenarios with the same plugins share one.
        engines = self.config.stash.setdefault(_ENGINES, {})
        key = (spec.plugins, spec.entry_points)
        if key not in engines:
            engines[key] = scenario_engine(spec, str(self.path))
        return engines[key]

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: TracebackStyle | None = None,
    ) -> str | TerminalRepr:
        error = excinfo.value
        if isinstance(error, ScenarioError | ScenarioFailure):
            text = str(error)
            if isinstance(error, ScenarioError):
                text = f"bad scenario {self.path}:\n{text}"
            # Paths relative to the rootdir, as pytest prints them elsewhere.
            return text.replace(f"{self.config.rootpath}{os.sep}", "")
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"scenario {self.name}"


# -- registration -------------------------------------------------------------------------------

#: The names this module is registered under: its entry-point name and its module name.
_NAMES = ("progressor", __name__)


def pytest_plugin_registered(plugin: object, manager: pytest.PytestPluginManager) -> None:
    """Once registered under one name, block the other, so both ways of loading can meet.

    The entry point registers this module as "progressor"; ``-p progressor.testing`` (or
    ``pytest_plugins``) registers it under its module name; pluggy refuses one module under
    two names. (`plugin_name` is not asked for: pytest 8.0 does not pass it.)
    """
    if plugin is not sys.modules[__name__]:
        return
    current = manager.get_name(plugin)
    for name in _NAMES:
        if name != current and manager.get_plugin(name) is None:
            manager.set_blocked(name)
