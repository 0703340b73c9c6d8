"""Programs and logs: located errors with suggestions; bad records set aside, good ones kept."""

from __future__ import annotations

from pathlib import Path

import pytest

import progressor
from progressor.reading import key_lines, read_log
from tests.conftest import PROGRAMS

GOOD = (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8")


def problems(text: str, engine: progressor.Engine | None = None) -> list[progressor.Problem]:
    with pytest.raises(progressor.ProgramError) as info:
        program = progressor.parse_program(text, "bad.toml")
        (engine or progressor.Engine()).compile(program)
    return list(info.value.problems)


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("path", sorted(PROGRAMS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_program_compiles(path: Path) -> None:
    # make test installs the example plugins, which some programs declare they need.
    program = progressor.load_program(path)
    compiled = progressor.Engine(entry_points=True).compile(program)
    assert compiled.program.id == path.stem


def test_toml_syntax_error_has_its_line() -> None:
    text = GOOD.replace('version = "1.0.0"', "version = ")
    [problem] = problems(text)
    assert problem.line == line_of(GOOD, 'version = "1.0.0"')
    assert "not valid TOML" in problem.message


def test_unknown_key_is_located_with_a_suggestion() -> None:
    text = GOOD.replace(
        "dose = { sets = 1, reps = 5, hold_s = 5 }", "dose = { sets = 1, reps = 5, hold = 5 }", 1
    )
    [problem] = problems(text)
    assert problem.path == ("exercises", 0, "dose", "hold")
    assert problem.line == line_of(text, "hold = 5 }")
    assert problem.suggestion == "did you mean 'hold_s'?"
    assert str(problem).startswith(f"bad.toml:{problem.line}: exercises[0].dose.hold")


def test_top_level_typo_suggests_the_key() -> None:
    text = GOOD.replace("sessions_required = 3", "sesions_required = 3")
    [problem] = problems(text)
    assert problem.path == ("sesions_required",)
    assert problem.suggestion == "did you mean 'sessions_required'?"


def test_unknown_type_strategy_and_rule_each_suggest_the_nearest() -> None:
    text = (
        GOOD.replace('type = "stretch"', 'type = "strech"')
        .replace('strategy = "linear"', 'strategy = "linaer"')
        .replace("[safety.new-pain]", "[safety.new-pian]")
    )
    found = {p.path: p for p in problems(text)}
    assert found[("exercises", 1, "type")].suggestion == "did you mean 'stretch'?"
    assert found[("exercises", 1, "type")].line == line_of(text, '"strech"')
    strategy = found[("exercises", 1, "progression", "strategy")]
    assert strategy.suggestion == "did you mean 'linear'?"
    assert strategy.line == line_of(text, '"linaer"')
    rule = found[("safety", "new-pian")]
    assert rule.suggestion == "did you mean 'new-pain'?"
    assert rule.line == line_of(text, "[safety.new-pian]")


def test_strategy_and_rule_parameters_are_checked_at_load() -> None:
    text = GOOD.replace("second_step = 1", "second_stp = 1", 1).replace(
        "tolerance = 0", "tolerance = -1"
    )
    found = {p.path: p for p in problems(text)}
    typo = found[("exercises", 0, "progression", "second_stp")]
    assert typo.suggestion == "did you mean 'second_step'?"
    assert typo.line == line_of(text, "second_stp")
    bad = found[("safety", "new-pain", "tolerance")]
    assert bad.line == line_of(text, "tolerance = -1")


def test_starting_dose_outside_its_limits_is_refused() -> None:
    text = GOOD.replace(
        "ceiling = { reps = 10, hold_s = 10 }", "ceiling = { reps = 4, hold_s = 10 }", 1
    )
    # (first_top 10 is now above the ceiling too: that is reported at the progression)
    problem, _ = problems(text)
    assert problem.path == ("exercises", 0, "dose", "reps")
    assert "above ceiling 4" in problem.message


def test_dose_field_the_type_does_not_use_is_refused() -> None:
    text = GOOD.replace(
        "dose = { sets = 1, reps = 5, hold_s = 5 }",
        "dose = { sets = 1, reps = 5, hold_s = 5, load_kg = 2 }",
        1,
    )
    [problem] = problems(text)
    assert problem.path == ("exercises", 0, "dose", "load_kg")


def test_duplicate_exercise_ids_are_refused() -> None:
    text = GOOD.replace('id = "bridge"', 'id = "pelvic-tilt"')
    [problem] = problems(text)
    assert "used twice" in problem.message


def test_key_lines_index_arrays_of_tables() -> None:
    lines = key_lines('a = 1\n[[ex]]\nid = "x"\n[[ex]]\nid = "y"\n[ex.sub]\nk = { m = 2 }\n')
    assert lines[("ex", 1, "id")] == 5
    assert lines[("ex", 1, "sub", "k", "m")] == 7


def test_bad_log_records_are_set_aside_with_line_and_reason() -> None:
    rows = [
        '{"date": "2026-01-05", "exercise": "bridge", "reps": [5], "hold_s": 5}',
        "{not json",
        '{"date": "2026-01-05", "exercise": "bridge", "pain_before": 11}',
        '{"date": "2026-01-05", "exercise": "bridge", "hold": 5}',
        '{"date": "2026-01-06", "pain": 4, "context": "morning"}',
        '{"date": "2026-01-06"}',
        "[1, 2]",
    ]
    log = read_log(rows, "anna.jsonl", "jsonl")
    # Line 3's pain of 11 is kept (as 10) for the safety rules, as a pain report.
    assert [type(r).__name__ for r in log.records] == ["Outcome", "PainReport", "PainReport"]
    assert log.records[1].pain == 10
    reasons = {s.line: s.reason for s in log.set_aside}
    assert set(reasons) == {2, 3, 4, 6, 7}
    assert "not valid JSON" in reasons[2]
    assert reasons[3].startswith("pain_before:")
    assert reasons[4] == "hold: unknown field (did you mean 'hold_s'?)"
    assert "neither an outcome" in reasons[6]


def test_csv_logs_read_lists_and_empty_cells() -> None:
    rows = [
        "date,exercise,side,reps,hold_s,pain_before,pain_during,pain,skipped",
        "2026-01-05,knee-to-chest,left,5;5,5,2,2,,",
        "2026-01-05,,,,,,,3,",
        "2026-01-06,bridge,,5,five,2,2,,",
        "2026-01-07,bridge,,5,5,2,2,,yes,extra",
    ]
    log = read_log(rows, "anna.csv", "csv")
    first = log.records[0]
    assert isinstance(first, progressor.Outcome)
    assert first.reps == (5, 5) and first.side == "left" and first.pain_during == 2
    assert isinstance(log.records[1], progressor.PainReport)
    assert [s.line for s in log.set_aside] == [4, 5]


def test_unknown_log_extension_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text("", encoding="utf-8")
    with pytest.raises(progressor.LogError, match="unknown log format"):
        progressor.load_log(path)


def test_spreadsheet_csv_quirks_are_read(tmp_path: Path) -> None:
    # A byte-order mark and capitalised headers, as spreadsheets write them.
    path = tmp_path / "anna.csv"
    path.write_text(
        "\ufeffDate,Exercise,Reps,Hold_s,Pain_before,Pain_during\n2026-01-05,bridge,5,5,2,2\n",
        encoding="utf-8",
    )
    log = progressor.load_log(path)
    assert log.set_aside == () and log.records[0].exercise == "bridge"  # type: ignore[union-attr]


def test_record_errors_speak_the_log_writers_language() -> None:
    log = read_log(['{"date": "05/01/2026", "exercise": "bridge", "reps": 5}'], "a.jsonl", "jsonl")
    [aside] = log.set_aside
    assert "YYYY-MM-DD" in aside.reason and "should be a list, e.g. [5, 5]" in aside.reason
    # A list of codes gets an example of codes, not of numbers.
    log = read_log(['{"date": "2026-01-05", "pain": 2, "flags": 5}'], "a.jsonl", "jsonl")
    [aside] = log.set_aside
    assert 'flags: should be a list, e.g. ["night-pain"]' in aside.reason
