"""The red-flags rule in columns, for progressor's column engine (progressor.columns).

Needs polars (`pip install 'progressor[columns]'`); imported only by the rule's
`column_form()`, which only the column engine calls. The column form decides nothing of
its own: each distinct set of a patient's symptom flags is given to `red_flag_findings`,
the rule's one meaning, and the engine raises the flags and alerts as the step does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import partial

import polars as pl
from pydantic import BaseModel

from progressor import Finding
from progressor.columns import ColumnFinding
from progressor_red_flags.rules import RedFlagsParams, red_flag_findings

#: Where a `symptoms` entry ("YYYY-MM-DD code") has its code.
_CODE_AT = len("YYYY-MM-DD ")


class RedFlagsColumns:
    """Red flags in columns: every patient with a symptom flag gets the rule's findings."""

    symptom_flags = True  # (its finding reads the `symptoms` column)

    def routes(self, params: BaseModel) -> pl.Expr:
        # Nothing to leave to the per-patient engine: a code logged under an unknown exercise
        # (which the rule also reads) already sends its patient there.
        return pl.lit(False)

    def findings(self, params: BaseModel) -> Sequence[ColumnFinding]:
        assert isinstance(params, RedFlagsParams)
        symptoms = pl.col("symptoms")
        return (ColumnFinding(symptoms.list.len() > 0, (symptoms,), partial(_found, params)),)


def _found(params: RedFlagsParams, exercise: str, *symptoms: str) -> list[Finding]:
    """The rule's findings (the whole program's) from one patient's symptoms."""
    logged = [(dt.date.fromisoformat(s[: _CODE_AT - 1]), s[_CODE_AT:]) for s in symptoms]
    return list(red_flag_findings(logged, params))
