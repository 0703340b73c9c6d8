"""Scenarios: a patient's weeks in a TOML file, replayed through the weekly step and checked.

The format (docs/scenarios.md): a program (inline or a program.toml beside it), the plugins
it needs, and for each week the records logged and what the week must give (actions, doses,
status, flags, alerts). `load_scenario` reads one with located errors and suggestions;
`run_scenario` replays it and raises ScenarioFailure with every difference. progressor.testing
collects each scenario.toml as a pytest test.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import progressor
from progressor.core.models import UNKNOWN_KEY_ERRORS, StartDay
from progressor.errors import ScenarioError as ScenarioError
from progressor.errors import did_you_mean
from progressor.reading import key_lines, log_format

SCENARIO_FILE = "scenario.toml"
PROGRAM_FILE = "program.toml"


# -- the format ------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExerciseExpectation(_Strict):
    """What one exercise's decision and next-week state must be; unset keys are not checked."""

    action: progressor.Action | None = None
    rule: str | None = None
    dose: progressor.Dose | None = None
    status: Literal["active", "paused"] | None = None
    reason_contains: str | None = None
    matched: tuple[str, ...] | None = None


class WeekExpectation(_Strict):
    status: Literal["active", "paused"] | None = None
    flags: tuple[str, ...] | None = None
    alerts: tuple[str, ...] | None = None
    set_aside: int | None = Field(default=None, ge=0)
    exercises: dict[str, ExerciseExpectation] = Field(default_factory=dict)


class WeekSpec(_Strict):
    log: str | None = None
    allow_set_aside: bool = False
    resume: bool | tuple[str, ...] = False
    expect: WeekExpectation = WeekExpectation()


class ScenarioSpec(_Strict):
    description: str = ""
    program: str | None = None
    patient: str = "patient"
    start: StartDay
    plugins: tuple[str, ...] = ()
    entry_points: bool = False
    overrides: dict[str, progressor.Dose] = Field(default_factory=dict)
    weeks: tuple[WeekSpec, ...]

    @field_validator("weeks")
    @classmethod
    def _some_weeks(cls, weeks: tuple[WeekSpec, ...]) -> tuple[WeekSpec, ...]:
        # A validator rather than min_length: pydantic would also report a length error for
        # a list whose only item is invalid.
        if not weeks:
            raise ValueError("a scenario needs at least one [[weeks]] table")
        return weeks


@dataclass(frozen=True)
class Scenario:
    """A scenario file read and checked: its folder, its spec and its program."""

    path: Path
    spec: ScenarioSpec
    program: progressor.Program

    @property
    def name(self) -> str:
        return self.path.parent.name


class ScenarioFailure(AssertionError):
    """The engine's weeks differ from what the scenario expects; the message says where."""


def _problems(
    error: ValidationError, source: str, lines: Mapping[Any, int]
) -> list[progressor.Problem]:
    problems = []
    for item in error.errors():
        path = tuple(item["loc"])
        if item["type"] in UNKNOWN_KEY_ERRORS:
            hint = did_you_mean(str(path[-1]), _known_keys(path[:-1]))
            problems.append(_located("unknown key", source, lines, *path, hint=hint))
        else:
            problems.append(_located(item["msg"], source, lines, *path))
    return problems


def _known_keys(path: tuple[str | int, ...]) -> Iterable[str]:
    shape = tuple("*" if isinstance(p, int) else p for p in path)
    if len(shape) == 5 and shape[:4] == ("weeks", "*", "expect", "exercises"):
        return ExerciseExpectation.model_fields
    if (len(shape) == 6 and shape[5] == "dose") or (len(shape) == 2 and shape[0] == "overrides"):
        return progressor.Dose.model_fields
    models: dict[tuple[str, ...], type[BaseModel]] = {
        (): ScenarioSpec,
        ("weeks", "*"): WeekSpec,
        ("weeks", "*", "expect"): WeekExpectation,
    }
    model = models.get(shape)
    return model.model_fields if model else ()


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario.toml and its program; raise ScenarioError with every located problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        raise ScenarioError([progressor.Problem(f"cannot read: {exc.strerror}", source)]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([progressor.Problem(f"not valid TOML: {exc}", source)]) from None
    lines = key_lines(text)
    try:
        spec = ScenarioSpec.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_problems(exc, source, lines)) from None
    program = _load_program(path, spec, lines)
    problems = [
        *_missing_files(path, spec, lines),
        *_unknown_exercises(source, spec, program, lines),
    ]
    if problems:
        raise ScenarioError(problems)
    return Scenario(path, spec, program)


