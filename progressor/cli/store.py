"""The clinic's store from the command line: create it, enroll, import, review, act.

`--store` (or PROGRESSOR_STORE) names the SQLite file, `progressor.db` by default.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import click

from progressor.cli.common import (
    EXIT_SET_ASIDE,
    dose_option,
    engine_from_env,
    exporter_name,
    fail,
    format_option,
    parse_date,
    parse_dose,
    plugin_options,
    starting_doses,
    write_document,
)
from progressor.cli.history import show_history, week_in
from progressor.core.engine import CompiledProgram
from progressor.core.models import (
    Enrollment,
    Program,
    SetAside,
    StepResult,
    patient_id_problem,
)
from progressor.core.timeline import ClinicianAction
from progressor.errors import ProgressorError, did_you_mean
from progressor.reading import load_program
from progressor.store.database import Store
from progressor.store.queue import QUEUE_STATUSES, page_json

STORE_ENV = "PROGRESSOR_STORE"

store_option = click.option(
    "--store",
    "store_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=lambda: os.environ.get(STORE_ENV, "progressor.db"),
    show_default="progressor.db",
    help=f"The SQLite store (also {STORE_ENV}).",
)
week_option = click.option(
    "--week",
    type=click.IntRange(min=1),
    help="The week it applies to (default: the newest computed week, the one review shows).",
)
who_option = click.option(
    "--who",
    default=lambda: os.environ.get("USER") or getpass.getuser(),
    show_default="the login name",
    help="The clinician recording the action.",
)


def open_store(path: Path) -> Store:
    """The store at `path`, or a clear error (no traceback) when it cannot be opened."""
    try:
        return Store.open(path)
    except ProgressorError as exc:
        fail(str(exc))
    except sqlite3.Error as exc:
        fail(f"{path}: not a progressor store ({exc})")


def _latest_week(store: Store, patient: str, week: int | None) -> int | None:
    """The week a clinician action applies to: as given, else the newest computed week.

    The clinician acts on what `review` showed them, the newest prescription; the calendar
    week of today would skip every week in between when recompute has fallen behind.
    """
    if week is not None:
        return week
    history = store.prescriptions(patient)
    return history[-1].week if history else None


def _compiled(
    store: Store, patient: str, plugins: Sequence[str], block: Sequence[str]
) -> CompiledProgram:
    return engine_from_env(plugins, block).compile(store.program_of(patient))


@click.command()
@store_option
def init(store_path: Path) -> None:
    """Create the store (or migrate an older one to the current schema)."""
    try:
        with Store.init(store_path) as store:
            click.echo(f"{store_path}: schema version {store.schema_version()}")
    except ProgressorError as exc:
        fail(str(exc))
    except (sqlite3.Error, OSError) as exc:
        fail(f"{store_path}: cannot create a store there ({exc})")


@click.command()
@click.argument("patient")
@click.option(
    "--program", "program_path", required=True, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option("--start", callback=parse_date, required=True, help="First day (YYYY-MM-DD).")
@dose_option
@store_option
@plugin_options
def enroll(
    patient: str,
    program_path: Path,
    start: dt.date,
    doses: tuple[str, ...],
    store_path: Path,
    plugins: tuple[str, ...],
    block: tuple[str, ...],
) -> None:
    """Enroll PATIENT on a program from a start date (the program is stored with them)."""
    problem = patient_id_problem(patient)
    if problem:  # before anything is read or stored (Enrollment refuses it too)
        fail(f"cannot enroll {patient!r}: {problem}")
    try:
        program = load_program(program_path)
        compiled = engine_from_env(plugins, block).compile(program)
    except ProgressorError as exc:
        fail(str(exc))
    overrides = starting_doses(program, doses)
    with open_store(store_path) as store:
        try:
            store.add_program(program, program_path.read_text(encoding="utf-8"))
            enrollment = Enrollment(
                patient=patient, program=program.id, start=start, overrides=overrides
            )
            added = store.enroll(enrollment, program, compiled)
        except ProgressorError as exc:
            fail(str(exc))
        alike = store.alike(patient) if added else []
    click.echo(
        f"{patient}: {'enrolled on' if added else 'already enrolled on'} "
        f"{program.id} {program.version} from {start}"
    )
    if alike:  # (enrolled all the same: two patients may have such ids; said, not guessed)
        click.echo(
            f"warning: {', '.join(map(repr, alike))} enrolled too: the same patient written "
            f"differently? A record of the id written a third way ({patient + ' '!r}, say) "
            "now counts for none of them",
            err=True,
        )


@click.command(name="import")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True)
)
@click.option(
    "--encoding", help="The files' text encoding, e.g. cp1252 or latin-1 (default: UTF-8)."
)
@store_option
def import_files(files: tuple[Path, ...], encoding: str | None, store_path: Path) -> None:
    """Import outcomes and pain reports (JSONL or CSV, each record with its patient)."""
    quarantined = 0
    with open_store(store_path) as store:
        for path in files:
            try:
                report = store.import_records(path, encoding=encoding)
            except ProgressorError as exc:
                fail(str(exc))
            click.echo(
                f"{path}: {report.added} added, {report.duplicates} already stored, "
                f"{len(report.quarantined)} quarantined"
            )
            for item in report.quarantined:
                click.echo(f"  quarantined: {item.source}:{item.line}: {item.reason}", err=True)
            quarantined += len(report.quarantined)
    sys.exit(EXIT_SET_ASIDE if quarantined else 0)


@click.command()
@store_option
def status(store_path: Path) -> None:
    """What the store holds and how up to date it is."""
    with open_store(store_path) as store:
        s = store.status()
    click.echo(
        f"store {store_path} (schema {s.schema_version}): {s.programs} programs, "
        f"{s.patients} patients, {s.outcomes} outcomes, {s.pain_reports} pain reports, "
        f"{s.quarantined} quarantined, {s.clinician_actions} clinician actions"
    )
    click.echo(
        f"results: {s.up_to_date} up to date, {s.stale} with new data, {s.failed} failed; "
        f"{s.paused} paused, {s.flagged} flagged, {s.alerts} alerts"
    )


@click.command()
@click.option(
    "--status",
    type=click.Choice(QUEUE_STATUSES),
    help="paused: waiting for a resume; flagged: the others (flags, alerts, failures).",
)
@click.option("--program", "program_id", metavar="ID", help="Only patients on this program.")
@click.option("--flag", metavar="RULE", help="Only patients with a flag or alert of this rule.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many.")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: items, total, paging.")
@store_option
def review(
    status: str | None,
    program_id: str | None,
    flag: str | None,
    offset: int,
    limit: int | None,
    as_json: bool,
    store_path: Path,
) -> None:
    """The queue of paused and flagged patients, with why (filtered, a page at a time)."""
    with open_store(store_path) as store:
        page = store.review_page(
            status=status, program=program_id, flag=flag, offset=offset, limit=limit
        )
    if as_json:
        click.echo(json.dumps(page_json(page), indent=2))
        return
    if not page.total:
        filtered = status or program_id or flag
        click.echo("nobody in the review queue matches" if filtered else "nobody waits for review")
    for item in page.items:
        pending = " (new data not yet recomputed)" if item.pending else ""
        click.echo(f"{item.patient}  week {item.week}  {item.status}{pending}")
        for reason in item.reasons:
            click.echo(f"    {reason}")
    if page.total and (offset or page.next_offset is not None):
        shown = f"{offset + 1}-{offset + len(page.items)}" if page.items else "none"
        more = f"; next: --offset {page.next_offset}" if page.next_offset is not None else ""
        click.echo(f"({shown} of {page.total}{more})")


@click.command()
@click.argument("patient")
@click.option("--note", required=True, help="Why: kept with the action in the audit trail.")
@click.option("--exercise", "exercises", multiple=True, help="Resume only this exercise.")
@week_option
@who_option
@store_option
def resume(
    patient: str,
    note: str,
    exercises: tuple[str, ...],
    week: int | None,
    who: str,
    store_path: Path,
) -> None:
    """Record a clinician's resume of a paused patient (or exercises); recompute applies it."""
    with open_store(store_path) as store:
        try:
            week = _latest_week(store, patient, week)
            actions = store.resume(patient, note, who, exercises=exercises, week=week)
        except ProgressorError as exc:
            fail(str(exc))
    for action in actions:
        what = action.exercise or "the whole program"
        click.echo(f"{patient}: {what} resumed from week {action.week} by {action.who}")


