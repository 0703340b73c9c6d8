"""`progressor handout PATIENT`: the patient's handout for their newest week, from the store."""

from __future__ import annotations

from pathlib import Path

import click

from progressor.cli.common import engine_from_env, fail, plugin_options, write_document
from progressor.cli.store import newest, open_store, store_option

_HANDOUT_FORMATS = ("html", "pdf")


@click.command()
@click.argument("patient")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_HANDOUT_FORMATS),
    default="pdf",
    show_default=True,
    help="An HTML page, or the same page printed to PDF (needs headless Chromium).",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The file to write, e.g. handout.pdf.",
)
@store_option
@plugin_options
def handout(
    patient: str,
    fmt: str,
    output: Path,
    store_path: Path,
    plugins: tuple[str, ...],
    block: tuple[str, ...],
) -> None:
    """Write PATIENT's handout for their newest computed week: the exercises in plain words,
    when to stop, what changed and why, and the clinic's contact (see docs/handout.md)."""
    exporters = engine_from_env(plugins, block).registries.exporters
    if fmt not in exporters:
        fail(f"the {fmt} exporter is not loaded (was it blocked?)")
    with open_store(store_path) as store:
        program, result, _, _ = newest(store, patient)
    write_document(exporters[fmt].component, program, result, output)
    click.echo(f"{patient}: week {result.prescription.week}'s handout written to {output}")


COMMANDS = (handout,)
