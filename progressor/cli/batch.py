"""Clinic IT's weekly batch from the command line: recompute (store or dataset), synth.

The store's own commands (init, enroll, import, review, ...) are in progressor.cli.store.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import click

from progressor.cli.common import (
    EXIT_ALERT_UNDELIVERED,
    EXIT_BUSY,
    EXIT_SET_ASIDE,
    engine_factory,
    engine_from_env,
    fail,
    parse_date,
    plugin_options,
)
from progressor.cli.store import STORE_COMMANDS, open_store, store_option
from progressor.core.alerts import dispatch, parse_specs
from progressor.core.components import AlertChannel
from progressor.core.plugins import ALLOW_ENV, BLOCK_ENV, allowed_entry_points, env_list
from progressor.engines import AUTO_SMALLEST, ENGINE_CHOICES
from progressor.errors import ProgressorError
from progressor.reading import parse_program
from progressor.store.batch import Summary, recompute
from progressor.store.database import Store
from progressor.store.processes import RecomputeRunning, RunLock, run_lock


def _print_summary(summary: Summary) -> None:
    actions = ", ".join(f"{k} {v}" for k, v in sorted(summary.actions.items())) or "none"
    click.echo(
        f"as of {summary.as_of}: {summary.computed} patients computed "
        f"({summary.due} due, {summary.up_to_date} up to date, "
        f"{summary.not_started} not started); decisions: {actions}; "
        f"alerts {summary.alerts}; plugin failures {summary.plugin_failures}; "
        f"failures {len(summary.failures)}"
    )
    for failure in summary.failures:
        click.echo(f"  failed: {failure.patient}: {failure.error.splitlines()[0]}", err=True)


@click.command(name="recompute")
@click.option(
    "--week",
    "as_of",
    callback=parse_date,
    default=None,
    help="Compute the weeks that ended by this date (default: today).",
)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default="all cores")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    metavar="SECONDS",
    help="If another recompute of the store is running, wait this long for it to end "
    f"(default: exit {EXIT_BUSY} at once, having done nothing).",
)
@click.option("--dataset", help="Instead of the store: an input dataset directory or URL.")
@click.option("--out", help="With --dataset: the output directory or URL.")
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="With --dataset: this machine's cores, or Dask.",
)
@click.option("--scheduler", help="With --executor dask: the scheduler, e.g. tcp://host:8786.")
@click.option(
    "--engine",
    "computed_by",
    type=click.Choice(ENGINE_CHOICES),
    default="auto",
    show_default=True,
    help="The per-patient engine, the column engine (polars; the patients it does not cover "
    "go per-patient) or columns where installed and worth it "
    f"({AUTO_SMALLEST} patients or more to compute: a partition's, or the store's due "
    "patients). Same results.",
)
@click.option(
    "--out-format",
    type=click.Choice(["jsonl", "parquet"]),
    default="jsonl",
    show_default=True,
    help="With --dataset: the output tables as JSON lines or Parquet (the parquet extra).",
)
@click.option(
    "--alerts",
    "alert_specs",
    multiple=True,
    metavar="CHANNEL[:TARGET]",
    help="Send every stored alert not yet sent there, e.g. webhook:URL (repeatable).",
)
@store_option
@plugin_options
def recompute_command(
    as_of: dt.date | None,
    workers: int,
    wait: float,
    dataset: str | None,
    out: str | None,
    executor: str,
    scheduler: str | None,
    computed_by: str,
    out_format: str,
    alert_specs: tuple[str, ...],
    store_path: Path,
    plugins: tuple[str, ...],
    block: tuple[str, ...],
) -> None:
    """Next week's prescription for every patient whose week has ended (store or dataset)."""
    today = dt.date.today()
    day = as_of or today
    if day > today:
        fail(
            f"--week {day} is in the future: weeks that have not ended cannot be computed, "
            "and computed weeks are never taken back"
        )
    engine = engine_from_env(plugins, block)  # fail early, in this process, on a bad set-up
    try:
        channels = parse_specs(engine.registries.alert_channels, alert_specs)
    except ProgressorError as exc:
        fail(str(exc))
    if dataset is not None:
        if alert_specs:
            fail("--alerts goes with the store; a dataset's alerts are in OUT/alerts/")
        _recompute_dataset(
            dataset,
            out,
            day,
            executor,
            scheduler,
            workers,
            plugins,
            block,
            computed_by,
            out_format=out_format,
        )
        return
    if executor != "local" or out or out_format != "jsonl":
        fail(
            "--executor, --out and --out-format go with --dataset (the store is computed on "
            "this machine)"
        )
    factory = engine_factory(plugins, block)

    def run(lock: RunLock, progress: Callable[[int, int], None] | None) -> Summary:
        try:
            return recompute(
                store_path,
                as_of=day,
                workers=workers,
                progress=progress,
                engine_factory=factory,
                lock=lock,
                engine=computed_by,
            )
        except ProgressorError as exc:
            fail(str(exc))

    open_store(store_path).close()  # a clear message when there is no store yet
    try:
        # One run at a time, sending alerts included: two runs would send them twice.
        with run_lock(store_path, wait) as lock:
            summary = _with_progress(lambda progress: run(lock, progress))
            _print_summary(summary)
            if computed_by != "patients":  # who computed whom, as for a dataset
                _print_paths(summary.paths, store=True)
            undelivered = _send_alerts(store_path, channels)
    except RecomputeRunning as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BUSY)
    except ProgressorError as exc:  # the lock file cannot be made or locked
        fail(str(exc))
    if summary.failures:
        sys.exit(1)
    if undelivered:
        sys.exit(EXIT_ALERT_UNDELIVERED)


