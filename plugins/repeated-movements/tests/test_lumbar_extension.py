"""programs/lumbar-extension.toml: it checks with the plugin installed, and only then."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import progressor as p
from progressor.cli.commands import main

LUMBAR = Path(__file__).resolve().parents[3] / "programs" / "lumbar-extension.toml"


def test_progressor_check_accepts_the_program_with_the_plugin_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROGRESSOR_PLUGINS", "repeated-movements")

    result = CliRunner().invoke(main, ["check", str(LUMBAR)])

    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("lumbar-extension.toml: ok")


def test_without_the_plugin_the_program_is_refused_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROGRESSOR_PLUGINS", "")

    result = CliRunner().invoke(main, ["check", str(LUMBAR)])

    assert result.exit_code == 1
    assert "requires[0]: needs the plugin 'progressor-repeated-movements'" in result.output
    assert "unknown exercise type 'repeated-movement'" in result.output


def test_the_program_uses_every_component_of_the_plugin(lumbar: p.CompiledProgram) -> None:
    types = {e.type for e in lumbar.program.exercises}
    strategies = {e.progression.strategy for e in lumbar.program.exercises}

    assert "repeated-movement" in types
    assert "force-progression" in strategies
    assert ("peripheralisation", "repeated-movements") in lumbar.rules
    assert lumbar.program.sessions_required == 5


def test_a_whole_month_replays_from_a_log(
    lumbar: p.CompiledProgram,
    enrol: Callable[..., p.Prescription],
    full_week: Callable[..., list[p.Outcome]],
) -> None:
    prescription, log = enrol(lumbar), []
    for _ in range(4):
        week = full_week(prescription)
        log += week
        prescription = lumbar.step(prescription, week).prescription
    enrollment = p.Enrollment(patient="eva", program="lumbar-extension", start=log[0].date)

    replayed = lumbar.replay(enrollment, reversed(log))

    assert replayed[-1].prescription == prescription
    assert prescription.exercises["press-up"].dose.hold_s == 20
    assert prescription.exercises["prone-lying"].dose.duration_s == 300
