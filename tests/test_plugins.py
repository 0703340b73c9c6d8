"""Plugin discovery and control: allow-list, blocking, requirements, failures named, alerts."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as metadata
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

import progressor
from progressor.core.alerts import dispatch, parse_specs
from progressor.core.plugins import get_plugin_manager, not_installed
from progressor.synth import synthesize_clinic
from tests.conftest import PROGRAMS, START
from tests.conftest import SometimesBroken as _Sometimes

SEED = (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8")


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


@progressor.hookimpl
def _register_nothing(register: Callable[[object], None]) -> None:
    return None


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Pretend that plugin modules are installed under the 'progressor' entry-point group."""

    def install(**modules: types.ModuleType) -> None:
        points = []
        for entry_name, module in modules.items():
            monkeypatch.setitem(sys.modules, module.__name__, module)
            points.append(metadata.EntryPoint(entry_name, module.__name__, "progressor"))
        real = metadata.entry_points

        def fake(**params: Any) -> Any:
            if params.get("group") == "progressor":
                return metadata.EntryPoints(points)
            return real(**params)

        monkeypatch.setattr(metadata, "entry_points", fake)

    return install


def _plugin(name: str) -> types.ModuleType:
    return _module(name, progressor_register_strategies=_register_nothing)


def test_entry_point_plugins_load_and_the_allow_list_restricts(installed: Any) -> None:
    installed(alpha=_plugin("clinic_alpha"), beta=_plugin("clinic_beta"))
    everything = get_plugin_manager(entry_points=True)
    assert {"alpha", "beta"} <= set(everything.infos)
    only_alpha = get_plugin_manager(entry_points=True, allow=["alpha"])
    assert "alpha" in only_alpha.infos and "beta" not in only_alpha.infos
    none = get_plugin_manager(entry_points=True, allow=[])
    assert {i.name for i in none.infos.values() if not i.builtin} == set()


def test_an_allow_list_naming_a_plugin_not_installed_is_told(installed: Any) -> None:
    installed(alpha=_plugin("clinic_alpha"), beta=_plugin("clinic_beta"))
    assert not_installed(None) is None
    assert not_installed(["alpha", "clinic_beta"]) is None  # by entry point or module
    assert not_installed(["alpah", "gamma"]) == (
        "PROGRESSOR_PLUGINS names plugins that are not installed: alpah, gamma "
        "(did you mean 'alpha'?); installed plugins: alpha, beta"
    )


def test_a_plugin_that_fails_to_import_is_named_with_how_to_disable(
    installed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed(good=_plugin("clinic_good"))
    bad = metadata.EntryPoint("broken", "clinic_missing_module", "progressor")
    real = metadata.entry_points
    monkeypatch.setattr(
        metadata,
        "entry_points",
        lambda **p: metadata.EntryPoints([*real(**p), bad]) if p.get("group") else real(**p),
    )
    with pytest.raises(progressor.PluginError) as info:
        get_plugin_manager(entry_points=True)
    message = str(info.value)
    assert "'broken'" in message and "ModuleNotFoundError" in message
    assert "PROGRESSOR_PLUGINS=good" in message


def test_a_wrong_hook_signature_is_named() -> None:
    @progressor.hookimpl
    def progressor_register_strategies(register: Any, extra: Any) -> None:
        return None

    plugin = _module(
        "clinic_wrong_args", progressor_register_strategies=progressor_register_strategies
    )
    with pytest.raises(progressor.PluginError, match="clinic_wrong_args"):
        progressor.Engine(plugins=[plugin])


def test_a_hook_implementation_taking_no_argument_is_called_as_pluggy_calls_it() -> None:
    called = []

    @progressor.hookimpl
    def progressor_register_strategies() -> None:
        called.append(True)

    plugin = _module(
        "clinic_no_args", progressor_register_strategies=progressor_register_strategies
    )
    progressor.Engine(plugins=[plugin])
    assert called == [True]


@pytest.mark.parametrize("marker", [{"wrapper": True}, {"hookwrapper": True}])
def test_a_wrapper_hook_implementation_is_refused_when_it_registers(
    marker: dict[str, bool],
) -> None:
    def progressor_register_exporters(register: Any) -> Any:
        return (yield)

    wrapped = progressor.hookimpl(**marker)(progressor_register_exporters)
    plugin = _module("clinic_wrapper", progressor_register_exporters=wrapped)
    with pytest.raises(progressor.PluginError) as info:
        progressor.Engine(plugins=[plugin])
    message = str(info.value)
    assert "clinic_wrapper" in message and "progressor_register_exporters is a wrapper" in message


def test_an_unknown_hook_is_named() -> None:
    plugin = _module("clinic_typo", progressor_register_stratgies=_register_nothing)
    with pytest.raises(progressor.PluginError, match=r"clinic_typo.*unknown hook"):
        progressor.Engine(plugins=[plugin])


def test_a_module_plugin_that_fails_to_import_says_how_to_disable() -> None:
    with pytest.raises(
        progressor.PluginError, match="leave clinic_nowhere out of the plugins to load"
    ):
        progressor.Engine(plugins=["clinic_nowhere"])


def test_builtins_can_be_blocked_one_by_one_but_not_the_essential_rules() -> None:
    engine = progressor.Engine(block=["rpe", "adherence"])
    assert "rpe" not in engine.registries.strategies
    assert "adherence" not in engine.registries.safety_rules
    assert "pain-flare" in engine.registries.safety_rules
    for essential in ("pain-flare", "missing-data", "progressor.builtins.safety"):
        with pytest.raises(progressor.PluginError, match="essential safety rule"):
            progressor.Engine(block=[essential])
    with pytest.raises(progressor.PluginError, match="did you mean 'adherence'"):
        progressor.Engine(block=["adherance"])


def test_a_program_using_a_blocked_component_says_so() -> None:
    engine = progressor.Engine(block=["new-pain"])
    with pytest.raises(progressor.ProgramError, match="'new-pain' is blocked"):
        engine.compile(progressor.parse_program(SEED))


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ('{ name = "progressor-no-such-plugin" }', "pip install 'progressor-no-such-plugin'"),
        ('{ name = "pluggy", version = "<0.1" }', "but version"),
        ('{ name = "pluggy", version = ">=1" }', "installed but not loaded"),
        ('{ name = "pluggy", version = "soon" }', "not a version range"),
    ],
)
def test_a_program_names_the_plugins_it_needs(requirement: str, expected: str) -> None:
    text = SEED.replace(
        "sessions_required = 3", f"sessions_required = 3\nrequires = [{requirement}]"
    )
    program = progressor.parse_program(text, "needs.toml")
    with pytest.raises(progressor.ProgramError) as info:
        progressor.Engine().compile(program)
    [problem] = info.value.problems
    assert expected in str(problem) and problem.path[0] == "requires"
    assert problem.line == text.splitlines().index(f"requires = [{requirement}]") + 1


