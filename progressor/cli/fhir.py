"""`progressor fhir export|import`: FHIR R4 out and in (progressor.fhir does the work)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from types import ModuleType

import click

from progressor.cli.common import (
    EXIT_SET_ASIDE,
    engine_from_env,
    fail,
    parse_date,
    plugin_options,
)


def _fhir() -> ModuleType:
    try:
        import progressor.fhir
    except ImportError:
        fail("FHIR needs the optional extra: pip install 'progressor[fhir]'")
    return progressor.fhir


def _write(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text)
        return
    try:
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")


_out = click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), help="Write here, not to stdout."
)


@click.group()
def fhir() -> None:
    """FHIR R4: export a program or a prescription, import a Bundle of Observations."""


@fhir.command()
@click.argument("program", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--log",
    "log_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A patient's log: export next week's prescription (as `next` computes it) as a "
    "CarePlan. Without it, the program is exported as a PlanDefinition.",
)
@click.option("--encoding", help="The log's text encoding (default: UTF-8).")
@click.option("--start", callback=parse_date, help="Enrollment start.")
@click.option("--patient", help="Whose records to use when the log holds several.")
@click.option("--as-of", callback=parse_date, help="Judge weeks ended by.")
@_out
@plugin_options
def export(
    program: Path,
    log_path: Path | None,
    encoding: str | None,
    start: dt.date | None,
    patient: str | None,
    as_of: dt.date | None,
    out: Path | None,
    plugins: tuple[str, ...],
    block: tuple[str, ...],
) -> None:
    """Write PROGRAM as a PlanDefinition, or (with --log) next week's CarePlan, as JSON."""
    from progressor.cli import commands

    module = _fhir()
    compiled = commands._compile(engine_from_env(plugins, block), program)
    if log_path is None:
        _write(module.plan_definition(compiled.program).model_dump_json(indent=2), out)
        return
    log = commands._log(log_path, encoding)
    timeline = commands._replay(compiled, log, log_path, start, patient, as_of, ())
    plan = module.care_plan(compiled.program, timeline.results[-1])
    _write(plan.model_dump_json(indent=2), out)
    sys.exit(commands._exit_code(log, timeline, timeline.results))


@fhir.command(name="import")
@click.argument("bundle", type=click.Path(path_type=Path, dir_okay=False))
@_out
def import_bundle(bundle: Path, out: Path | None) -> None:
    """Read a Bundle of Observations; write its records as JSON lines (stdout or --out).

    Set-aside records are reported on stderr with their Bundle entry (exit code 3)."""
    module = _fhir()
    try:
        text = bundle.read_text(encoding="utf-8-sig")
        imported = module.read_bundle(text, str(bundle), today=dt.date.today())
    except OSError as exc:
        fail(f"cannot read {bundle}: {exc.strerror}")
    except UnicodeDecodeError as exc:
        fail(f"{bundle}: not UTF-8 text (byte {exc.start})")
    except module.FhirError as exc:
        fail(str(exc))
    lines = [r.model_dump_json(exclude_defaults=True) for r in imported.log.records]
    _write("\n".join(lines), out)
    for item in imported.set_aside:
        click.echo(f"set aside: {item}", err=True)
    sys.exit(EXIT_SET_ASIDE if imported.set_aside else 0)


COMMANDS = (fhir,)
