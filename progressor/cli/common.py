"""What every command shares: exit codes, the engine from the environment, common options."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from pydantic import ValidationError

from progressor.core.components import Exporter
from progressor.core.engine import Engine
from progressor.core.models import LATEST_START, UNKNOWN_KEY_ERRORS, Dose, Program, StepResult
from progressor.core.plugins import ALLOW_ENV, BLOCK_ENV, env_list, not_installed
from progressor.errors import ProgressorError, did_you_mean

EXIT_SET_ASIDE = 3
EXIT_ALERT_UNDELIVERED = 4
EXIT_PLUGIN_FAILURE = 5  # a plugin failed for a patient: their week is held and flagged
EXIT_BUSY = 6  # another run of the same store holds its lock: this one did nothing
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def engine_from_env(plugins: Sequence[str], block: Sequence[str]) -> Engine:
    """Built-ins, installed plugins allowed by PROGRESSOR_PLUGINS, and --plugin modules."""
    warn_not_installed()
    try:
        return engine_factory(plugins, block)()
    except ProgressorError as exc:
        fail(str(exc))


def warn_not_installed() -> None:
    """On stderr, once per command: allowed plugins that are not installed (they load
    nothing, which must not pass unnoticed)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        root = ctx.find_root()
        if root.meta.get("allow-list checked"):
            return
        root.meta["allow-list checked"] = True
    warning = not_installed(env_list(os.environ.get(ALLOW_ENV)))
    if warning:
        click.echo(f"warning: {warning}", err=True)


def format_option(command: F) -> F:
    """--format: an exporter's name; by default the first one registered (DEFAULT_PLUGINS
    order), so the core names no built-in exporter."""
    return click.option(
        "--format",
        "fmt",
        help="An exporter (see `progressor plugins --all`); default: the first registered "
        "(toml, of the built-ins).",
    )(command)


def exporter_name(engine: Engine, fmt: str | None) -> str:
    """`fmt`, or the first exporter registered when it is None; an unknown one fails."""
    exporters = engine.registries.exporters
    if fmt is None:
        first = next(iter(exporters), None)
        if first is None:
            fail("no exporter is registered (were the built-ins blocked?)")
        return first
    if fmt not in exporters:
        hint = did_you_mean(fmt, exporters)
        fail(
            f"unknown format {fmt!r}"
            + (f" ({hint})" if hint else "")
            + f"; formats: {', '.join(sorted(exporters))}"
        )
    return fmt


def write_document(
    exporter: Exporter, program: Program, result: StepResult, out: Path | None
) -> None:
    """The exporter's document in `out`, or on standard output (a binary format's bytes as
    they are, for `> file.pdf`); a failing exporter or an unwritable file is a clear error."""
    try:
        if out is None and not exporter.binary:
            click.echo(exporter.export(program, result), nl=False)
            return
        data = exporter.export_bytes(program, result)
    except ProgressorError as exc:
        fail(str(exc))
    if out is None:
        click.echo(data, nl=False)  # (bytes: click writes them to the binary stream)
        return
    try:
        out.write_bytes(data)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")


def plugin_options(command: F) -> F:
    """--plugin and --block, on every command."""
    command = click.option(
        "--block",
        multiple=True,
        metavar="NAME",
        help=f"Block a built-in component or plugin (repeatable; also {BLOCK_ENV}). "
        "Essential safety rules cannot be blocked.",
    )(command)
    return click.option(
        "--plugin",
        "plugins",
        multiple=True,
        metavar="MODULE",
        help="Load this plugin module as well (repeatable).",
    )(command)


def engine_factory(plugins: Sequence[str], block: Sequence[str]) -> Callable[[], Engine]:
    """A picklable way for worker processes to build the same engine as the command."""
    return partial(
        Engine,
        tuple(plugins),
        block=[*(env_list(os.environ.get(BLOCK_ENV)) or []), *block],
        entry_points=True,
        allow=env_list(os.environ.get(ALLOW_ENV)),
    )


def parse_date(_: click.Context, __: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None
    if day > LATEST_START:
        raise click.BadParameter(f"{value} is after {LATEST_START}: check the year")
    return day


dose_option = click.option(
    "--dose",
    "doses",
    multiple=True,
    metavar="EXERCISE:FIELD=VALUE[,...]",
    help="A clinician's starting dose for one exercise, e.g. bridge:reps=3,hold_s=3.",
)


def starting_doses(program: Program, specs: Sequence[str]) -> dict[str, Dose]:
    """The starting doses of `--dose EXERCISE:FIELD=VALUE,...` options (a usage error when
    an exercise or a field is unknown); the engine checks them as it checks any dose."""
    overrides = {}
    for spec in specs:
        exercise, _, fields = spec.partition(":")
        if exercise not in {e.id for e in program.exercises}:
            hint = did_you_mean(exercise, [e.id for e in program.exercises])
            fail(
                f"--dose {spec!r}: the program has no exercise {exercise!r}"
                + (f" ({hint})" if hint else "")
            )
        overrides[exercise] = parse_dose(program.exercise(exercise).dose, fields.split(","))
    return overrides


def parse_dose(base: Dose, assignments: Sequence[str]) -> Dose:
    """`reps=6 hold_s=5` applied to a dose; a bad field or value is a usage error."""
    update: dict[str, object] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: write FIELD=VALUE, e.g. reps=6")
        update[name.strip()] = None if value.strip() in ("", "none") else value.strip()
    try:
        return Dose.model_validate({**base.model_dump(exclude_none=True), **update})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            hint = (
                did_you_mean(field, Dose.model_fields)
                if error["type"] in UNKNOWN_KEY_ERRORS
                else None
            )
            message = "not a dose field" if error["type"] in UNKNOWN_KEY_ERRORS else error["msg"]
            problems.append(f"{field}: {message}" + (f" ({hint})" if hint else ""))
        raise click.BadParameter("; ".join(problems)) from None
