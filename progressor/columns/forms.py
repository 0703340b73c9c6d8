"""What a component gives to be evaluated in columns: its optional `column_form()` method.

A component (exercise type, strategy, safety rule) may define `column_form(self)`; the
column engine (progressor.columns.engine) evaluates a program's patients together only when
every component of the program gives one. Otherwise, or where a column form says a patient
needs it, the patient goes through the per-patient engine: the output is the same either
way (tests/test_columns.py holds the two engines to byte-identical output).

The frames a column form reads (polars expressions over their columns):

- the outcome frame, one row per outcome: `reps` (list of ints), `hold_s`, `load_kg`,
  `side` (null when none), `scored` (not skipped, with the pain scores a progression needs);
- the exercise frame, one row per patient and exercise of the program: `exercise`,
  `required` (sessions that make a met week), `done`, `met` and `unscored` (session counts),
  `rise` (the largest rise of pain during or after over pain before, not rounded; 0 when
  none), and the patient's `max_pain` (null without any score), `adverse` (any adverse
  event), `flare_reports` (pain reports in the `flare` context), `any_session` and
  `weeks_without_sessions` (the history's count before this week).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from progressor.core.components import Finding
from progressor.core.models import Dose

if TYPE_CHECKING:
    import polars as pl


class TypeColumns(Protocol):
    """An exercise type's column form."""

    def met(self, dose: Dose) -> pl.Expr | None:
        """Over the outcome frame: whether each scored outcome, a session on its own, met
        `dose` (as `each_met` answers); None when this dose has no column form."""


@dataclass(frozen=True)
class StrategyColumns:
    """A strategy's column form: the ExerciseWeek fields its `propose` reads. The engine
    calls `propose` once per distinct value of them, never per patient."""

    reads: frozenset[str]


#: The column form of a strategy whose proposal reads only the week's counts (linear, double).
COUNTS_ONLY = StrategyColumns(
    frozenset({"exercise", "dose", "memory", "sessions_required", "met_sessions", "done_sessions"})
)


@dataclass(frozen=True)
class ColumnFinding:
    """One kind of finding a rule makes, in columns: where (`applies`, over the exercise
    frame), and the values it depends on (`keys`); `make(exercise, *key values)` is the rule's
    own code for the finding, called once per distinct key (one meaning, one place)."""

    applies: pl.Expr
    keys: tuple[pl.Expr, ...]
    make: Callable[..., Finding]


class RuleColumns(Protocol):
    """A safety rule's column form."""

    def routes(self, params: BaseModel) -> pl.Expr:
        """Over the exercise frame: True where the rule may find something its `findings`
        do not cover; that patient goes per-patient (a false alarm only costs time)."""

    def findings(self, params: BaseModel) -> Sequence[ColumnFinding]:
        """The findings the column engine makes for the rule (exercise findings only)."""


def column_form(component: Any) -> Any:
    """A component's column form, or None when it gives none (or fails to)."""
    method = getattr(component, "column_form", None)
    if method is None:
        return None
    try:
        return method()
    except Exception:  # a plugin's failure: its patients simply go per-patient
        return None
