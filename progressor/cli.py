"""The `progressor` command line: each command parses its arguments and calls the library.

Exit codes: 0 done; 1 invalid input (a bad program, an unreadable log); 2 wrong usage;
3 done, but some log records were set aside (each is reported on stderr).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn

import click

from progressor.engine import CompiledProgram, Engine
from progressor.errors import ProgressorError
from progressor.export import EXPORTERS, prescription_document
from progressor.loading import Log, load_log, load_program
from progressor.models import Enrollment, Program, SetAside, StepResult
from progressor.report import decision_trace, plugin_table, simulation_table

EXIT_SET_ASIDE = 3


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _compile(engine: Engine, path: Path) -> CompiledProgram:
    try:
        return engine.compile(load_program(path))
    except ProgressorError as exc:
        _fail(str(exc))


def _log(path: Path) -> Log:
    try:
        return load_log(path)
    except ProgressorError as exc:
        _fail(str(exc))


def _report_set_aside(items: Sequence[SetAside]) -> None:
    for item in items:
        click.echo(f"set aside: {item}", err=True)


def _replay(
    compiled: CompiledProgram, log: Log, start: dt.date | None, patient: str | None
) -> tuple[Enrollment, list[StepResult]]:
    patients = sorted({r.patient for r in log.records if r.patient is not None})
    if patient is None and len(patients) > 1:
        _fail(f"the log holds several patients ({', '.join(patients)}): choose one with --patient")
    name = patient or (patients[0] if patients else "patient")
    records = [r for r in log.records if r.patient in (None, name)]
    if start is None:
        if not records:
            _fail("the log has no usable records: give --start to compute week 1")
        start = min(r.date for r in records)
    enrollment = Enrollment(patient=name, program=compiled.program.id, start=start)
    try:
        return enrollment, compiled.replay(enrollment, records)
    except ProgressorError as exc:
        _fail(str(exc))


def _finish(log: Log, results: Iterable[StepResult]) -> None:
    aside = [*log.set_aside, *(s for r in results for s in r.set_aside)]
    _report_set_aside(aside)
    if aside:
        sys.exit(EXIT_SET_ASIDE)


def _date(_: click.Context, __: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


_program = click.argument("program", type=click.Path(path_type=Path, dir_okay=False))
_log_option = click.option(
    "--log",
    "log_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The patient's log: .jsonl or .csv (see the README for the format).",
)
_start = click.option(
    "--start", callback=_date, help="Enrollment start (YYYY-MM-DD); default: the first record."
)
_patient = click.option("--patient", help="Whose records to use when the log holds several.")


@click.group()
@click.version_option(package_name="progressor")
def main() -> None:
    """progressor: next week's exercise program from rules, explained and safe by default."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(paths: tuple[Path, ...]) -> None:
    """Validate program files; print every problem with file, line and key."""
    engine = Engine()
    bad = 0
    for path in paths:
        try:
            engine.compile(load_program(path))
        except ProgressorError as exc:
            bad += 1
            click.echo(str(exc), err=True)
        else:
            click.echo(f"{path}: ok")
    if bad:
        sys.exit(1)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the program format (for TOML editors)."""
    document = Program.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    click.echo(json.dumps(document, indent=2, sort_keys=True))


@main.command(name="next")
@_program
@_log_option
@_start
@_patient
@click.option(
    "--format", "fmt", type=click.Choice(sorted(EXPORTERS)), default="toml", show_default=True
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the prescription here instead of standard output.",
)
def next_week(
    program: Path,
    log_path: Path,
    start: dt.date | None,
    patient: str | None,
    fmt: str,
    out: Path | None,
) -> None:
    """Compute one patient's next week from a program and a log."""
    compiled = _compile(Engine(), program)
    log = _log(log_path)
    enrollment, results = _replay(compiled, log, start, patient)
    if not results:
        results = [compiled.step(compiled.first_week(enrollment), [])]
    text = EXPORTERS[fmt](prescription_document(compiled.program, results[-1]))
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
    _finish(log, results)


@main.command()
@_program
@_log_option
@_start
@_patient
def simulate(program: Path, log_path: Path, start: dt.date | None, patient: str | None) -> None:
    """Replay a log week by week: dose, action and reason per week and exercise."""
    compiled = _compile(Engine(), program)
    log = _log(log_path)
    _, results = _replay(compiled, log, start, patient)
    click.echo(simulation_table(results))
    _finish(log, results)


@main.command()
@_program
@_log_option
@_start
@_patient
@click.option(
    "--week",
    type=click.IntRange(min=1),
    required=True,
    help="The week whose decisions to explain (1 = the first week).",
)
def explain(
    program: Path, log_path: Path, start: dt.date | None, patient: str | None, week: int
) -> None:
    """Print the full decision trace of one week: every rule, what it saw, what won."""
    compiled = _compile(Engine(), program)
    log = _log(log_path)
    _, results = _replay(compiled, log, start, patient)
    if week > len(results):
        _fail(f"the log covers {len(results)} weeks; there is no week {week}")
    click.echo(decision_trace(results[week - 1], week))
    _finish(log, [results[week - 1]])


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List the loaded plugins and what each registered."""
    rows = plugin_table(Engine())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(row["name"])
        for kind, names in row["registered"].items():
            click.echo(f"  {kind}: {', '.join(names)}")


@main.command()
@click.option("--patients", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--weeks", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--program",
    "program_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Default: the embedded low-back-pain program.",
)
def demo(patients: int, weeks: int, seed: int, program_path: Path | None) -> None:
    """A synthetic clinic on the seed program: everyone's next week, as a table."""
    from progressor.demo import run_demo

    click.echo(run_demo(program_path, patients, weeks, seed))
