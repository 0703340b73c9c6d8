"""The plugin-authoring kit (progressor.testing), run the way an author runs it: in pytester.

Each test writes a small project (scenario folders, a test file) and runs pytest on it with
``-p progressor.testing``, which also works once the plugin is installed as an entry point.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

import progressor
from progressor.testing import ScenarioError, ScenarioFailure, load_scenario, run_scenario

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "programs"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
DOCS = ROOT / "docs" / "scenarios.md"
#: Inner runs without hypothesis (its report header re-imports it every run: slow) or a cache.
BASE = (
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:cacheprovider",
    # This module imported progressor.testing before the inner run loads it as a plugin.
    "-W",
    "ignore::pytest.PytestAssertRewriteWarning",
)
KIT = ("-p", "progressor.testing", *BASE)
START = dt.date(2026, 1, 5)

HEADER = """
description = "Bridge regresses after one session of new pain"
patient = "anna"
start = 2026-01-05
"""

EXPECT_REGRESS = """
[[weeks]]
log = "week-1.jsonl"
[weeks.expect]
status = "active"
flags = ["review"]
alerts = []
[weeks.expect.exercises.bridge]
action = "regress"
rule = "new-pain"
dose = { sets = 1, reps = 5, hold_s = 4 }
"""


def seed_week(
    bridge_during: float = 3, week: int = 1, bridge_reps: int = 5
) -> list[dict[str, Any]]:
    """The seed program done in full on Monday, Wednesday and Friday of `week` (from
    2026-01-05), the bridge with `bridge_during` pain on Wednesday (before: 2)."""
    out = []
    for offset in (0, 2, 4):
        day = (START + dt.timedelta(days=7 * (week - 1) + offset)).isoformat()
        for name in ("pelvic-tilt", "knee-to-chest", "bridge"):
            bridge = name == "bridge"
            out.append(
                {
                    "date": day,
                    "exercise": name,
                    "reps": [bridge_reps if bridge else 5],
                    "hold_s": 5,
                    "pain_before": 2,
                    "pain_during": bridge_during if bridge and offset == 2 else 2,
                }
            )
    return out


def make_scenario(
    root: Path,
    name: str,
    text: str,
    logs: Mapping[str, Iterable[Mapping[str, Any] | str]] | None = None,
    program: str | None = (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8"),
) -> Path:
    """A scenario folder: scenario.toml, its logs, and (unless None) a program.toml."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "scenario.toml").write_text(text, encoding="utf-8")
    if program is not None:
        (folder / "program.toml").write_text(program, encoding="utf-8")
    for log, rows in (logs or {}).items():
        lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
        (folder / log).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "scenario.toml"


def assert_lines(result: pytest.RunResult, *expected: str) -> None:
    """Each line appears in the output, in this order (literally: no glob brackets)."""
    lines = result.stdout.lines
    position = 0
    for line in expected:
        assert line in lines[position:], f"{line!r} not in the output:\n{result.stdout.str()}"
        position = lines.index(line, position) + 1


# -- scenarios ------------------------------------------------------------------------------------


def test_a_passing_scenario_passes(pytester: pytest.Pytester) -> None:
    make_scenario(pytester.path, "new-pain", HEADER + EXPECT_REGRESS, {"week-1.jsonl": seed_week()})
    result = pytester.runpytest(*KIT, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*new-pain/scenario.toml::new-pain PASSED*"])


def test_a_wrong_expectation_names_week_exercise_field_and_the_reason(
    pytester: pytest.Pytester,
) -> None:
    wrong = EXPECT_REGRESS.replace('action = "regress"', 'action = "progress"')
    wrong = wrong.replace("hold_s = 4", "hold_s = 5")
    make_scenario(pytester.path, "wrong", HEADER + wrong, {"week-1.jsonl": seed_week()})
    result = pytester.runpytest(*KIT)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "scenario *wrong (Bridge regresses after one session of new pain)",
            "week 1 (2026-01-05 to 2026-01-11):",
            "  exercise 'bridge', action: expected 'progress', got 'regress'",
            "  exercise 'bridge', dose.hold_s: expected 5, got 4",
            "    decision: regress by new-pain (progressor.builtins.safety)",
            "    reason: Step back: pain rose 1 above the pain before exercising on 2026-01-07.*",
        ]
    )
    # A readable report, not a traceback into the kit.
    assert "progressor/testing.py" not in result.stdout.str()
    assert "progressor/scenarios.py" not in result.stdout.str()


