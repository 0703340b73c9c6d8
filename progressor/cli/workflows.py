"""The clinic's workflows from the command line: list patients, the quarantine and its fixes,
re-enrolment, discharge and voiding a record (docs/store.md, "Clinic workflows").

Each command parses its arguments and calls the store (progressor.store.clinic and
progressor.store.database); the store keeps who, when and why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path

import click

from progressor.cli.common import EXIT_SET_ASIDE, engine_from_env, fail, parse_date, plugin_options
from progressor.cli.store import open_store, store_option, who_option
from progressor.errors import ProgressorError
from progressor.reading import load_program
from progressor.store.clinic import PATIENT_STATUSES, PatientStatus

note_option = click.option(
    "--note", required=True, help="Why: kept with the change in the store's audit trail."
)
json_option = click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")


@click.command()
@click.option("--status", type=click.Choice(PATIENT_STATUSES), help="Only patients in it.")
@click.option("--program", help="Only patients on this program id.")
@json_option
@store_option
def patients(
    status: PatientStatus | None, program: str | None, as_json: bool, store_path: Path
) -> None:
    """List the store's patients: program and version, status, newest week, start."""
    with open_store(store_path) as store:
        entries = store.patients(status, program)
    if as_json:
        rows = [dataclasses.asdict(e) | {"start": e.start.isoformat()} for e in entries]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not entries:
        click.echo("no patients match", err=True)
    for e in entries:
        week = f"week {e.week}" if e.week is not None else "no week"
        click.echo(
            f"{e.patient}  {e.program} {e.program_version}  {e.status}  {week}  "
            f"start {e.start}  enrolled {e.enrolled_at[:10]}"
        )


@click.group(invoke_without_command=True)
@click.option("--patient", help="Only the lines whose text names this patient.")
@json_option
@store_option
@click.pass_context
def quarantine(ctx: click.Context, patient: str | None, as_json: bool, store_path: Path) -> None:
    """List the lines imports set aside (id, file, line, reason, text, state)."""
    if ctx.invoked_subcommand is not None:
        return
    with open_store(store_path) as store:
        entries = store.quarantined(patient)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(e) for e in entries], indent=2))
        return
    if not entries:
        click.echo("the quarantine is empty" if patient is None else "no line names them")
    for e in entries:
        click.echo(f"{e.id}  {e.state}  {e.source}:{e.line}: {e.reason}")
        click.echo(f"    {e.text}")
        if e.fix is not None:
            click.echo(f"    fixed as: {e.fix}")


@quarantine.command()
@click.argument("entry", type=int)
@click.option("--line", "text", help="The fixed line (JSONL: one JSON record with its patient).")
@click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A log file (JSONL or CSV with its header) holding the fixed line.",
)
@note_option
@who_option
@store_option
def reimport(
    entry: int, text: str | None, path: Path | None, note: str, who: str, store_path: Path
) -> None:
    """Import the fixed text of quarantined line ENTRY the way `import` does; the line is
    kept, marked fixed."""
    if (text is None) == (path is None):
        fail("give the fixed line with --line TEXT or --file PATH (one of them)")
    with open_store(store_path) as store:
        try:
            report = store.reimport(entry, path or [text or ""], note, who)
        except ProgressorError as exc:
            fail(str(exc))
    click.echo(
        f"line {entry}: {report.added} added, {report.duplicates} already stored, "
        f"{len(report.quarantined)} quarantined"
    )
    for item in report.quarantined:
        click.echo(f"  quarantined: {item.source}:{item.line}: {item.reason}", err=True)
    if report.quarantined or not report.added + report.duplicates:
        click.echo(f"line {entry} is not fixed: it still waits in the quarantine", err=True)
        sys.exit(EXIT_SET_ASIDE)
    click.echo(f"line {entry} fixed by {who}")


@click.command()
@click.argument("patient")
@click.option(
    "--program", "program_path", required=True, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option("--start", callback=parse_date, help="First day on the new program (default: today).")
@note_option
@who_option
@store_option
@plugin_options
def reenroll(
    patient: str,
    program_path: Path,
    start: dt.date | None,
    note: str,
    who: str,
    store_path: Path,
    plugins: tuple[str, ...],
    block: tuple[str, ...],
) -> None:
    """Move PATIENT onto another program or program version; continuing exercises keep
    their dose within the new floor and ceiling."""
    try:
        program = load_program(program_path)
        compiled = engine_from_env(plugins, block).compile(program)
    except ProgressorError as exc:
        fail(str(exc))
    with open_store(store_path) as store:
        try:
            store.add_program(program, program_path.read_text(encoding="utf-8"))
            enrollment = store.reenroll(patient, compiled, start or dt.date.today(), note, who)
        except ProgressorError as exc:
            fail(str(exc))
    click.echo(
        f"{patient}: re-enrolled on {program.id} {program.version} from {enrollment.start} by {who}"
    )
    for exercise in program.exercises:
        carried = enrollment.overrides.get(exercise.id)
        dose = (carried or exercise.dose).describe()
        click.echo(f"  {exercise.id}: {dose} ({'carried over' if carried else 'start dose'})")


@click.command()
@click.argument("patient")
@note_option
@who_option
@store_option
def discharge(patient: str, note: str, who: str, store_path: Path) -> None:
    """Discharge PATIENT: kept in the store, never computed again, out of the review queue."""
    with open_store(store_path) as store:
        try:
            store.discharge(patient, note, who)
        except ProgressorError as exc:
            fail(str(exc))
    click.echo(f"{patient}: discharged by {who}")


@click.command()
@click.argument("patient")
@click.option("--record", required=True, help="The record's id (show PATIENT --history).")
@click.option("--why", "note", required=True, help="Why it is void: kept in the audit trail.")
@who_option
@store_option
def void(patient: str, record: str, note: str, who: str, store_path: Path) -> None:
    """Void a wrongly logged record: kept, no longer counted from the next recompute on."""
    with open_store(store_path) as store:
        try:
            store.void(patient, record, note, who)
        except ProgressorError as exc:
            fail(str(exc))
    click.echo(f"{patient}: record {record} voided by {who}; run progressor recompute")


COMMANDS = (patients, quarantine, reenroll, discharge, void)
