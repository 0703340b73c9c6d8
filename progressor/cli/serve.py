"""`progressor serve` and `progressor token create`: the HTTP service from the command line.

The service itself lives in progressor.serve (it needs the serve extra: fastapi, uvicorn);
`token create` needs only the standard library, so tokens can be made on any machine.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from progressor.cli.common import fail, plugin_options, warn_not_installed
from progressor.errors import ProgressorError
from progressor.serve.settings import (
    DEFAULT_TOKENS,
    MAX_BODY,
    MAX_RECORDS,
    PROGRAMS,
    SETTINGS_ENV,
    TIMEOUT_S,
    TOKENS_ENV,
    ServeSettings,
    default_tokens,
)
from progressor.serve.tokens import ROLES, create_token, read_tokens

_NO_EXTRA = "progressor serve needs the serve extra: pip install 'progressor[serve]'"

tokens_option = click.option(
    "--tokens",
    "tokens_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=default_tokens,
    show_default=f"{DEFAULT_TOKENS}, or {TOKENS_ENV}",
    help="The tokens file (JSON: hashes, roles, names; mode 0600).",
)


@click.command()
@click.option(
    "--store",
    "store_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The clinic's store: served at /v1/patients and /v1/review (without it: 503).",
)
@click.option(
    "--programs",
    "programs_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=PROGRAMS,
    show_default="the shipped programs",
    help="The programs a request may name by id and version (*.toml).",
)
@tokens_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--max-body",
    type=click.IntRange(min=1),
    default=MAX_BODY,
    show_default=True,
    help="The largest request body, in bytes (larger: 413).",
)
@click.option(
    "--max-records",
    type=click.IntRange(min=1),
    default=MAX_RECORDS,
    show_default=True,
    help="The most records in one request (more: 413).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=TIMEOUT_S,
    show_default=True,
    help="Seconds a request may take (longer: 503).",
)
@plugin_options
def serve(
    store_path: Path | None,
    programs_dir: Path,
    tokens_path: Path,
    host: str,
    port: int,
    workers: int,
    max_body: int,
    max_records: int,
    timeout_s: float,
    plugins: tuple[str, ...],
    block: tuple[str, ...],
) -> None:
    """Serve progressor over HTTP (OpenAPI at /openapi.json, pages at /docs)."""
    try:
        import uvicorn

        from progressor.serve.app import create_app
    except ImportError:
        fail(_NO_EXTRA)
    warn_not_installed()
    settings = ServeSettings(
        tokens=tokens_path,
        programs=programs_dir,
        store=store_path,
        max_body=max_body,
        max_records=max_records,
        timeout_s=timeout_s,
        plugins=plugins,
        block=block,
    )
    try:
        app = create_app(settings)  # (every program checked, a bad one refused, before listening)
        for program, need in app.state.catalog.unavailable.items():
            click.echo(f"warning: the shipped program {program!r} is left out: {need}", err=True)
        if not read_tokens(tokens_path):
            fail(
                f"{tokens_path}: no tokens; create one with: progressor token create --role service"
            )
    except ProgressorError as exc:
        fail(str(exc))
    os.environ[SETTINGS_ENV] = settings.to_json()
    with _balanced(workers) as http:
        uvicorn.run(
            "progressor.serve.app:factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            http=http,
            access_log=False,  # (ours is structured, and leaves out the query string)
        )


@contextlib.contextmanager
def _balanced(workers: int) -> Iterator[Any]:
    """uvicorn's HTTP protocol for `workers`: with more than one, the one that shares the
    connections out evenly between them (progressor.serve.balance), on a board in a
    directory of its own, removed when serving ends."""
    from progressor.serve.balance import BALANCE_ENV, BalancedProtocol, board_for

    os.environ.pop(BALANCE_ENV, None)  # (one inherited from another server is not ours)
    if workers < 2:
        yield "auto"
        return
    with tempfile.TemporaryDirectory(prefix="progressor-serve-") as directory:
        os.environ[BALANCE_ENV] = board_for(workers, directory)
        yield BalancedProtocol


@click.group()
def token() -> None:
    """Bearer tokens of `progressor serve`."""


@token.command(name="create")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    required=True,
    help="service: compute, enroll, post records, read; clinician: that and resume, override, "
    "acknowledge; readonly: read only (docs/serve.md).",
)
@click.option("--name", help="A name for the access log (default: ROLE-N).")
@tokens_option
def token_create(role: str, name: str | None, tokens_path: Path) -> None:
    """Create a token; print it once (only its SHA-256 hash is kept)."""
    try:
        secret, entry = create_token(tokens_path, role, name)
    except (ProgressorError, OSError) as exc:
        fail(str(exc))
    click.echo(secret)
    click.echo(
        f"token {entry.name!r} ({entry.role}) added to {tokens_path}; it is shown only this once",
        err=True,
    )


COMMANDS = (serve, token)