def test_week_level_mismatches_and_later_weeks(pytester: pytest.Pytester) -> None:
    text = HEADER + EXPECT_REGRESS + '\n[[weeks]]\n[weeks.expect]\nstatus = "paused"\n'
    text += 'flags = ["ready-for-next-phase"]\nalerts = ["pain-flare"]\n'
    make_scenario(pytester.path, "later", text, {"week-1.jsonl": seed_week()})
    result = pytester.runpytest(*KIT)
    result.assert_outcomes(failed=1)
    assert_lines(
        result,
        "week 2 (2026-01-12 to 2026-01-18):",
        "  status: expected 'paused', got 'active'",
        "  flags: expected ['ready-for-next-phase'], got []",
        "  alerts: expected ['pain-flare'], got []",
        "(weeks 1 to 1 matched)",
    )


def test_reason_and_matched_expectations(pytester: pytest.Pytester) -> None:
    extra = 'reason_contains = "no such words"\nmatched = ["pain-flare", "double"]\n'
    make_scenario(
        pytester.path, "why", HEADER + EXPECT_REGRESS + extra, {"week-1.jsonl": seed_week()}
    )
    result = pytester.runpytest(*KIT)
    result.assert_outcomes(failed=1)
    assert_lines(
        result,
        "  exercise 'bridge', reason: expected to contain 'no such words'",
        "  exercise 'bridge', matched: expected ['pain-flare'] among the matches,"
        " got ['double', 'new-pain']",
    )


def test_a_malformed_scenario_fails_with_its_path_and_only_its_own_test(
    pytester: pytest.Pytester,
) -> None:
    make_scenario(pytester.path, "good", HEADER + EXPECT_REGRESS, {"week-1.jsonl": seed_week()})
    typo = EXPECT_REGRESS.replace('action = "regress"', 'acton = "regress"')
    make_scenario(pytester.path, "typo", HEADER + typo, {"week-1.jsonl": seed_week()})
    result = pytester.runpytest(*KIT)
    result.assert_outcomes(passed=1, failed=1)
    assert_lines(
        result,
        "bad scenario typo/scenario.toml:",
        "typo/scenario.toml:13: weeks[0].expect.exercises.bridge.acton: unknown key"
        " (did you mean 'action'?)",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("start = 2026-01-05\n[[weeks]\n", "scenario.toml: not valid TOML: "),
        ('patient = "x"\n[[weeks]]\n', "scenario.toml: start: Field required"),
        (
            "start = 2026-01-05\nweeks = []\n",
            "scenario.toml:2: weeks: Value error, a scenario needs at least one [[weeks]] table",
        ),
        (
            'start = 2026-01-05\n[[weeks]]\nlog = "week-9.jsonl"\n',
            "scenario.toml:3: weeks[0].log: no log file ",
        ),
        (
            'start = 2026-01-05\n[[weeks]]\nlog = "week-1.txt"\n',
            "scenario.toml:3: weeks[0].log: unknown log format '.txt'"
            " (use .jsonl, .csv or .parquet)",
        ),
        (
            'start = 2026-01-05\n[[weeks]]\n[weeks.expect.exercises.brige]\naction = "hold"\n',
            "scenario.toml:3: weeks[0].expect.exercises.brige: unknown exercise 'brige'"
            " (the program has pelvic-tilt, knee-to-chest, bridge) (did you mean 'bridge'?)",
        ),
        (
            "start = 2026-01-05\n[[weeks]]\n[weeks.expect.exercises.bridge]\n"
            "dose = { sets = 1, hold = 4 }\n",
            "scenario.toml:4: weeks[0].expect.exercises.bridge.dose.hold: unknown key"
            " (did you mean 'hold_s'?)",
        ),
        (
            'start = 2026-01-05\n[[weeks]]\nexpect = { flags = "review" }\n',
            "scenario.toml:3: weeks[0].expect.flags: Input should be a valid tuple",
        ),
        (
            "start = 2026-01-05\n[overrides]\nbrigde = { reps = 5 }\n[[weeks]]\n",
            "scenario.toml:3: overrides.brigde: unknown exercise 'brigde'",
        ),
        (
            'start = 2026-01-05\nprogram = "nowhere.toml"\n[[weeks]]\n',
            "scenario.toml:2: program: the program ",
        ),
    ],
    ids=[
        "toml-syntax",
        "no-start",
        "no-weeks",
        "missing-log",
        "log-format",
        "unknown-exercise",
        "dose-key",
        "flags-type",
        "override-exercise",
        "missing-program",
    ],
)
def test_bad_scenario_files_are_located(text: str, message: str, tmp_path: Path) -> None:
    path = make_scenario(tmp_path, "bad", text, {"week-1.txt": []})
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    lines = str(raised.value).splitlines()
    assert any(line.startswith(str(path.parent)) and message in line for line in lines), lines


