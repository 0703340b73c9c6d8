"""What every command shares: exit codes, the engine from the environment, common options."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NoReturn, TypeVar

import click

from progressor.engine import Engine
from progressor.errors import ProgressorError, did_you_mean
from progressor.plugins import ALLOW_ENV, BLOCK_ENV, env_list, not_installed

EXIT_SET_ASIDE = 3
EXIT_ALERT_UNDELIVERED = 4
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
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None
