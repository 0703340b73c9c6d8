"""One test per hook: a plugin implementing it changes what progressor does.

tests/test_docs.py checks that every hook in progressor/core/hookspecs.py has a test here named
test_hook_<hook name>.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

import progressor
from progressor.cli.commands import main
from progressor.reading import parse_record
from tests.conftest import PROGRAMS, START, full_week

SEED = (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8")


def plugin(name: str, **hooks: Callable[..., None]) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, function in hooks.items():
        setattr(module, hook, progressor.hookimpl(function))
    return module


def first(
    compiled: progressor.CompiledProgram, rows: list[dict[str, Any]]
) -> progressor.StepResult:
    enrollment = progressor.Enrollment(patient="anna", program=compiled.program.id, start=START)
    return compiled.step(compiled.first_week(enrollment), [parse_record(r) for r in rows])


class Balance(progressor.ExerciseType):
    name = "balance"
    required = ("duration_s",)

    def session_met(self, dose: progressor.Dose, outcomes: Sequence[progressor.Outcome]) -> bool:
        return any(sum(o.duration_s) >= (dose.duration_s or 0) for o in outcomes)


def test_hook_progressor_register_exercise_types() -> None:
    module = plugin(
        "clinic_balance", progressor_register_exercise_types=lambda register: register(Balance())
    )
    text = (
        SEED.replace('type = "hold"', 'type = "balance"', 1)
        .replace("dose = { sets = 1, reps = 5, hold_s = 5 }", "dose = { duration_s = 30 }", 1)
        .replace("floor = { reps = 3, hold_s = 3 }", "floor = { duration_s = 10 }", 1)
        .replace("ceiling = { reps = 10, hold_s = 10 }", "ceiling = { duration_s = 60 }", 1)
        .replace(
            'strategy = "double", first = "reps", first_top = 10, second = "hold_s", '
            "second_step = 1",
            'strategy = "linear", field = "duration_s", step = 10',
            1,
        )
    )
    compiled = progressor.Engine(plugins=[module]).compile(progressor.parse_program(text))
    rows = [r for r in full_week() if r["exercise"] != "pelvic-tilt"]
    rows += [
        {**r, "exercise": "pelvic-tilt", "duration_s": [15, 15]}
        for r in full_week()
        if r["exercise"] == "bridge"
    ]
    tilt = next(d for d in first(compiled, rows).decisions if d.exercise == "pelvic-tilt")
    assert (tilt.action, tilt.dose_after.duration_s) == ("progress", 40)
    with pytest.raises(progressor.ProgramError, match="did you mean 'balance'"):
        progressor.Engine(plugins=[module]).compile(
            progressor.parse_program(text.replace('"balance"', '"balanse"'))
        )


class Cautious(progressor.Strategy):
    name = "cautious"

    def propose(self, week: progressor.ExerciseWeek, params: BaseModel) -> progressor.Proposal:
        return progressor.Proposal("hold", "this clinic never progresses in week 1", week.dose)

    def regress(
        self, exercise: progressor.Exercise, dose: progressor.Dose, params: BaseModel
    ) -> progressor.Dose:
        return dose


def test_hook_progressor_register_strategies() -> None:
    module = plugin(
        "clinic_cautious", progressor_register_strategies=lambda register: register(Cautious())
    )
    text = SEED.replace(
        'progression = { strategy = "linear", field = "hold_s", step = 5, max = 30 }',
        'progression = { strategy = "cautious" }',
    )
    compiled = progressor.Engine(plugins=[module]).compile(progressor.parse_program(text))
    stretch = next(
        d for d in first(compiled, full_week()).decisions if d.exercise == "knee-to-chest"
    )
    assert (stretch.action, stretch.rule, stretch.plugin) == ("hold", "cautious", "clinic_cautious")


class NoMondays(progressor.SafetyRule):
    name = "no-mondays"

    def evaluate(
        self, week: progressor.WeekView, params: BaseModel
    ) -> Iterator[progressor.Finding]:
        if any(o.date.weekday() == 0 for o in week.outcomes):
            yield progressor.Finding("hold", "sessions on a Monday are a review day", "bridge")


def test_hook_progressor_register_safety_rules() -> None:
    module = plugin(
        "clinic_mondays", progressor_register_safety_rules=lambda register: register(NoMondays())
    )
    program = progressor.parse_program(SEED + "\n[safety.no-mondays]\n")
    decisions = first(progressor.Engine(plugins=[module]).compile(program), full_week()).decisions
    actions = {d.exercise: (d.action, d.rule) for d in decisions}
    assert actions["bridge"] == ("hold", "no-mondays")
    assert actions["pelvic-tilt"] == ("progress", "double")


class Memo(progressor.AlertChannel):
    name = "memo"
    sent: ClassVar[list[tuple[str, str]]] = []

    def send(self, alert: progressor.Alert, target: str) -> None:
        Memo.sent.append((alert.rule, target))


def test_hook_progressor_register_alert_channels(tmp_path: Any, monkeypatch: Any) -> None:
    module = plugin(
        "clinic_memo", progressor_register_alert_channels=lambda register: register(Memo())
    )
    monkeypatch.setitem(sys.modules, "clinic_memo", module)
    log = tmp_path / "anna.jsonl"
    rows = [*full_week(), {"date": START.isoformat(), "pain": 8, "context": "flare"}]
    log.write_text("\n".join(map(json.dumps, rows)) + "\n", encoding="utf-8")
    done = CliRunner().invoke(
        main,
        [
            "next",
            str(PROGRAMS / "low-back-pain.toml"),
            "--log",
            str(log),
            "--plugin",
            "clinic_memo",
            "--alerts",
            "memo:ward",
        ],
    )
    assert done.exit_code == 0, done.output
    assert Memo.sent == [("pain-flare", "ward")]


class Summary(progressor.Exporter):
    name = "summary"

    def export(self, program: progressor.Program, result: progressor.StepResult) -> str:
        return "".join(f"{d.exercise}: {d.action}\n" for d in result.decisions)


def test_hook_progressor_register_exporters(tmp_path: Any, monkeypatch: Any) -> None:
    module = plugin(
        "clinic_summary", progressor_register_exporters=lambda register: register(Summary())
    )
    monkeypatch.setitem(sys.modules, "clinic_summary", module)
    log = tmp_path / "anna.jsonl"
    log.write_text("\n".join(map(json.dumps, full_week())) + "\n", encoding="utf-8")
    args = ["next", str(PROGRAMS / "low-back-pain.toml"), "--log", str(log), "--format"]
    done = CliRunner().invoke(main, [*args, "summary", "--plugin", "clinic_summary"])
    assert done.exit_code == 0, done.output
    assert done.output == "pelvic-tilt: progress\nknee-to-chest: progress\nbridge: progress\n"
    unknown = CliRunner().invoke(main, [*args, "sumary", "--plugin", "clinic_summary"])
    assert unknown.exit_code == 1 and "did you mean 'summary'" in unknown.output


@click.command(name="hello-clinic")
def hello_clinic() -> None:
    """Say hello from a clinic plugin."""
    click.echo("hello from the clinic")


def test_hook_progressor_register_commands(monkeypatch: Any) -> None:
    module = plugin(
        "clinic_hello", progressor_register_commands=lambda register: register(hello_clinic)
    )
    monkeypatch.setitem(sys.modules, "clinic_hello", module)
    real = metadata.entry_points
    point = metadata.EntryPoint("hello", "clinic_hello", "progressor")
    monkeypatch.setattr(
        metadata,
        "entry_points",
        lambda **p: metadata.EntryPoints([point]) if p.get("group") == "progressor" else real(**p),
    )
    runner = CliRunner()
    assert runner.invoke(main, ["hello-clinic"]).output == "hello from the clinic\n"
    assert "hello-clinic" in runner.invoke(main, ["--help"]).output
    monkeypatch.setenv("PROGRESSOR_PLUGINS", "")
    assert runner.invoke(main, ["hello-clinic"]).exit_code == 2  # not loaded: no such command
    clash = plugin(
        "clinic_clash",
        progressor_register_commands=lambda register: register(click.Command("check")),
    )
    monkeypatch.setitem(sys.modules, "clinic_clash", clash)
    monkeypatch.delenv("PROGRESSOR_PLUGINS")
    monkeypatch.setattr(
        metadata,
        "entry_points",
        lambda **p: (
            metadata.EntryPoints([metadata.EntryPoint("clash", "clinic_clash", "progressor")])
            if p.get("group") == "progressor"
            else real(**p)
        ),
    )
    done = runner.invoke(main, ["hello-clinic"])
    assert done.exit_code == 1 and "'check' is already taken by 'progressor'" in done.output
