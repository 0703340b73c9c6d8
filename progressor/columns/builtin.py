"""The column forms of the built-in components (see progressor.columns.forms).

Each built-in's per-patient code stays the one meaning of its rule: a column form says
where the rule matches and on which values, and the rule's own code words the finding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import partial

import polars as pl
from pydantic import BaseModel

from progressor.builtins import safety
from progressor.columns.forms import ColumnFinding
from progressor.core.components import Finding
from progressor.core.models import Dose

#: A rise is rounded to two decimals before it is compared (safety._rise): one within a
#: hundredth of the tolerance may match, so its patient goes per-patient.
_ROUNDING = 0.01


class HoldColumns:
    """Hold's and Stretch's `each_met` for the usual dose (one set, no load)."""

    def __init__(self, each_side: bool) -> None:
        self.each_side = each_side

    def met(self, dose: Dose) -> pl.Expr | None:
        if dose.sets not in (None, 1) or dose.load_kg is not None:
            return None
        reps = pl.col("reps")
        met = (pl.col("hold_s").fill_null(0) >= (dose.hold_s or 0)) & (
            reps.list.max() >= (dose.reps or 0)
        )
        if self.each_side and dose.side == "each":
            met = met & pl.col("side").is_null()
        return (met & (reps.list.len() > 0)).fill_null(False)


#: Where a `symptoms` entry ("YYYY-MM-DD code", forms.py) has its code.
_CODE_AT = len("YYYY-MM-DD ")


class PainFlareColumns:
    symptom_flags = True  # (the flag "adverse-event" is an adverse event: safety._adverse_days)

    def routes(self, params: BaseModel) -> pl.Expr:
        assert isinstance(params, safety.PainFlareParams)
        flare = (pl.col("max_pain") >= params.pause_at).fill_null(False)
        flagged = pl.col("symptoms").list.eval(pl.element().str.slice(_CODE_AT) == "adverse-event")
        adverse = pl.col("adverse") | flagged.list.any()
        return flare | adverse | (pl.col("flare_reports") > 0)

    def findings(self, params: BaseModel) -> Sequence[ColumnFinding]:
        return ()


class NewPainColumns:
    """New pain in columns: each exercise's sessions whose pain rose (`rises`: "YYYY-MM-DD
    rise" in the sessions' order, the rise not rounded) given to the rule's own
    `new_pain_findings`, once per distinct list."""

    symptom_flags = True  # (its rule reads no symptom flag)

    def routes(self, params: BaseModel) -> pl.Expr:
        return pl.lit(False)

    def findings(self, params: BaseModel) -> Sequence[ColumnFinding]:
        assert isinstance(params, safety.NewPainParams)
        rise = pl.col("rise")  # (the exercise's largest, not rounded; 0 when none)
        applies = (rise > 0) & (rise > params.tolerance - _ROUNDING)
        return (ColumnFinding(applies, (pl.col("rises"),), partial(_new_pain, params)),)


def _new_pain(params: safety.NewPainParams, exercise: str, *rises: str) -> list[Finding]:
    sessions = []
    for entry in rises:
        day, rise = entry.split(" ")
        sessions.append((dt.date.fromisoformat(day), safety.rounded_rise(float(rise))))
    return list(safety.new_pain_findings(exercise, sessions, params.tolerance))


class MissingDataColumns:
    """Missing data in columns: each exercise's outcomes without pain scores (`unscored_days`)
    given to the rule's own unscored_finding, and a week of sessions none of them scored to
    its unscored_week_finding (yielded after the exercises' findings, as the rule does)."""

    symptom_flags = True  # (its rule reads no symptom flag)

    def routes(self, params: BaseModel) -> pl.Expr:
        return pl.lit(False)

    def findings(self, params: BaseModel) -> Sequence[ColumnFinding]:
        unscored = ColumnFinding(pl.col("unscored") > 0, (pl.col("unscored_days"),), _unscored)
        done = pl.col("done").sum().over("pid")
        none_scored = (
            (done > 0)
            & (pl.col("met").sum().over("pid") == 0)
            & (pl.col("scored_sessions").sum().over("pid") == 0)
        )
        week = ColumnFinding(none_scored, (done,), _unscored_week, after=True)
        return (unscored, week)


def _unscored(exercise: str, *days: str) -> Finding:
    return safety.unscored_finding(exercise, [dt.date.fromisoformat(day) for day in days])


def _unscored_week(exercise: str, done: int) -> Finding:
    return safety.unscored_week_finding(done)


class AdherenceColumns:
    symptom_flags = True  # (its rule reads no symptom flag)

    def _needed(self, params: safety.AdherenceParams) -> pl.Expr:
        return pl.lit(params.min_sessions) if params.min_sessions else pl.col("required")

    def routes(self, params: BaseModel) -> pl.Expr:
        assert isinstance(params, safety.AdherenceParams)
        gap = pl.when(pl.col("any_session")).then(0).otherwise(pl.col("weeks_without_sessions") + 1)
        return (gap > 0) & (((gap % params.gap_weeks) == 0) | (gap > params.gap_weeks))

    def findings(self, params: BaseModel) -> Sequence[ColumnFinding]:
        assert isinstance(params, safety.AdherenceParams)
        needed = self._needed(params)
        too_few = ColumnFinding(
            pl.col("done") < needed, (pl.col("done"), needed), safety.too_few_sessions
        )
        return (too_few,)