def test_a_scenario_needs_a_program(tmp_path: Path) -> None:
    path = make_scenario(tmp_path, "bare", "start = 2026-01-05\n[[weeks]]\n", program=None)
    with pytest.raises(ScenarioError, match=r"no program .*set 'program'"):
        load_scenario(path)


def test_an_invalid_program_reports_its_own_problems(tmp_path: Path) -> None:
    text = (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8")
    path = make_scenario(
        tmp_path,
        "dubble",
        "start = 2026-01-05\n[[weeks]]\n",
        program=text.replace('"double"', '"dubble"', 1),
    )
    with pytest.raises(ScenarioError) as raised:
        run_scenario(load_scenario(path))
    assert "unknown strategy 'dubble' (did you mean 'double'?)" in str(raised.value)
    assert f"{path.parent / 'program.toml'}:" in str(raised.value)


def test_records_set_aside_fail_the_scenario_unless_allowed(tmp_path: Path) -> None:
    log: list[Mapping[str, Any] | str] = [*seed_week()]
    log.append('{"date": "2026-01-07", "exercise": "bridge", "pain_before": "low"}')
    log.append({"date": "2026-01-08", "exercise": "brige", "pain_before": 1, "pain_during": 1})
    path = make_scenario(tmp_path, "aside", HEADER + EXPECT_REGRESS, {"week-1.jsonl": log})
    with pytest.raises(ScenarioFailure) as raised:
        run_scenario(load_scenario(path))
    report = str(raised.value)
    assert f"set aside by the log reader: {path.parent / 'week-1.jsonl'}:10: pain_before:" in report
    assert "set aside by the step: 2026-01-08 outcome of 'brige': unknown exercise" in report
    allowed = EXPECT_REGRESS.replace("[weeks.expect]\n", "allow_set_aside = true\n[weeks.expect]\n")
    path.write_text(HEADER + allowed.replace("alerts = []", "alerts = []\nset_aside = 2"))
    assert len(run_scenario(load_scenario(path))) == 1


def test_overrides_and_a_clinicians_resume(tmp_path: Path) -> None:
    flare = [{"date": "2026-01-06", "pain": 8, "context": "flare"}]
    text = (
        HEADER
        + """
[overrides]
bridge = { sets = 1, reps = 12, hold_s = 5 }

[[weeks]]
log = "flare.jsonl"
[weeks.expect]
status = "paused"
alerts = ["pain-flare"]

[[weeks]]
resume = ["bridge"]
log = "full.jsonl"
[weeks.expect]
status = "active"
[weeks.expect.exercises.bridge]
action = "progress"
dose = { sets = 1, reps = 5, hold_s = 6 }
[weeks.expect.exercises.pelvic-tilt]
action = "pause"
rule = "awaiting-clinician"
"""
    )
    full = seed_week(bridge_during=2, week=2, bridge_reps=12)
    path = make_scenario(tmp_path, "resume", text, {"flare.jsonl": flare, "full.jsonl": full})
    results = run_scenario(load_scenario(path))
    assert [r.prescription.status for r in results] == ["paused", "active"]


def test_a_scenario_loads_plugins_by_module_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        clinic_rules="""
import progressor

class Cautious(progressor.SafetyRule):
    name = "cautious"

    def evaluate(self, week, params):
        yield progressor.Finding("hold", "the clinic holds every first week", None, flag="review")

@progressor.hookimpl
def progressor_register_safety_rules(register):
    register(Cautious())
"""
    )
    pytester.syspathinsert()
    program = (PROGRAMS / "low-back-pain.toml").read_text(
        encoding="utf-8"
    ) + "\n[safety.cautious]\n"
    text = (
        HEADER
        + 'plugins = ["clinic_rules"]\n'
        + EXPECT_REGRESS.replace('rule = "new-pain"', 'rule = "new-pain"\nmatched = ["cautious"]')
    )
    make_scenario(pytester.path, "clinic", text, {"week-1.jsonl": seed_week()}, program=program)
    missing = HEADER + 'plugins = ["no_such_clinic"]\n' + EXPECT_REGRESS
    make_scenario(pytester.path, "missing", missing, {"week-1.jsonl": seed_week()})
    result = pytester.runpytest(*KIT)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["bad scenario *missing*scenario.toml:", "*no_such_clinic*"])


