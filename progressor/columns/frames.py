"""The frames the column engine (progressor.columns.engine) reads a partition's week in: the
records read in columns, the records it does not cover, and each week's exercise frame (the
columns that progressor.columns.forms describes for the column forms)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from progressor.columns.reading import PlainColumns
from progressor.core.models import Program

_PAINS = ("pain_before", "pain_during", "pain_after", "pain_next_morning")


#: The reader's plain lines in columns (built on first use: polars is an optional extra).
_READER: list[PlainColumns] = []


def read_frames(lines_of: list[list[str]]) -> tuple[pl.DataFrame, pl.DataFrame, set[int]]:
    """The outcome and pain report frames of the patients' record lines (`pid`: their place
    in `lines_of`), and the patients with a line the column path does not take as it is
    (progressor.columns.reading: the reader's plain lines, read in columns)."""
    if not _READER:
        _READER.append(PlainColumns())
    lines = [line for patient in lines_of for line in patient]
    pids = pl.Series("pid", [p for p, patient in enumerate(lines_of) for _ in patient], pl.Int64)
    records, taken = _READER[0].read(pl.Series(lines, dtype=pl.String))
    bad = set(pids.filter(~taken).unique().to_list())
    outcomes, reports = _framed(records.with_columns(pids.gather(records["line"])))
    return outcomes, reports, bad


def table_frames(
    read: pl.DataFrame, patients: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame, set[int]]:
    """read_frames' frames of `patients` (`pid`: their place in the list) from the rows of a
    Parquet log read in columns (progressor.columns.reading.PlainTable: `key`, the patient;
    `line`, the row's number), each patient's rows in the file's order. Their rows were all
    taken: no patient is left out."""
    ids = pl.DataFrame(
        {"key": patients, "pid": range(len(patients))}, schema={"key": pl.String, "pid": pl.Int64}
    )
    records = read.join(ids, on="key").sort("pid", "line").drop("key")
    outcomes, reports = _framed(records)
    return outcomes, reports, set()


def _framed(records: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The outcomes and the pain reports of records read in columns (`pid` given), their days
    as days and the fields a record may leave out filled with their defaults."""
    records = records.with_columns(
        pl.col("date").str.to_date("%Y-%m-%d"),
        pl.col("flags").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        pl.col("skipped").fill_null(False),
        pl.col("adverse_event").fill_null(False),
        pl.col("reps").fill_null(pl.lit([], dtype=pl.List(pl.Int64))),
    )
    outcomes = records.filter(pl.col("kind") == "outcome")
    return outcomes, records.filter(pl.col("kind") == "pain")


def unusual(
    outcomes: pl.DataFrame,
    reports: pl.DataFrame,
    starts: pl.DataFrame,
    names: list[str],
    symptom_flags: bool,
    as_of: dt.date,
) -> set[int]:
    """The patients with a record the column path does not cover: another patient's, dated
    by a date-time, before the start or after the run's day `as_of` (the reader sets it
    aside), of an unknown exercise, with symptom flags (unless
    every rule's column form covers them: `symptom_flags`), or a second outcome of an
    exercise on one day."""
    flagged = pl.lit(False) if symptom_flags else pl.col("flags").list.len() > 0
    bad: set[int] = set()
    for frame in (outcomes, reports):
        if frame.is_empty():
            continue
        extra = pl.lit(False)
        if "exercise" in frame.columns:
            twice = pl.struct("pid", "exercise", "date").is_duplicated()
            extra = ~pl.col("exercise").is_in(names) | twice
        unusual = (
            (pl.col("patient").is_not_null() & (pl.col("patient") != pl.col("owner")))
            | pl.col("date").is_null()
            | (pl.col("date") < pl.col("start"))
            | (pl.col("date") > as_of)
            | flagged
            | extra
        )
        checked = frame.join(starts, on="pid")
        bad |= set(checked.filter(unusual)["pid"].to_list())
    return bad


def week_numbered(frame: pl.DataFrame, starts: pl.DataFrame) -> pl.DataFrame:
    """The records with the enrollment week each falls in (`week`; timeline.week_of's
    arithmetic: the column path takes no record dated before the start)."""
    days = (pl.col("date") - pl.col("start")).dt.total_days()
    return frame.join(starts.select("pid", "start"), on="pid").with_columns(
        (days // 7 + 1).alias("week")
    )


def exercise_frame(
    program: Program,
    outcomes: pl.DataFrame,
    reports: pl.DataFrame,
    carried: pl.DataFrame,
    states: pl.DataFrame,
    names: list[str],
    met: pl.Expr,
) -> pl.DataFrame:
    """One row per patient and exercise: the week's counts, and the patient's figures.

    `carried` holds the week's patients with what earlier weeks leave them (among others
    the weeks without sessions before this one, and `carried`: the scores of their
    history's mean pain so far), kept on each row; `states`, each patient's exercise
    states (`state`, `dose`), which `met` reads."""
    required = [e.sessions_required or program.sessions_required for e in program.exercises]
    exercises = pl.DataFrame(
        {"exercise": names, "order": range(len(names)), "required": required},
        schema={"exercise": pl.String, "order": pl.Int64, "required": pl.Int64},
    )
    everyone = carried.select("pid")
    scored = (
        ~pl.col("skipped")
        & pl.col("pain_before").is_not_null()
        & (pl.col("pain_during").is_not_null() | pl.col("pain_after").is_not_null())
    )
    before = pl.col("pain_before")
    rise = pl.when(before.is_not_null()).then(
        pl.max_horizontal(pl.col("pain_during") - before, pl.col("pain_after") - before)
    )
    rows = (
        outcomes.join(exercises, on="exercise")
        .join(states, on=["pid", "exercise"])
        .with_columns(scored.alias("scored"))
    )
    # (A float written as text reads back as the same float: polars writes the shortest.
    # Only the few rows wanted are made text: filtered first.)
    rising = rise > 0
    risen = (
        pl.col("date").filter(rising).cast(pl.String) + " " + rise.filter(rising).cast(pl.String)
    )
    unscored = ~pl.col("skipped") & ~pl.col("scored")
    counts = (
        rows.sort("date")  # (the sessions' order: one outcome of an exercise a day)
        .group_by("pid", "exercise")
        .agg(
            (~pl.col("skipped")).sum().alias("done"),
            (pl.col("scored") & met).sum().alias("met"),
            unscored.sum().alias("unscored"),
            rise.max().alias("rise"),
            risen.alias("rises"),
            pl.col("date").filter(unscored).cast(pl.String).alias("unscored_days"),
            pl.col("scored").sum().alias("scored_sessions"),
        )
    )
    # Every pain score in the step's order (its mean is summed in that order): outcomes by
    # exercise in the program's order and by day, each outcome's scores in _PAINS' order (a
    # stable sort by row of the columns unpivoted one after the other: six times faster than
    # lists of each row's scores), then pain reports by day and pain.
    outcome_pains = (
        rows.sort("pid", "order", "date")
        .select("pid", *_PAINS)
        .with_row_index("row")
        .unpivot(on=list(_PAINS), index=["row", "pid"], value_name="pains")
        .drop_nulls("pains")
        .sort("row", maintain_order=True)
        .group_by("pid", maintain_order=True)
        .agg("pains")
    )
    report_pains = (
        reports.sort("pid", "date", "pain")
        .group_by("pid", maintain_order=True)
        .agg(
            pl.col("pain").alias("reported"),
            (pl.col("context") == "flare").sum().alias("flare_reports"),
        )
    )
    adverse = outcomes.group_by("pid").agg(pl.col("adverse_event").any().alias("adverse"))
    patient = (
        carried.join(outcome_pains, on="pid", how="left")
        .join(report_pains, on="pid", how="left")
        .join(adverse, on="pid", how="left")
        .join(_symptoms(outcomes, reports), on="pid", how="left")
        .select(
            *carried.columns,  # (kept as they are: what earlier weeks leave the patient)
            pl.concat_list(
                pl.col("pains").fill_null(pl.lit([], dtype=pl.List(pl.Float64))),
                pl.col("reported").fill_null(pl.lit([], dtype=pl.List(pl.Float64))),
            ).alias("scores"),
            pl.col("flare_reports").fill_null(0),
            pl.col("adverse").fill_null(False),
            pl.col("symptoms").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        )
        .with_columns(pl.col("scores").list.max().alias("max_pain"))
        # (The history's mean pain: this week's, or the last week's with any pain scores.)
        .with_columns(
            pl.when(pl.col("scores").list.len() > 0)
            .then(pl.col("scores"))
            .otherwise(pl.col("carried"))
            .alias("scores")
        )
        .drop("carried")
    )
    weeks = (
        everyone.join(exercises, how="cross")
        .join(states.select("pid", "exercise", "state"), on=["pid", "exercise"])
        .join(counts, on=["pid", "exercise"], how="left")
        .with_columns(
            pl.col("done").fill_null(0),
            pl.col("met").fill_null(0),
            pl.col("unscored").fill_null(0),
            pl.col("rise").fill_null(0.0),
            pl.col("rises").fill_null(pl.lit([], dtype=pl.List(pl.String))),
            pl.col("unscored_days").fill_null(pl.lit([], dtype=pl.List(pl.String))),
            pl.col("scored_sessions").fill_null(0),
        )
        .join(patient, on="pid")
        .with_columns((pl.col("done").sum().over("pid") > 0).alias("any_session"))
    )
    return weeks.sort("pid", "order")


def _symptoms(outcomes: pl.DataFrame, reports: pl.DataFrame) -> pl.DataFrame:
    """Each patient's symptom flags as forms.py gives them: "YYYY-MM-DD code", sorted, once."""
    flagged = pl.concat([frame.select("pid", "date", "flags") for frame in (outcomes, reports)])
    entry = pl.col("date").cast(pl.String) + " " + pl.col("flags")
    return (
        flagged.explode("flags")
        .filter(pl.col("flags").is_not_null() & pl.col("date").is_not_null())
        .group_by("pid")
        .agg(entry.unique().sort().alias("symptoms"))
    )