def _located(
    message: str, source: str, lines: Mapping[Any, int], *path: str | int, hint: str | None = None
) -> progressor.Problem:
    line = next((lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in lines), None)
    return progressor.Problem(message, source, line, path, hint)


def _load_program(path: Path, spec: ScenarioSpec, lines: Mapping[Any, int]) -> progressor.Program:
    folder, source = path.parent, str(path)
    if spec.program is None and not (folder / PROGRAM_FILE).is_file():
        hint = f"set 'program' to a program file, or put a {PROGRAM_FILE} next to {SCENARIO_FILE}"
        raise ScenarioError([progressor.Problem("no program", source, None, (), hint)])
    program_path = folder / (spec.program or PROGRAM_FILE)
    try:
        return progressor.load_program(program_path)
    except progressor.ProgramError as exc:
        where = _located(f"the program {program_path} is not valid", source, lines, "program")
        raise ScenarioError([where, *exc.problems]) from None


def _missing_files(
    path: Path, spec: ScenarioSpec, lines: Mapping[Any, int]
) -> Iterator[progressor.Problem]:
    for index, week in enumerate(spec.weeks):
        if week.log is None:
            continue
        log = path.parent / week.log
        if not log.is_file():
            yield _located(f"no log file {log}", str(path), lines, "weeks", index, "log")
        else:
            try:
                log_format(log)  # (the reader's own list of formats)
            except progressor.LogError:
                message = f"unknown log format {log.suffix!r}"
                hint = "use .jsonl, .csv or .parquet"
                yield _located(message, str(path), lines, "weeks", index, "log", hint=hint)


def _unknown_exercises(
    source: str, spec: ScenarioSpec, program: progressor.Program, lines: Mapping[Any, int]
) -> Iterator[progressor.Problem]:
    known = [e.id for e in program.exercises]
    named: list[tuple[str, tuple[str | int, ...]]] = [(n, ("overrides", n)) for n in spec.overrides]
    for index, week in enumerate(spec.weeks):
        resumed = week.resume if isinstance(week.resume, tuple) else ()
        named += [(n, ("weeks", index, "resume")) for n in resumed]
        named += [(n, ("weeks", index, "expect", "exercises", n)) for n in week.expect.exercises]
    for name, key in named:
        if name not in known:
            message = f"unknown exercise {name!r} (the program has {', '.join(known)})"
            yield _located(message, source, lines, *key, hint=did_you_mean(name, known))


# -- replaying a scenario -----------------------------------------------------------------------


def run_scenario(
    scenario: Scenario, engine: progressor.Engine | None = None
) -> list[progressor.StepResult]:
    """Replay every week; raise ScenarioFailure at the first week that differs from `expect`."""
    spec = scenario.spec
    if engine is None:
        engine = scenario_engine(spec, str(scenario.path))
    try:
        compiled = engine.compile(scenario.program)
        enrollment = progressor.Enrollment(
            patient=spec.patient,
            program=scenario.program.id,
            start=spec.start,
            overrides=spec.overrides,
        )
        prescription = compiled.first_week(enrollment)
    except progressor.ProgramError as exc:
        raise ScenarioError(exc.problems) from None
    except progressor.ProgressorError as exc:
        raise ScenarioError([progressor.Problem(str(exc), str(scenario.path))]) from None
    results: list[progressor.StepResult] = []
    for number, week in enumerate(spec.weeks, start=1):
        if week.resume:
            names = week.resume if isinstance(week.resume, tuple) else ()
            prescription = compiled.resume(prescription, names)
        records, aside = _read_log(scenario.path.parent, week)
        result = compiled.step(prescription, records)
        problems = [] if week.allow_set_aside else _set_aside_problems(aside, result)
        problems += _compare(week.expect, result, len(aside))
        if problems:
            raise ScenarioFailure(_report(scenario, number, prescription, problems, len(results)))
        results.append(result)
        prescription = result.prescription
    return results


