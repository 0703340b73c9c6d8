"""The column engine: a partition's patients evaluated together in columns (polars).

Needs the `columns` extra (`pip install 'progressor[columns]'`). Components give their
column forms through an optional `column_form()` method (progressor.columns.forms); a patient
the column path does not cover goes to the per-patient engine, with the same output.
"""

from progressor.columns.forms import (
    COUNTS_ONLY,
    ColumnFinding,
    RuleColumns,
    StrategyColumns,
    TypeColumns,
    column_form,
)

__all__ = [
    "COUNTS_ONLY",
    "ColumnFinding",
    "RuleColumns",
    "StrategyColumns",
    "TypeColumns",
    "column_form",
]