class _Flaky(progressor.AlertChannel):
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures, self.sent = failures, []  # type: ignore[var-annotated]

    def send(self, alert: progressor.Alert, target: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("pager service down")
        self.sent.append((alert, target))


def _alert() -> progressor.Alert:
    return progressor.Alert(patient="anna", week=3, rule="pain-flare", plugin="x", message="8/10")


def test_a_failing_alert_channel_is_retried_then_reported() -> None:
    waits: list[float] = []
    recovering = _Flaky(failures=2)
    [delivery] = dispatch([(recovering, "ward-3")], [_alert()], sleep=waits.append)
    assert delivery.delivered and delivery.attempts == 3 and waits == [0.5, 1.0]
    assert recovering.sent == [(_alert(), "ward-3")]
    [lost] = dispatch([(_Flaky(failures=9), "")], [_alert()], sleep=waits.append)
    assert not lost.delivered and lost.error == "ConnectionError: pager service down"


def test_alert_specs_name_registered_channels() -> None:
    registry = progressor.Engine().registries.alert_channels
    [(channel, target)] = parse_specs(registry, ["stderr:ignored"])
    assert channel.name == "stderr" and target == "ignored"
    with pytest.raises(progressor.ProgressorError, match="did you mean 'stderr'"):
        parse_specs(registry, ["stdrr"])


def test_a_plugin_raising_for_some_patients_of_a_cohort_holds_only_them() -> None:
    plugin = _module(
        "clinic_sometimes",
        progressor_register_safety_rules=progressor.hookimpl(
            lambda register: register(_Sometimes())
        ),
    )
    base = progressor.Engine().compile(progressor.parse_program(SEED))
    program = base.program.model_copy(
        update={"safety": {**base.program.safety, "sometimes-broken": {}}}
    )
    with_plugin = progressor.Engine(plugins=[plugin]).compile(program)
    clinic = synthesize_clinic(base, 1500, 3, seed=11)
    until = START + dt.timedelta(days=21)
    broken = 0
    for patient in clinic:
        expected = base.replay(patient.enrollment, patient.records, until=until)
        got = with_plugin.replay(patient.enrollment, patient.records, until=until)
        if sum(map(ord, patient.enrollment.patient)) % 10 == 0:
            broken += 1
            before = with_plugin.first_week(patient.enrollment)
            for result in got:
                assert {d.action for d in result.decisions} <= {"hold", "pause"}
                failed = any(
                    f.code == "plugin-failure" and f.plugin == "clinic_sometimes"
                    for f in result.prescription.flags
                )
                assert failed or before.status == "paused"  # a paused week runs no rules
                before = result.prescription
        else:
            assert [r.model_dump_json() for r in got] == [r.model_dump_json() for r in expected]
    assert 100 < broken < 300