@click.command()
@click.argument("patient")
@click.option("--note", required=True, help="Why: kept with the action in the audit trail.")
@week_option
@who_option
@store_option
def acknowledge(patient: str, note: str, week: int | None, who: str, store_path: Path) -> None:
    """Record that a clinician reviewed a patient's flags and changed nothing."""
    with open_store(store_path) as store:
        try:
            week = _latest_week(store, patient, week)
            action = store.acknowledge(patient, note, who, week=week)
        except ProgressorError as exc:
            fail(str(exc))
    click.echo(f"{patient}: flags of week {action.week} acknowledged by {action.who}")


@click.command()
@click.argument("patient")
@click.argument("exercise")
@click.argument("fields", nargs=-1, required=True)
@click.option("--note", required=True, help="Why: kept with the action in the audit trail.")
@week_option
@who_option
@store_option
@plugin_options
def override(
    patient: str,
    exercise: str,
    fields: tuple[str, ...],
    note: str,
    week: int | None,
    who: str,
    store_path: Path,
    plugins: tuple[str, ...],
    block: tuple[str, ...],
) -> None:
    """Record a clinician's dose for one exercise: FIELD=VALUE ... (e.g. reps=4 hold_s=5)."""
    with open_store(store_path) as store:
        try:
            compiled = _compiled(store, patient, plugins, block)
            names = [e.id for e in compiled.program.exercises]
            if exercise not in names:
                hint = did_you_mean(exercise, names)
                fail(
                    f"{patient}'s program has no exercise {exercise!r}"
                    + (f" ({hint})" if hint else f"; exercises: {', '.join(names)}")
                )
            current = store.prescriptions(patient)
            base = (
                current[-1].exercises[exercise].dose
                if current
                else compiled.program.exercise(exercise).dose
            )
            week = _latest_week(store, patient, week)
            action = store.override(
                patient, exercise, parse_dose(base, fields), note, who, week=week, compiled=compiled
            )
        except ProgressorError as exc:
            fail(str(exc))
    assert action.dose is not None
    click.echo(
        f"{patient}: {exercise} set to {action.dose.describe()} from week {action.week} "
        f"by {action.who}"
    )


