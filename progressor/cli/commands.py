"""The `progressor` command line: each command parses its arguments and calls the library.

Exit codes: 0 done; 1 invalid input (a bad program, an unreadable log, a plugin that fails
to load); 2 wrong usage; 3 done, but some log records were set aside (each is reported on
stderr); 4 done, but an alert could not be delivered (it is printed in full on stderr);
5 done, but a plugin failed for the patient (the week is held, with a plugin-failure flag).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from progressor.cli.common import (
    EXIT_ALERT_UNDELIVERED,
    EXIT_PLUGIN_FAILURE,
    EXIT_SET_ASIDE,
    F,
    dose_option,
    engine_from_env,
    exporter_name,
    fail,
    format_option,
    parse_date,
    plugin_options,
    starting_doses,
    warn_not_installed,
    write_document,
)
from progressor.core.alerts import dispatch, parse_specs
from progressor.core.components import AlertChannel
from progressor.core.engine import CompiledProgram, Engine
from progressor.core.models import (
    Alert,
    Enrollment,
    Program,
    SetAside,
    StepResult,
    ids_alike,
    patient_id_problem,
)
from progressor.core.plugins import (
    ALLOW_ENV,
    collect_commands,
    env_list,
    get_plugin_manager,
)
from progressor.core.timeline import (
    Timeline,
    ended_weeks,
    fold,
    kept_as_of_read,
    week_of,
)
from progressor.errors import ProgressorError, did_you_mean
from progressor.reading import Log, load_log, load_program
from progressor.report import decision_trace, plugin_table, simulation_table


def _compile(engine: Engine, path: Path) -> CompiledProgram:
    try:
        return engine.compile(load_program(path, engine.registries))
    except ProgressorError as exc:
        fail(str(exc))


def _log(path: Path, encoding: str | None) -> Log:
    """The log; a record dated after today is set aside, its pain kept as of today."""
    try:
        return load_log(path, encoding, today=dt.date.today())
    except ProgressorError as exc:
        fail(str(exc))


def _report_set_aside(items: Sequence[SetAside]) -> None:
    for item in items:
        click.echo(f"set aside: {item}", err=True)


def _patient_of(log: Log, patient: str | None) -> str:
    """Whose records to use: the one patient of the log, or `patient`, checked."""
    patients = sorted({r.patient for r in log.records if r.patient is not None})
    if (
        patient is None
        and len(patients) > 1
        and set(ids_alike(patients[0], patients)) == set(patients[1:])
    ):  # (one patient written differently: no --patient would do)
        fail(
            f"the log has records of {', '.join(map(repr, patients))}: the same patient "
            "written differently? Correct the log."
        )
    if patient is None and len(patients) > 1:
        fail(f"the log holds several patients ({', '.join(patients)}): choose one with --patient")
    if patient is not None and patients and patient not in patients:
        hint = did_you_mean(patient, patients)
        fail(f"the log has no records of {patient!r}" + (f" ({hint})" if hint else ""))
    name = patient or (patients[0] if patients else "patient")
    if problem := patient_id_problem(name):  # (an Enrollment refuses it)
        fail(f"cannot compute patient {name!r}: {problem}; correct the log or --patient")
    # An id that differs only in case or spaces is a typo for this patient, not another one:
    # their records (a flare among them, perhaps) must not be dropped silently.
    near = ids_alike(name, patients)
    if near:
        fail(
            f"the log has records of {', '.join(map(repr, near))} as well as of {name!r}: "
            "the same patient written differently? Correct the log."
        )
    return name


def _replay(
    compiled: CompiledProgram,
    log: Log,
    source: Path,
    start: dt.date | None,
    patient: str | None,
    as_of: dt.date | None,
    doses: Sequence[str],
    channels: Sequence[tuple[AlertChannel, str]] = (),
) -> Timeline:
    """The patient's timeline: the weeks that ended, and the alerts the week under way
    already raises (printed as warnings here, and sent on `channels`)."""
    name = _patient_of(log, patient)
    mine = [a for a in log.arrived(str(source)) if a.record.patient in (None, name)]
    records = [a.record for a in mine]
    today = dt.date.today()
    # The first day logged; a pain kept as of today (from a record dated later, or whose day
    # could not be read) is no session of the patient's and says nothing of when they started
    # nor of which weeks they logged.
    dated = [r.date for r in records if not kept_as_of_read(r)]
    overrides = starting_doses(compiled.program, doses)
    if start is None:
        if not dated:
            _report_set_aside(log.set_aside)  # (why none is usable, line by line)
            if records:  # pains kept as of today: their alerts do not wait for a --start
                enrolled = Enrollment(
                    patient=name, program=compiled.program.id, start=today, overrides=overrides
                )
                _warn_early(fold(compiled, enrolled, mine, as_of=today, weeks=0), channels)
            fail("the log has no usable records: give --start to compute week 1")
        start = min(dated)
    enrollment = Enrollment(
        patient=name, program=compiled.program.id, start=start, overrides=overrides
    )
    # Only weeks that have ended are judged: a week still under way would be judged on part
    # of its sessions. Its records wait for it (and are not set aside). With --as-of, every
    # week that ended by then is judged, logged or not (a patient who stopped logging is a
    # drop-out, as the store's recompute sees it); without, the log's weeks up to today.
    day = as_of or today
    weeks = ended_weeks(start, day)
    if as_of is None:
        weeks = min(weeks, max((week_of(start, d) for d in dated), default=0))
    try:
        timeline = fold(compiled, enrollment, mine, as_of=day, weeks=weeks)
    except ProgressorError as exc:
        fail(str(exc))
    _warn_early(timeline, channels)
    if timeline.waiting and timeline.results:
        click.echo(
            f"note: week {weeks + 1} has not ended by {day}: {_count(timeline.waiting, 'record')} "
            + ("waits" if timeline.waiting == 1 else "wait")
            + " for it"
            + (f" ({_count(timeline.later, 'record')} dated later)" if timeline.later else "")
            + " (--as-of DATE to choose the day)",
            err=True,
        )
    if not timeline.results:
        first_end = start + dt.timedelta(days=7)
        fail(
            f"week 1 ({start} to {first_end - dt.timedelta(days=1)}) has not ended by {day}: "
            f"nothing to compute yet (give --as-of {first_end} to judge it as it stands)"
            if first_end > day
            else f"the log reaches no week that ended by {day}: nothing to compute (give "
            "--as-of DATE to judge the weeks that ended by that day, logged or not)"
        )
    return timeline


def _count(items: Sequence[object] | int, noun: str) -> str:
    n = items if isinstance(items, int) else len(items)
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _warn_early(timeline: Timeline, channels: Sequence[tuple[AlertChannel, str]]) -> None:
    """A week under way is not judged, but an alert in what is logged so far (a flare, an
    adverse event) must not wait for the week to end: it is printed, and sent, now."""
    week = timeline.current.week
    for alert in timeline.early_alerts:
        urgency = "an URGENT alert" if alert.urgent else "an alert"
        click.echo(
            f"warning: week {week} is under way, but what is logged so far raises "
            f"{urgency}: {alert.message} ({alert.rule})",
            err=True,
        )
    if not timeline.results:  # (the week's own alerts are sent with its prescription)
        _send(channels, timeline.early_alerts)


def _send(channels: Sequence[tuple[AlertChannel, str]], alerts: Sequence[Alert]) -> bool:
    """Send `alerts` on `channels`; whether every one was delivered (a failure is printed)."""
    undelivered = [d for d in dispatch(channels, alerts) if not d.delivered]
    for failed in undelivered:
        click.echo(
            f"alert NOT delivered via {failed.channel} after {failed.attempts} attempts "
            f"({failed.error}): {failed.alert.model_dump_json()}",
            err=True,
        )
    return not undelivered


def _exit_code(log: Log, timeline: Timeline, results: Sequence[StepResult]) -> int:
    """3 when records were set aside (each is reported, by the reader and on the way), 5
    when a plugin failed for the patient (the week is held with a plugin-failure flag)."""
    aside = [*log.set_aside, *timeline.set_aside]
    _report_set_aside(aside)
    failed = any(f.code == "plugin-failure" for r in results for f in r.prescription.flags)
    return EXIT_PLUGIN_FAILURE if failed else EXIT_SET_ASIDE if aside else 0


_program = click.argument("program", type=click.Path(path_type=Path, dir_okay=False))
_log_option = click.option(
    "--log",
    "log_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The patient's log: .jsonl, .csv or .parquet (see the README for the format).",
)
_encoding = click.option(
    "--encoding", help="The log's text encoding, e.g. cp1252 or latin-1 (default: UTF-8)."
)
_start = click.option(
    "--start", callback=parse_date, help="Enrollment start (YYYY-MM-DD); default: the first record."
)
_patient = click.option("--patient", help="Whose records to use when the log holds several.")
_as_of = click.option(
    "--as-of",
    callback=parse_date,
    help="Compute the weeks that ended by this day (YYYY-MM-DD); default: today.",
)


def _replay_options(command: F) -> F:
    """What next, simulate and explain share: the program, the log and the enrollment."""
    command = dose_option(command)  # (applied first: listed last)
    for option in reversed((_program, _log_option, _encoding, _start, _patient, _as_of)):
        command = option(command)
    return command


class _Main(click.Group):
    """The built-in commands plus those that installed plugins register."""

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        if "plugin_commands" not in ctx.meta:
            warn_not_installed()
            pm = get_plugin_manager(entry_points=True, allow=env_list(os.environ.get(ALLOW_ENV)))
            found = collect_commands(pm, super().list_commands(ctx))
            ctx.meta["plugin_commands"] = {n: r.component for n, r in found.items()}
        commands: dict[str, click.Command] = ctx.meta["plugin_commands"]
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        try:
            extra = self._plugin_commands(ctx)
        except ProgressorError as exc:
            click.echo(f"warning: plugin commands not loaded: {exc}", err=True)
            extra = {}
        return sorted([*super().list_commands(ctx), *extra])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        try:
            return self._plugin_commands(ctx).get(cmd_name)
        except ProgressorError as exc:
            fail(str(exc))


@click.group(cls=_Main)
@click.version_option(package_name="progressor")
def main() -> None:
    """progressor: next week's exercise program from rules, explained and safe by default."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@plugin_options
