"""Bad program files: refused with their location, never a traceback, in time linear in the text."""

from __future__ import annotations

import tomllib
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

import progressor
from progressor import Finding, SafetyRule, WeekView
from progressor.reading import MAX_PROGRAM_BYTES
from progressor.reading.toml_keys import MAX_NESTING, key_lines
from tests.conftest import PROGRAMS, START
from tests.test_cli import run

SEED = PROGRAMS / "low-back-pain.toml"
GOOD = SEED.read_text(encoding="utf-8")


def problems(text: str) -> list[progressor.Problem]:
    with pytest.raises(progressor.ProgramError) as info:
        progressor.parse_program(text, "bad.toml")
    return list(info.value.problems)


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


# -- text that tomllib cannot read ------------------------------------------------------------


def windows_1252(tmp_path: Path) -> Path:
    path = tmp_path / "cafe.toml"
    text = GOOD.replace('title = "Low back pain', 'title = "Caf\xe9 low back pain')
    path.write_bytes(text.encode("cp1252"))
    return path


def test_a_file_not_in_utf8_is_refused_at_its_first_bad_byte(tmp_path: Path) -> None:
    path = windows_1252(tmp_path)
    with pytest.raises(progressor.ProgramError) as info:
        progressor.load_program(path)
    [problem] = info.value.problems
    assert problem.line == line_of(GOOD, 'title = "Low back pain')
    assert "not UTF-8" in problem.message and "'é'" in problem.message
    assert problem.suggestion is not None and "re-save the file as UTF-8" in problem.suggestion


@pytest.mark.parametrize("command", ["check", "next", "enroll"])
def test_every_command_refuses_a_file_not_in_utf8(tmp_path: Path, command: str) -> None:
    path = str(windows_1252(tmp_path))
    log = tmp_path / "anna.jsonl"
    log.write_text("", encoding="utf-8")
    args = {
        "check": ["check", path],
        "next": ["next", path, "--log", str(log)],
        "enroll": ["enroll", "anna", "--program", path, "--start", START.isoformat()],
    }[command]
    done = run(*args, "--store", str(tmp_path / "c.db")) if command == "enroll" else run(*args)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"{path}:{line_of(GOOD, 'title = ')}: not UTF-8 text" in done.stderr


@pytest.mark.parametrize(
    "text",
    ["a = " + "[" * 1000 + "]" * 1000, "a = " + "{b = " * 1000 + "1" + "}" * 1000],
    ids=["arrays", "inline-tables"],
)
def test_nesting_a_thousand_deep_is_refused_at_its_line(text: str) -> None:
    [problem] = problems(f'id = "x"\n{text}\n')
    assert problem.line == 2
    assert f"nested more than {MAX_NESTING} levels deep" in problem.message


def test_a_header_of_a_thousand_dotted_keys_is_refused() -> None:
    [problem] = problems("a = 1\n[" + ".".join(["t"] * 1000) + "]\n")
    assert problem.line == 2 and "nested more than" in problem.message


def test_an_integer_of_5000_digits_is_refused_at_its_line() -> None:
    [problem] = problems(GOOD.replace("tolerance = 0", "tolerance = " + "9" * 5000))
    assert problem.line == line_of(GOOD, "tolerance = 0")
    assert "a number of more than 4300 digits" in problem.message


def test_anything_else_tomllib_raises_becomes_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str) -> dict[str, object]:
        raise RuntimeError("a bug in the parser")

    monkeypatch.setattr(tomllib, "loads", broken)
    [problem] = problems(GOOD)
    assert problem.file == "bad.toml"
    assert problem.message == "cannot be read as TOML (RuntimeError: a bug in the parser)"


def test_a_character_no_value_starts_with_ends_the_scan_of_an_array(tmp_path: Path) -> None:
    # (make fuzz found it: the key scanner looped for ever on the `}` where a value belongs)
    text = 'requires = [{ name = "x", version = }">=0.1" }]\n'
    assert ("requires", 0) in key_lines(text)
    with pytest.raises(progressor.ProgramError, match="not valid TOML"):
        progressor.parse_program(text, "bad.toml")


def test_a_program_larger_than_the_maximum_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    path.write_text(GOOD + "#" * MAX_PROGRAM_BYTES, encoding="utf-8")
    with pytest.raises(progressor.ProgramError) as info:
        progressor.load_program(path)
    [problem] = info.value.problems
    assert problem.file == str(path) and f"more than the {MAX_PROGRAM_BYTES:,}" in problem.message
    [problem] = problems(GOOD + "#" * MAX_PROGRAM_BYTES)
    assert "more than the" in problem.message