# -- fixtures -------------------------------------------------------------------------------------


def test_the_fixtures_in_an_authors_test_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_author=f"""
import datetime as dt
from pathlib import Path

import pytest
import progressor

SEED = Path({str(PROGRAMS / "low-back-pain.toml")!r})


def test_engine_factory_builds_fresh_engines(progressor_engine_factory):
    first, second = progressor_engine_factory(), progressor_engine_factory()
    assert first is not second
    assert first.plugin_manager is not second.plugin_manager
    with pytest.raises(progressor.ProgramError, match="unknown strategy"):
        progressor_engine_factory(builtins=False).compile(progressor.load_program(SEED))


def test_engine_has_the_builtins(progressor_engine):
    assert isinstance(progressor_engine, progressor.Engine)
    assert progressor_engine.compile(progressor.load_program(SEED)).program.id == "low-back-pain"


def test_outcome_builder(outcome):
    done = outcome("bridge", dt.date(2026, 1, 5))
    assert (done.reps, done.hold_s, done.pain_before, done.pain_after) == ((5,), 5, 2, 2)
    assert outcome("bridge", "2026-01-05", pain=None).scored is False
    rise = outcome("bridge", "2026-01-05", pain=(2, 4, None), reps=[5, 4], rpe=6)
    assert (rise.pain_before, rise.pain_during, rise.pain_after, rise.reps, rise.rpe) == (
        2, 4, None, (5, 4), 6
    )
    walk = outcome("walk", "2026-01-05", reps=(), hold_s=None, duration_s=[600])
    assert walk.duration_s == (600,) and walk.reps == ()


def test_pain_report_builder(pain_report):
    report = pain_report("2026-01-06", 4, "morning")
    assert (report.date, report.pain, report.context) == (dt.date(2026, 1, 6), 4, "morning")
    assert pain_report(dt.date(2026, 1, 6), 8).context == "other"


def test_compile_program_from_a_path_or_text(compile_program, progressor_engine_factory):
    from_path = compile_program(SEED)
    from_str_path = compile_program(str(SEED))
    from_text = compile_program(SEED.read_text(), engine=progressor_engine_factory())
    dumps = [c.program.model_dump() for c in (from_path, from_str_path, from_text)]
    assert dumps[0] == dumps[1] == dumps[2]


def test_a_week_with_the_fixtures(compile_program, outcome, pain_report):
    compiled = compile_program(SEED)
    enrollment = progressor.Enrollment(
        patient="p", program="low-back-pain", start=dt.date(2026, 1, 5)
    )
    records = [outcome("bridge", dt.date(2026, 1, 5 + d)) for d in (0, 2, 4)]
    records.append(pain_report("2026-01-08", 7, "flare"))
    result = compiled.step(compiled.first_week(enrollment), records)
    assert result.prescription.status == "paused"
"""
    )
    result = pytester.runpytest(*KIT)
    result.assert_outcomes(passed=6)


# -- loading the plugin ---------------------------------------------------------------------------