def check(paths: tuple[Path, ...], plugins: tuple[str, ...], block: tuple[str, ...]) -> None:
    """Validate program files; print every problem with file, line and key."""
    engine = engine_from_env(plugins, block)
    bad = 0
    for path in paths:
        try:
            engine.compile(load_program(path, engine.registries))
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
@_replay_options
@format_option
@click.option(
    "--out",
    "--output",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the prescription here instead of standard output.",
)
@click.option(
    "--alerts",
    "alert_specs",
    multiple=True,
    metavar="CHANNEL[:TARGET]",
    help="Send this week's alerts on a channel, e.g. stderr (repeatable).",
)
@plugin_options
def next_week(
    program: Path,
    log_path: Path,
    encoding: str | None,
    start: dt.date | None,
    patient: str | None,
    as_of: dt.date | None,
    doses: tuple[str, ...],
    fmt: str | None,
    out: Path | None,
    alert_specs: tuple[str, ...],
    plugins: tuple[str, ...],
    block: tuple[str, ...],
) -> None:
    """Compute one patient's next week from a program and a log."""
    engine = engine_from_env(plugins, block)
    exporters = engine.registries.exporters
    fmt = exporter_name(engine, fmt)
    try:
        channels = parse_specs(engine.registries.alert_channels, alert_specs)
    except ProgressorError as exc:
        fail(str(exc))
    compiled = _compile(engine, program)
    log = _log(log_path, encoding)
    timeline = _replay(compiled, log, log_path, start, patient, as_of, doses, channels)
    # With the alerts the week under way already raised, as `show` gives them from the store:
    # a handout must not say "go on" after yesterday's flare.
    newest = timeline.results[-1]
    newest = newest.model_copy(update={"alerts": (*newest.alerts, *timeline.early_alerts)})
    try:
        write_document(exporters[fmt].component, compiled.program, newest, out)
    finally:
        # This week's alerts, and those the week under way already raises: none waits, not
        # even for a handout that could not be made (no Chromium for a PDF).
        delivered = _send(channels, newest.alerts)
    code = _exit_code(log, timeline, timeline.results)
    sys.exit(code if delivered else EXIT_ALERT_UNDELIVERED)