# -- key_lines: one pass over the text ---------------------------------------------------------


def test_key_lines_reads_strings_comments_and_arrays_as_toml_does() -> None:
    text = (
        'description = """\n'
        "fake = 1\n"
        '[not.a.table]"""\n'
        "k = 'a [ b' # [x]\n"
        'requires = [\n  { name = "p", version = ">=1" },  # {\n  { name = "q" },\n]\n'
        '"quoted.key" = { inner.dotted = 1, x = "}" }\n'
        "[[ex]]\n"
        "ids = ['[', \"]\"]\n"
        "after = 2\n"
    )
    lines = key_lines(text)
    assert lines == {
        ("description",): 1,
        ("k",): 4,
        ("requires",): 5,
        ("requires", 0): 6,
        ("requires", 0, "name"): 6,
        ("requires", 0, "version"): 6,
        ("requires", 1): 7,
        ("requires", 1, "name"): 7,
        ("quoted.key",): 9,
        ("quoted.key", "inner", "dotted"): 9,
        ("quoted.key", "x"): 9,
        ("ex", 0): 10,
        ("ex", 0, "ids"): 11,
        ("ex", 0, "ids", 0): 11,
        ("ex", 0, "ids", 1): 11,
        ("ex", 0, "after"): 12,
    }
    assert tomllib.loads(text)["ex"][0]["after"] == 2  # (the text is TOML)


def test_key_lines_reads_a_200_kb_inline_table() -> None:
    # A line that made the former regular expressions backtrack for minutes.
    keys = [f"k{i}" for i in range(20_000)]
    line = "big = { " + ", ".join(f"{k} = {i}" for i, k in enumerate(keys)) + " }"
    assert len(line) > 200_000
    lines = key_lines(f"a = 1\n{line}\nb = 2\n")
    assert lines[("big", "k19999")] == 2 and lines[("b",)] == 3
    assert len(lines) == 20_003


@pytest.mark.parametrize(
    "line",
    [
        "x = { " + "a " * 100_000 + "}",
        "x" * 200_000,
        "x = " + "aT" * 100_000,
        "x = " + '"' + "\\" * 200_000,
        "[" + "a " * 100_000,
    ],
    ids=["words-without-equals", "no-equals", "scalar", "backslashes", "open-header"],
)
def test_key_lines_reads_200_kb_of_non_toml_and_goes_on(line: str) -> None:
    lines = key_lines(f"a = 1\n{line}\nb = 2\n")
    assert lines[("a",)] == 1
    assert len(line) >= 200_000


# -- what check refuses, and how it says so -----------------------------------------------------


def compile_problems(
    text: str, engine: progressor.Engine | None = None
) -> list[progressor.Problem]:
    engine = engine or progressor.Engine()
    with pytest.raises(progressor.ProgramError) as info:
        engine.compile(progressor.parse_program(text, "bad.toml", engine.registries))
    return list(info.value.problems)


def test_first_top_above_the_ceiling_is_refused_at_the_progression() -> None:
    text = GOOD.replace("first_top = 12", "first_top = 15")
    [problem] = compile_problems(text)
    assert problem.path == ("exercises", 2, "progression")
    assert problem.line == line_of(text, "first_top = 15")
    assert "first_top (15) is above the exercise's ceiling of reps (12)" in problem.message


@pytest.mark.parametrize("version", ["one", "1.0.0.beta-x", ""])
def test_a_version_must_be_a_version(version: str) -> None:
    text = GOOD.replace('version = "1.0.0"', f'version = "{version}"')
    [problem] = problems(text)
    assert problem.path == ("version",) and problem.line == line_of(text, "version = ")
    assert "is not a version" in problem.message and "'1.0.0'" in problem.message


def test_pep_440_versions_are_versions() -> None:
    text = GOOD.replace('version = "1.0.0"', 'version = "2.1rc1"')
    assert progressor.parse_program(text).version == "2.1rc1"


@pytest.mark.parametrize(
    ("written", "message"),
    [('"7"', "a valid number"), ("true", "a valid number")],
)
def test_a_rule_parameter_is_strict(written: str, message: str) -> None:
    text = GOOD.replace("pause_at = 7", f"pause_at = {written}")
    [problem] = compile_problems(text)
    assert problem.path == ("safety", "pain-flare", "pause_at")
    assert problem.line == line_of(text, "pause_at")
    assert message in problem.message
    if written == '"7"':
        assert problem.suggestion == "write the number without quotes: 7"