class Newest(NamedTuple):
    """A patient's newest prescription from the store, with what `show` prints beside it."""

    program: Program
    result: StepResult
    actions: list[ClinicianAction]  # the clinician's actions on that week
    unused: list[SetAside]  # records the rules set aside


def newest(store: Store, patient: str, week: int | None = None) -> Newest:
    """The newest computed week of `patient` (or `week`) as a StepResult (show, handout); a
    clear error when there is none yet."""
    try:
        program = store.program_of(patient)
        history = store.prescriptions(patient)
        if not history:
            fail(f"{patient}: nothing computed yet; run progressor recompute")
        latest = history[-1] if week is None else week_in(patient, history, week)
        result = store.result_of(patient, latest)
        actions = [a for a in store.actions(patient) if a.week == latest.week]
        unused = store.set_aside(patient)
    except ProgressorError as exc:
        fail(str(exc))
    return Newest(program, result, actions, unused)


@click.command()
@click.argument("patient")
@format_option
@click.option(
    "--week",
    "shown_week",
    type=click.IntRange(min=1),
    help="That week's prescription and the decisions behind it (default: the newest).",
)
@click.option(
    "--history", "whole", is_flag=True, help="Every week: status, doses, decisions, records."
)
@click.option("--json", "as_json", is_flag=True, help="JSON (the same as --format json).")
@click.option(
    "--chart",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also draw the patient's progress chart in this file (.svg or .png; needs the "
    "'charts' extra).",
)
@store_option
@plugin_options
def show(
    patient: str,
    fmt: str | None,
    shown_week: int | None,
    whole: bool,
    as_json: bool,
    chart: Path | None,
    store_path: Path,
    plugins: tuple[str, ...],
    block: tuple[str, ...],
) -> None:
    """Print PATIENT's newest prescription (or --week N's, or --history) from the store, with
    the decisions behind it."""
    if whole:
        with open_store(store_path) as store:
            show_history(store, patient, as_json or fmt == "json")
        return
    engine = engine_from_env(plugins, block)
    exporters = engine.registries.exporters
    fmt = exporter_name(engine, "json" if as_json else fmt)
    with open_store(store_path) as store:
        program, result, actions, unused = newest(store, patient, shown_week)
        if store.is_discharged(patient):
            click.echo(f"note: {patient} is discharged: results as kept then", err=True)
        if chart is not None:
            write_chart(store, patient, chart)
    write_document(exporters[fmt].component, program, result, None)
    # The decisions are the week's as the rules made them: a clinician's resume or override
    # since then is why the prescription may differ from them (a "pause" beside "active").
    for action in actions:
        what = f"{action.kind} of {action.exercise}" if action.exercise else action.kind
        click.echo(
            f"note: week {action.week}'s prescription: {what} by {action.who} on "
            f"{action.at:%Y-%m-%d %H:%M} ({action.note}), after the decisions shown",
            err=True,
        )
    for item in unused:  # (stored, but not usable by the rules: never counted, never hidden)
        click.echo(f"note: a record the rules set aside: {item}", err=True)


def write_chart(store: Store, patient: str, path: Path) -> None:
    """The patient's progress chart in `path`, its format from the suffix (.svg or .png)."""
    try:
        from progressor.charts import chart_data_from_store, progress_chart

        data = progress_chart(chart_data_from_store(store, patient), path.suffix)
    except ImportError as exc:
        fail(f"a chart needs matplotlib: pip install 'progressor[charts]' ({exc})")
    except ProgressorError as exc:
        fail(str(exc))
    try:
        path.write_bytes(data)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")


STORE_COMMANDS = (
    init,
    enroll,
    import_files,
    status,
    review,
    show,
    resume,
    override,
    acknowledge,
)