def _print_paths(paths: Mapping[str, int], store: bool) -> None:
    """Who computed how many patients this run (a partition skipped as done: none)."""
    covered = "with one judged week and no clinician action, " if store else ""
    click.echo(
        f"computed by the column engine: {paths.get('columns', 0)}, per patient: "
        f"{paths.get('patients', 0)} (the column engine takes the patients it covers, "
        f"{covered}see README.md; the others go per patient)"
    )


def _with_progress(run: Callable[[Callable[[int, int], None] | None], Summary]) -> Summary:
    """`run(progress)` with a progress bar for a person, none in logs and pipes."""
    if not sys.stderr.isatty():
        return run(None)
    with click.progressbar(length=1, label="recompute", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        return run(progress)


def _send_alerts(store_path: Path, channels: Sequence[tuple[AlertChannel, str]]) -> int:
    """Send each channel the newest week's alerts it has not had; how many could not go.

    A delivered alert is recorded in the store and never sent to that channel and target
    again; one that fails after its retries is printed in full and tried again next run.
    """
    failed = 0
    with Store.open(store_path) as store:
        for channel, target in channels:
            where = f"{channel.name}:{target}" if target else channel.name
            sent = 0
            for delivery in dispatch([(channel, target)], store.undelivered_alerts(where)):
                if delivery.delivered:
                    store.record_delivery(delivery.alert, where)
                    sent += 1
                    continue
                failed += 1
                click.echo(
                    f"alert NOT delivered via {where} after {delivery.attempts} attempts "
                    f"({delivery.error}): {delivery.alert.model_dump_json()}",
                    err=True,
                )
            click.echo(f"alerts sent via {where}: {sent}")
    return failed


def _recompute_dataset(
    dataset: str,
    out: str | None,
    day: dt.date,
    executor: str,
    scheduler: str | None,
    workers: int,
    plugins: Sequence[str],
    block: Sequence[str],
    computed_by: str = "patients",
    out_format: str = "jsonl",
) -> None:
    from progressor.dataset.run import merge, merge_paths, run_dask, run_local

    if not out:
        fail("--dataset needs --out")
    # The engine every other command builds (installed plugins allowed by PROGRESSOR_PLUGINS,
    # PROGRESSOR_BLOCK), named explicitly: a worker, maybe on another machine, builds it from
    # these names alone.
    installed = [e.module for e in allowed_entry_points(env_list(os.environ.get(ALLOW_ENV)))]
    plugins = [*installed, *(p for p in plugins if p not in installed)]
    block = [*(env_list(os.environ.get(BLOCK_ENV)) or []), *block]
    try:
        if executor == "dask":
            if not scheduler:
                fail("--executor dask needs --scheduler ADDRESS")
            summaries = run_dask(
                dataset,
                out,
                day,
                scheduler,
                plugins,
                block,
                engine=computed_by,
                out_format=out_format,
            )
        else:
            cores = workers or os.cpu_count() or 1
            summaries = run_local(
                dataset, out, day, cores, plugins, block, engine=computed_by, out_format=out_format
            )
    except ProgressorError as exc:
        fail(str(exc))
    summary = merge(summaries)
    actions = ", ".join(f"{k} {v}" for k, v in summary["actions"].items())
    click.echo(
        f"{summary.get('patients', 0)} patients in {summary.get('partitions', 0)} partitions "
        f"({summary.get('skipped', 0)} already done); decisions: {actions or 'none'}; "
        f"paused {summary.get('paused', 0)}, alerts {summary.get('alerts', 0)}, "
        f"plugin failures {summary.get('failures', 0)}, set aside {summary.get('set_aside', 0)}"
    )
    if computed_by != "patients":  # who computed whom (the patients of partitions not skipped)
        _print_paths(merge_paths(summaries), store=False)
    if summary.get("set_aside", 0):  # as for `next` and `import`: done, but not with everything
        click.echo(f"set-aside records and their reasons: {out}/set_aside/", err=True)
        sys.exit(EXIT_SET_ASIDE)


@click.command()
@click.option("--patients", type=click.IntRange(min=1), required=True)
@click.option("--weeks", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--out", help="Write a partitioned dataset here instead of into the store.")
@click.option("--partitions", type=click.IntRange(min=1), default=16, show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "parquet"]),
    default="jsonl",
    show_default=True,
    help="With --out: the partitions as JSON lines or Parquet (the parquet extra).",
)
@click.option(
    "--program",
    "program_paths",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Programs to enroll patients on (repeatable); default: the shipped ones.",
)
@click.option(
    "--start",
    callback=parse_date,
    help="The cohort's first day (YYYY-MM-DD), for reproducible data; default: the weeks end "
    "today.",
)
@store_option
@plugin_options
def synth(
    patients: int,
    weeks: int,
    seed: int,
    out: str | None,
    partitions: int,
    fmt: str,
    program_paths: tuple[Path, ...],
    start: dt.date | None,
    store_path: Path,
    plugins: tuple[str, ...],
    block: tuple[str, ...],
) -> None:
    """Generate a synthetic cohort into the store (or a partitioned dataset with --out)."""
    from progressor.demo import SHIPPED, shipped_text
    from progressor.synth import start_ending_by, synthesize_dataset, synthesize_into_store

    start = start or start_ending_by(dt.date.today(), weeks)
    if fmt != "jsonl" and not out:
        fail("--format goes with --out (a dataset's partitions; the store is SQLite)")

    engine = engine_from_env(plugins, block)
    texts = [p.read_text(encoding="utf-8") for p in program_paths] or [
        shipped_text(name) for name in SHIPPED
    ]
    try:
        compiled = [(engine.compile(parse_program(t)), t) for t in texts]
        if out:
            synthesize_dataset(out, compiled, patients, weeks, seed, partitions, start, fmt=fmt)
            click.echo(f"{patients} patients, {_weeks(weeks)}, {partitions} partitions: {out}")
            return
        with Store.init(store_path) as store:
            if store.status().patients:  # never mix made-up patients into a clinic's data
                fail(
                    f"{store_path} already holds patients: synth writes into a new store "
                    "only (give another --store)"
                )
            report = synthesize_into_store(store, compiled, patients, weeks, seed, start)
    except ProgressorError as exc:
        fail(str(exc))
    except ImportError as exc:
        fail(f"{out}: {exc}")
    except OSError as exc:
        fail(f"cannot write there: {exc}")
    click.echo(f"{patients} patients, {_weeks(weeks)} into {store_path}: {report}")


COMMANDS = (*STORE_COMMANDS, recompute_command, synth)


def _weeks(weeks: int) -> str:
    return "1 week" if weeks == 1 else f"{weeks} weeks"