class _LimitParams(BaseModel):
    # A clinic's model, lax by pydantic's default: the strictness is progressor's.
    model_config = ConfigDict(extra="forbid")
    limit: float = 5
    codes: tuple[str, ...] = ()


class _Limit(SafetyRule):
    name = "clinic-limit"
    Params = _LimitParams

    def evaluate(self, week: WeekView, params: BaseModel) -> Iterator[Finding]:
        return iter(())


@progressor.hookimpl
def progressor_register_safety_rules(register: Callable[[SafetyRule], None]) -> None:
    register(_Limit())


def test_a_clinic_rules_parameters_are_as_strict_as_the_built_ins() -> None:
    plugin = types.ModuleType("clinic_limit")
    plugin.__dict__["progressor_register_safety_rules"] = progressor_register_safety_rules
    engine = progressor.Engine(plugins=[plugin])
    table = '\n[safety.clinic-limit]\nlimit = "6"\ncodes = ["a", "b"]\n'
    text = GOOD.replace("\n[safety.adherence]", table + "[safety.adherence]")
    [problem] = compile_problems(text, engine)
    assert problem.path == ("safety", "clinic-limit", "limit")
    # An array is still read for a tuple.
    text = GOOD.replace("\n[safety.adherence]", table.replace('"6"', "6") + "[safety.adherence]")
    engine.compile(progressor.parse_program(text))


def test_a_missing_id_is_located_at_its_exercise() -> None:
    text = GOOD.replace('id = "bridge"\n', "")
    [problem] = problems(text)
    assert problem.path == ("exercises", 2, "id") and problem.message == "Field required"
    assert problem.line == line_of(GOOD, 'id = "bridge"') - 1  # its [[exercises]] header
    inline = 'id = "x"\nversion = "1"\ntitle = "t"\nexercises = [\n  { name = "a" },\n]\n'
    assert ("exercises", 0, "id", 5) in {(*p.path, p.line) for p in problems(inline)}


def test_a_duplicate_id_is_located_at_its_second_use() -> None:
    text = GOOD.replace('id = "bridge"', 'id = "pelvic-tilt"')
    [problem] = problems(text)
    assert problem.path == ("exercises", 2, "id")
    assert problem.line == line_of(GOOD, 'id = "bridge"')
    assert problem.message == "exercise id 'pelvic-tilt' is used twice"


@pytest.mark.parametrize(
    ("written", "suggested"),
    [("brücke", "bruecke"), ("Knee to chest", "knee-to-chest"), ("étirement_1", "etirement-1")],
)
def test_an_id_that_is_not_an_id_is_explained_in_words(written: str, suggested: str) -> None:
    text = GOOD.replace('id = "bridge"', f'id = "{written}"')
    [problem] = problems(text)
    assert problem.line == line_of(text, written)
    assert problem.message == (
        "an id holds only lowercase letters a-z, digits and dashes, and starts with a letter "
        "or a digit"
    )
    assert problem.suggestion == f"e.g. {suggested!r}"


def test_check_reports_structure_names_and_parameters_in_one_round(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    text = (
        GOOD.replace('"double"', '"dubble"', 1)
        .replace("hold_s = 5 }", "hold = 5 }", 1)
        .replace("pause_at = 7", 'pause_at = "7"')
    )
    bad.write_text(text, encoding="utf-8")
    done = run("check", str(bad))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"{bad}:{line_of(text, 'pause_at')}: safety.pain-flare.pause_at: Input should be a "
        "valid number (write the number without quotes: 7)",
        f"{bad}:{line_of(text, 'hold = 5')}: exercises[0].dose.hold: unknown key "
        "(did you mean 'hold_s'?)",
        f"{bad}:{line_of(text, 'dubble')}: exercises[0].progression.strategy: unknown strategy "
        "'dubble' (did you mean 'double'?)",
    ]


def test_a_byte_order_mark_is_read_past(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode("utf-8"))
    assert progressor.load_program(path).id == "low-back-pain"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.replace("Low back", "L\xf6w back").encode("cp1252"))
    with pytest.raises(progressor.ProgramError) as info:
        progressor.load_program(path)
    [problem] = info.value.problems
    assert problem.line == line_of(GOOD, 'title = "Low back')
    assert "byte 0xf6 at column 11 " in problem.message  # (title = "L is ten characters)