@main.command()
@_replay_options
@plugin_options
def simulate(
    program: Path,
    log_path: Path,
    encoding: str | None,
    start: dt.date | None,
    patient: str | None,
    as_of: dt.date | None,
    doses: tuple[str, ...],
    plugins: tuple[str, ...],
    block: tuple[str, ...],
) -> None:
    """Replay a log week by week: dose, action and reason per week and exercise."""
    compiled = _compile(engine_from_env(plugins, block), program)
    log = _log(log_path, encoding)
    timeline = _replay(compiled, log, log_path, start, patient, as_of, doses)
    click.echo(simulation_table(list(timeline.results)))
    sys.exit(_exit_code(log, timeline, timeline.results))


@main.command()
@_replay_options
@click.option(
    "--week",
    type=click.IntRange(min=1),
    required=True,
    help="The week whose decisions to explain (1 = the first week).",
)
@plugin_options
def explain(
    program: Path,
    log_path: Path,
    encoding: str | None,
    start: dt.date | None,
    patient: str | None,
    as_of: dt.date | None,
    doses: tuple[str, ...],
    week: int,
    plugins: tuple[str, ...],
    block: tuple[str, ...],
) -> None:
    """Print the full decision trace of one week: every rule, what it saw, what won."""
    compiled = _compile(engine_from_env(plugins, block), program)
    log = _log(log_path, encoding)
    timeline = _replay(compiled, log, log_path, start, patient, as_of, doses)
    results = timeline.results
    if week > len(results):
        fail(
            f"there is no week {week} to explain: the log covers {_count(len(results), 'week')}"
            " that ended (a week is judged once it has ended; --as-of DATE chooses the day)"
        )
    click.echo(decision_trace(results[week - 1], week))
    sys.exit(_exit_code(log, timeline, [results[week - 1]]))