def scenario_engine(spec: ScenarioSpec, source: str | None = None) -> progressor.Engine:
    """The engine a scenario asks for: the built-ins, plus its plugins."""
    extra: dict[str, Any] = {"entry_points": True} if spec.entry_points else {}
    try:
        return progressor.Engine(spec.plugins, **extra)
    except (progressor.ProgressorError, ImportError) as exc:
        problem = progressor.Problem(f"cannot load plugins: {exc}", source, path=("plugins",))
        raise ScenarioError([problem]) from None


def _read_log(
    folder: Path, week: WeekSpec
) -> tuple[tuple[progressor.Record, ...], tuple[progressor.SetAside, ...]]:
    if week.log is None:
        return (), ()
    try:
        log = progressor.load_log(folder / week.log)
    except progressor.LogError as exc:
        raise ScenarioError([progressor.Problem(str(exc))]) from None
    return log.records, log.set_aside


def _set_aside_problems(
    read: Sequence[progressor.SetAside], result: progressor.StepResult
) -> list[str]:
    lines = [f"set aside by the log reader: {s}" for s in read]
    lines += [f"set aside by the step: {s.record}: {s.reason}" for s in result.set_aside]
    if lines:
        lines.append("(set allow_set_aside = true in this week if that is intended)")
    return lines


def _compare(expect: WeekExpectation, result: progressor.StepResult, read_aside: int) -> list[str]:
    following = result.prescription
    out: list[str] = []
    _check(out, "status", expect.status, following.status)
    if expect.flags is not None:
        _check(out, "flags", sorted(set(expect.flags)), sorted({f.code for f in following.flags}))
    if expect.alerts is not None:
        _check(out, "alerts", sorted(set(expect.alerts)), sorted({a.rule for a in result.alerts}))
    if expect.set_aside is not None:
        _check(out, "set_aside", expect.set_aside, read_aside + len(result.set_aside))
    decisions = {d.exercise: d for d in result.decisions}
    for name, wanted in expect.exercises.items():
        decision, state = decisions[name], following.exercises[name]
        found: list[str] = []
        _check(found, "action", wanted.action, decision.action)
        _check(found, "rule", wanted.rule, decision.rule)
        _check(found, "status", wanted.status, state.status)
        if wanted.dose is not None:
            _check_dose(found, wanted.dose, state.dose)
        if wanted.reason_contains is not None and wanted.reason_contains not in decision.reason:
            found.append(f"reason: expected to contain {wanted.reason_contains!r}")
        if wanted.matched is not None:
            seen = sorted({m.rule for m in decision.matches})
            missing = [r for r in wanted.matched if r not in seen]
            if missing:
                found.append(f"matched: expected {missing} among the matches, got {seen}")
        if found:
            out += [f"exercise {name!r}, {line}" for line in found]
            out.append(f"  decision: {decision.action} by {decision.rule} ({decision.plugin})")
            out.append(f"  reason: {decision.reason}")
    return out


def _check(out: list[str], field: str, expected: object, got: object) -> None:
    if expected is not None and expected != got:
        out.append(f"{field}: expected {expected!r}, got {got!r}")


def _check_dose(out: list[str], expected: progressor.Dose, got: progressor.Dose) -> None:
    want, have = expected.model_dump(exclude_none=True), got.model_dump(exclude_none=True)
    for key in sorted(set(want) | set(have)):
        if want.get(key) != have.get(key):
            wanted = repr(want[key]) if key in want else "(not set)"
            found = repr(have[key]) if key in have else "(not set)"
            out.append(f"dose.{key}: expected {wanted}, got {found}")


def _report(
    scenario: Scenario,
    number: int,
    prescription: progressor.Prescription,
    problems: Sequence[str],
    passed: int,
) -> str:
    end = prescription.last_day
    title = f" ({scenario.spec.description})" if scenario.spec.description else ""
    lines = [
        f"scenario {scenario.path.parent}{title}",
        f"week {number} ({prescription.start} to {end}):",
        *(f"  {p}" for p in problems),
    ]
    if passed:
        lines.append(f"(weeks 1 to {passed} matched)")
    if number < len(scenario.spec.weeks):
        lines.append(f"(weeks after week {number} were not checked)")
    return "\n".join(lines)
