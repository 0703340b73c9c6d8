"""No path of the step that only a shipped plugin can take.

What a component returns is taken as it is, or checked, according to what it is (its exact
built-in types), never according to which plugin supplied it: the built-in components,
registered again by a clinic's plugin, give the same results; and a built-in component that
returns a bad value fails its plugin as a clinic's component does.
"""

from __future__ import annotations

import importlib
import json
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import progressor as p
from progressor.builtins.exercise_types import Hold
from progressor.builtins.progressions import Double
from progressor.builtins.safety import PainFlare
from progressor.core.plugins import DEFAULT_PLUGINS
from progressor.synth import synthesize_clinic
from tests.conftest import PROGRAMS, START, full_week

CLINIC = "clinic_copy."


def _clinic_copies() -> list[types.ModuleType]:
    """Each built-in plugin's hooks in a clinic's plugin module of its own (not built-in)."""
    copies = []
    for name in DEFAULT_PLUGINS:
        module = importlib.import_module(name)
        copy = types.ModuleType(CLINIC + name.rsplit(".", 1)[1])
        for attr, value in vars(module).items():
            if attr.startswith("progressor_"):
                setattr(copy, attr, value)
        copies.append(copy)
    return copies


def _engines(*plugins: str) -> Iterator[tuple[str, p.Engine]]:
    yield "built-in", p.Engine(plugins)
    yield "clinic", p.Engine(builtins=False, plugins=[*_clinic_copies(), *plugins])


def _as_built_in(result: p.StepResult) -> str:
    """The result as JSON, with the clinic copies' plugin names read as the built-ins'."""
    return result.model_dump_json().replace(CLINIC, "progressor.builtins.")


def test_the_built_ins_registered_by_a_clinic_plugin_give_identical_results() -> None:
    by_engine: dict[str, list[str]] = {}
    for kind, engine in _engines("progressor_repeated_movements"):
        assert all(not i.builtin for i in engine.registries.plugins.values()) is (kind == "clinic")
        results = by_engine.setdefault(kind, [])
        for path in sorted(PROGRAMS.glob("*.toml")):
            compiled = engine.compile(p.load_program(path))
            for patient in synthesize_clinic(compiled, patients=12, weeks=4, seed=11):
                for result in compiled.replay(patient.enrollment, patient.records):
                    results.append(_as_built_in(result))
    assert len(by_engine["built-in"]) > 100
    assert by_engine["clinic"] == by_engine["built-in"]
    # (and the decisions say who decided: never a clinic copy in the built-ins' results)
    assert not any(CLINIC in r for r in by_engine["built-in"])


def _one_a_day(days: tuple[int, ...] = (0, 2, 4)) -> list[p.Record]:
    rows = [r for r in full_week(days=days) if r["exercise"] != "knee-to-chest"]
    return [p.Outcome.model_validate(r) for r in rows]


def _step(engine: p.Engine) -> p.StepResult:
    compiled = engine.compile(p.load_program(PROGRAMS / "low-back-pain.toml"))
    enrollment = p.Enrollment(patient="anna", program=compiled.program.id, start=START)
    return compiled.step(compiled.first_week(enrollment), _one_a_day())


def _bad_memory(self: Any, week: p.ExerciseWeek, params: Any) -> p.Proposal:
    return p.Proposal("hold", "odd", week.dose, memory={"x": object()})  # type: ignore[dict-item]


def _bad_values(self: Any, week: p.WeekView, params: Any) -> list[p.Finding]:
    return [p.Finding("hold", "odd", values={"x": object()})]  # type: ignore[dict-item]


def _not_a_finding(self: Any, week: p.WeekView, params: Any) -> list[object]:
    return ["hold"]


def _bad_answers(self: Any, dose: p.Dose, outcomes: Any) -> list[object]:
    return [1] * len(outcomes)


def _bad_dose(self: Any, week: p.ExerciseWeek, params: Any) -> p.Proposal:
    return p.Proposal("progress", "odd", week.dose.__dict__)  # type: ignore[arg-type]


#: A built-in component's method replaced by one returning a bad value: (class, method,
#: replacement, the plugin (module) that must be named, the component named).
BAD: list[tuple[type, str, Callable[..., Any], str, str]] = [
    (Double, "propose", _bad_memory, "progressions", "double"),
    (Double, "propose", _bad_dose, "progressions", "double"),
    (PainFlare, "evaluate", _bad_values, "safety", "pain-flare"),
    (PainFlare, "evaluate", _not_a_finding, "safety", "pain-flare"),
    (Hold, "each_met", _bad_answers, "exercise_types", "hold"),
]


@pytest.mark.parametrize(
    ("cls", "method", "replacement", "module", "component"),
    BAD,
    ids=[f"{c.__name__}.{m}-{r.__name__}" for c, m, r, _, _ in BAD],
)
def test_a_bad_value_fails_its_plugin_built_in_or_not(
    monkeypatch: pytest.MonkeyPatch,
    cls: type,
    method: str,
    replacement: Callable[..., Any],
    module: str,
    component: str,
) -> None:
    monkeypatch.setattr(cls, method, replacement)
    for kind, engine in _engines():
        result = _step(engine)
        prefix = CLINIC if kind == "clinic" else "progressor.builtins."
        failures = [f for f in result.prescription.flags if f.code == "plugin-failure"]
        assert [(f.plugin, f.rule) for f in failures] == [(prefix + module, component)], kind
        assert {d.action for d in result.decisions} <= {"hold", "pause"}
        json.loads(result.model_dump_json())  # serialisable: nothing unchecked got in