def fake_entry_point(root: Path) -> Path:
    """A distribution declaring progressor.testing under pytest11, as installing progressor does."""
    info = root / "site" / "progressor_kit_under_test-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: progressor-kit-under-test\nVersion: 0.0\n"
    )
    (info / "entry_points.txt").write_text("[pytest11]\nprogressor = progressor.testing\n")
    return info.parent


@pytest.mark.parametrize("how", ["-p", "conftest"])
def test_the_entry_point_and_an_explicit_load_do_not_clash(
    pytester: pytest.Pytester, how: str
) -> None:
    pytester.syspathinsert(fake_entry_point(pytester.path))
    make_scenario(pytester.path, "s", HEADER + EXPECT_REGRESS, {"week-1.jsonl": seed_week()})
    if how == "conftest":
        pytester.makeconftest('pytest_plugins = ["progressor.testing"]')
        result = pytester.runpytest(*BASE)
    else:
        result = pytester.runpytest(*KIT)
    result.assert_outcomes(passed=1)


def test_no_progressor_turns_the_entry_point_off(pytester: pytest.Pytester) -> None:
    pytester.syspathinsert(fake_entry_point(pytester.path))
    make_scenario(pytester.path, "s", HEADER + EXPECT_REGRESS, {"week-1.jsonl": seed_week()})
    assert pytester.runpytest(*BASE).ret == pytest.ExitCode.OK
    result = pytester.runpytest("-p", "no:progressor", *BASE)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def code_blocks(markdown: str) -> list[tuple[str, str]]:
    """The fenced code blocks of a Markdown text, as (info string, body)."""
    blocks: list[tuple[str, str]] = []
    info: str | None = None
    body: list[str] = []
    for line in markdown.splitlines(keepends=True):
        if line.startswith("```") and info is None:
            info, body = line[3:].strip(), []
        elif line.startswith("```"):
            blocks.append((info or "", "".join(body)))
            info = None
        elif info is not None:
            body.append(line)
    return blocks


# -- the documentation ----------------------------------------------------------------------------


def test_the_documented_scenario_passes_and_fails_as_documented(pytester: pytest.Pytester) -> None:
    blocks = code_blocks(DOCS.read_text(encoding="utf-8"))
    files = {info.split("file=")[1]: body for info, body in blocks if "file=" in info}
    reports = [body for info, body in blocks if body.startswith(("scenario ", "bad scenario "))]
    failure, bad = (r.splitlines() for r in reports)
    assert set(files) == {"scenario.toml", "week-1.jsonl", "week-2.csv"}
    folder = pytester.path / "tests" / "scenarios" / "bridge-new-pain"
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_text(content, encoding="utf-8")
    (pytester.path / "programs").mkdir()
    shutil.copy(PROGRAMS / "low-back-pain.toml", pytester.path / "programs")
    pytester.runpytest(*KIT).assert_outcomes(passed=1)

    scenario = files["scenario.toml"]
    wrong = scenario.replace('action = "regress"', 'action = "hold"')
    wrong = wrong.replace("reps = 5, hold_s = 4 }", "reps = 5, hold_s = 5 }")
    (folder / "scenario.toml").write_text(wrong, encoding="utf-8")
    assert_lines(pytester.runpytest(*KIT), *failure)

    typo = scenario.replace('action = "regress"', 'acton = "regress"')
    (folder / "scenario.toml").write_text(typo, encoding="utf-8")
    assert_lines(pytester.runpytest(*KIT), *bad)


# -- the repository's own scenarios ---------------------------------------------------------------


def test_own_scenarios_cover_every_builtin() -> None:
    """Every built-in strategy and safety rule decides at least one week of tests/scenarios."""
    decided: set[str] = set()
    noted: set[str] = set()
    for path in sorted(SCENARIOS.glob("*/scenario.toml")):
        spec = load_scenario(path).spec
        for week in spec.weeks:
            for expected in week.expect.exercises.values():
                decided.add(expected.rule or "")
                noted.update(expected.matched or ())
    engine = progressor.Engine()
    strategies = set(engine.registries.strategies)
    rules = set(engine.registries.safety_rules)
    assert strategies - decided == set()
    # missing-data only notes (it never decides): it must show among a decision's matches.
    assert rules - decided - noted == set()
    assert {"awaiting-clinician", "fail-safe"} <= decided
