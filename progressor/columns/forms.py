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
  none), `rises` (each session that rose, in the sessions' order, as text: "YYYY-MM-DD
  rise", the rise not rounded and written so that it reads back as the same float),
  `unscored_days` (the day of each outcome done without pain scores), `scored_sessions`
  (sessions done with pain scores), and the patient's `max_pain` (null without any
  score), `adverse` (any adverse event), `flare_reports` (pain reports in the `flare`
  context), `any_session`, `weeks_without_sessions` (the history's count before this
  week) and `symptoms` (the symptom flags of the patient's outcomes and pain reports, each
  `"YYYY-MM-DD code"`: the record's day, a space, the code as logged; sorted, each once).
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
    own code for the finding, called once per distinct key (one meaning, one place).

    `make` gives a Finding, or a sequence of them (empty when the values find nothing). A
    finding for exercise None is the whole program's (its `applies` and `keys` must then be
    the same on every exercise row of a patient): it is raised once, and a pause of the
    program pauses the patient. Flags and alerts are raised as the step raises them, rule by
    rule in the program's order and, within one rule, the program's findings first, then
    each exercise's in the program's order; for one exercise, in the order of `findings()`
    and of what `make` gives: a rule whose `evaluate` yields its flagged findings in another
    order needs its own column form to route those patients."""

    applies: pl.Expr
    keys: tuple[pl.Expr, ...]
    make: Callable[..., Finding | Sequence[Finding]]
    #: A finding for the whole program that the rule yields after its exercises' findings
    #: (not before them): the step's order, which the decisions' matches follow.
    after: bool = False


class RuleColumns(Protocol):
    """A safety rule's column form.

    Optional attribute `symptom_flags`: True when the column form covers the records'
    symptom flags (its routes and findings read the `symptoms` column, or its rule never
    reads flags). A patient with a flagged record takes the column path only when every
    rule of the program's column form says so; without it (the default, False), flagged
    records go per-patient.
    """

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