@main.command(name="plugins")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@plugin_options
def list_plugins(
    show_all: bool, as_json: bool, plugins: tuple[str, ...], block: tuple[str, ...]
) -> None:
    """List the loaded plugins: version, hooks, and everything each registered."""
    rows = [
        row
        for row in plugin_table(engine_from_env(plugins, block))
        if show_all or not row["builtin"]
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no plugins besides the built-ins (use --all to list those)")
    for row in rows:
        version = f" {row['version']}" if row["version"] else ""
        click.echo(f"{row['name']}{version}{' (built-in)' if row['builtin'] else ''}")
        click.echo(f"  hooks: {', '.join(row['hooks'])}")
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
@click.option(
    "--store",
    "store_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Keep the demo's store here (default: a scratch store).",
)
@plugin_options
def demo(
    patients: int,
    weeks: int,
    seed: int,
    program_path: Path | None,
    store_path: Path | None,
    plugins: tuple[str, ...],
    block: tuple[str, ...],
) -> None:
    """A synthetic clinic on the seed program, through the store: everyone's next week."""
    from progressor.demo import run_demo

    engine = engine_from_env(plugins, block)
    try:
        click.echo(run_demo(engine, program_path, patients, weeks, seed, store_path))
    except ProgressorError as exc:
        fail(str(exc))


def _register_batch_commands() -> None:
    # The clinic batch and FHIR commands live in their own modules; they attach to this group.
    from progressor.cli import batch, fhir

    for command in (*batch.COMMANDS, *fhir.COMMANDS):
        main.add_command(command)


def _register_serve_commands() -> None:
    # `serve` and `token` live in their own module (the service in progressor.serve).
    from progressor.cli.serve import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


def _register_handout_commands() -> None:
    # `handout` lives in its own module (the handout itself in progressor.handout).
    from progressor.cli.handout import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


def _register_workflow_commands() -> None:
    # The clinic's workflows (patients, quarantine, reenroll, discharge, void): their module.
    from progressor.cli.workflows import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_batch_commands()
_register_serve_commands()
_register_handout_commands()
_register_workflow_commands()
