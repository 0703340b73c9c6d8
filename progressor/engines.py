"""`--engine`: who computes a run's patients, for a dataset's partitions and for the store.

One policy for both (compute_partition and the store's recompute call `column_engine_wanted`,
the command line offers ENGINE_CHOICES). A module of its own, outside the dataset and the
store packages: importing it imports neither (nor polars), at a command line's start too.
"patients" is the per-patient engine; "columns" the column engine (progressor.columns) for
the patients it covers, the others per patient; "auto" the column engine where polars is
installed and the run computes AUTO_SMALLEST patients or more, else the per-patient engine,
without importing polars at all. The output is the same whichever computes.
"""

from __future__ import annotations

from progressor.errors import ProgressorError

#: The engines a run can be computed with.
ENGINE_CHOICES = ("patients", "columns", "auto")

#: With --engine auto, the fewest patients a run computes in columns (a dataset partition's
#: run, or the store's due patients): the column engine's own cost per run (a few dozen polars
#: queries, ~50 ms) is more than the per-patient engine's for fewer (an incremental run's few
#: changed patients); docs/performance.md.
AUTO_SMALLEST = 256


def column_engine_wanted(engine: str, patients: int) -> bool:
    """Whether a run of `patients` patients with `engine` computes with the column engine: a
    ProgressorError for an unknown choice, or for "columns" where polars is not installed
    (before any work). polars is imported only when the answer is yes."""
    check_engine(engine)
    if engine == "patients" or (engine == "auto" and patients < AUTO_SMALLEST):
        return False
    try:
        import progressor.columns.engine  # noqa: F401  (is polars there?)
    except ImportError:
        if engine == "auto":
            return False
        raise ProgressorError(
            "--engine columns needs polars: pip install 'progressor[columns]'"
        ) from None
    return True


def check_engine(engine: str) -> None:
    """A ProgressorError for an engine that is not one of ENGINE_CHOICES."""
    if engine not in ENGINE_CHOICES:
        raise ProgressorError(f"unknown engine {engine!r} (one of: {', '.join(ENGINE_CHOICES)})")
