"""The column engine (progressor.columns) on the store's side: recompute's `--engine`.

The column engine takes the lines of a dataset's patients and gives their output rows; the
store holds each record as the canonical JSON the import wrote from what the reader read,
which is such a line. So the due patients' inputs, read in one snapshot as the per-patient
path reads them, are handed over as lines, as they are stored (the engine's own plain check,
the reader's fast path, decides what it takes; it takes a null where the field may be null),
and its rows come back as the store's rows, through the same functions the per-patient path
stores with (`prescription_row`, `decision_row`).

Whether a run computes with the column engine at all is the dataset's policy, by the same
function (`column_engine_wanted`, progressor.engines): with "auto", a run of fewer
than AUTO_SMALLEST due patients goes per patient and polars is not imported.

The store first keeps to itself what the column engine cannot know: a patient with clinician
actions, or with more than one judged week (computed before), goes per patient; so does
one whose program failed to compile (the per-patient path records the error).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from progressor.core.engine import CompiledProgram
from progressor.store.values import (
    DecisionRow,
    PatientInputs,
    PatientResults,
    PrescriptionRow,
    decision_row,
    prescription_row,
)

if TYPE_CHECKING:  # (polars is optional: imported only where the column engine is chosen)
    from progressor.columns.engine import ColumnEngine


class Covered(NamedTuple):
    """A patient the column engine computed: the rows to store, the newest week's actions."""

    results: PatientResults
    actions: tuple[str, ...]


class StoreColumns:
    """The column engine for a recompute's batches: one per program version (the store may
    hold patients on several versions of one program; the engine knows a program by id)."""

    def __init__(self, as_of: dt.date) -> None:
        self.as_of = as_of
        self._engines: dict[tuple[str, str], ColumnEngine] = {}
        self._decisions: dict[bytes, DecisionRow] = {}
        self._followings: dict[bytes, tuple[str, PrescriptionRow]] = {}
        self._firsts: dict[tuple[str, str, dt.date], tuple[str, PrescriptionRow]] = {}

    def compute(
        self, batch: Sequence[tuple[PatientInputs, CompiledProgram | str]]
    ) -> dict[str, Covered]:
        """The patients of `batch` (inputs, compiled program or why it did not compile) the
        column engine covers; the others are left to the per-patient path."""
        groups: dict[tuple[str, str], list[PatientInputs]] = {}
        programs: dict[tuple[str, str], CompiledProgram] = {}
        for inputs, compiled in batch:
            if isinstance(compiled, str) or not self._may_take(inputs):
                continue
            key = (inputs.enrollment.program, inputs.program_version)
            groups.setdefault(key, []).append(inputs)
            programs[key] = compiled
        covered: dict[str, Covered] = {}
        for key, group in groups.items():
            covered.update(self._group(programs[key], group))
        return covered

    def _may_take(self, inputs: PatientInputs) -> bool:
        """Not a patient with clinician actions or an earlier week judged (the column engine
        judges one week, and takes a patient whose first week alone has ended)."""
        return not inputs.actions and inputs.computed_weeks <= 1

    def _engine(self, compiled: CompiledProgram) -> ColumnEngine:
        from progressor.columns.engine import ColumnEngine

        key = (compiled.program.id, compiled.program.version)
        if key not in self._engines:
            # (Only a first week: the store keeps every judged week's rows, the engine
            # writes the newest week's.)
            self._engines[key] = ColumnEngine({compiled.program.id: compiled}, most_weeks=1)
        return self._engines[key]

    def _group(self, compiled: CompiledProgram, group: list[PatientInputs]) -> dict[str, Covered]:
        by_patient = {inputs.enrollment.patient: inputs for inputs in group}
        rows, _ = self._engine(compiled).compute(
            list(by_patient),
            {p: [i.enrollment] for p, i in by_patient.items()},
            {p: [*i.outcomes, *i.pain_reports] for p, i in by_patient.items()},
            self.as_of,
        )
        covered = {}
        for patient, (tables, _counts) in rows.items():
            made = self._stored(compiled, by_patient[patient], tables)
            if made is not None:
                covered[patient] = made
        return covered

    def _stored(
        self, compiled: CompiledProgram, inputs: PatientInputs, tables: dict[str, bytes]
    ) -> Covered | None:
        """The column engine's rows of one patient as the store's rows: week 1's prescription
        (as the fold starts it), week 2's, and week 1's decisions. None (per patient, then)
        for rows the store words otherwise: alerts and set-aside records (never given in
        this version)."""
        if tables["alerts"] or tables["set_aside"]:
            return None
        patient = _json_text(inputs.enrollment.patient)
        head = f'{{"patient":{patient},'.encode()
        following = self._following(tables["prescriptions"], head, f'"patient":{patient}')
        decisions = [self._decision(line, head) for line in tables["decisions"].splitlines()]
        results = PatientResults(
            inputs.enrollment.patient,
            inputs.data_version,
            1,
            (self._first(compiled, inputs), following),
            tuple(decisions),
            computed_at=inputs.read_at,
            computed_import=inputs.read_import,
        )
        return Covered(results, tuple(row.action for row in decisions))

    def _first(self, compiled: CompiledProgram, inputs: PatientInputs) -> PrescriptionRow:
        """Week 1's prescriptions row, as the fold starts it (CompiledProgram.first_week). The
        column engine takes no overrides: week 1 is then the program's starting doses, and
        patients who start on one day differ in their id alone. So the row is made once for
        each program version and start (_with_id)."""
        enrollment = inputs.enrollment
        key = (compiled.program.id, compiled.program.version, enrollment.start)
        return _with_id(
            self._firsts,
            None if enrollment.overrides else key,
            f'"patient":{_json_text(enrollment.patient)}',
            lambda: prescription_row(compiled.first_week(enrollment)),
        )

    def _following(self, line: bytes, head: bytes, field: str) -> PrescriptionRow:
        """The column engine's prescription of the week after (`line`, led by the patient's
        `head`) as the store's row. Patients who start on one day and fared alike share it but
        for their id (`field`, the id's key and value): a row is made once for each text after
        the head (_with_id)."""
        key = line[len(head) :] if line.startswith(head) else None
        return _with_id(self._followings, key, field, lambda: prescription_row(json.loads(line)))

    def _decision(self, line: bytes, head: bytes) -> DecisionRow:
        """A decisions row of the column engine as the store's row. Most patients share their
        decisions (the engine decides each distinct exercise week once): a row is made once
        for each text after the patient's `head` (the week and the decision's fields)."""
        key = line[len(head) :] if line.startswith(head) else None
        made = self._decisions.get(key) if key is not None else None
        if made is None:
            fields = json.loads(line)
            judged = fields.pop("week")
            del fields["patient"]  # (the rest is the decision's JSON, as the store keeps it)
            made = decision_row(judged, fields)
            if key is not None:
                if len(self._decisions) >= _DECISIONS_KEPT:
                    self._decisions.clear()
                self._decisions[key] = made
        return made


def _with_id(
    kept: dict[Any, tuple[str, PrescriptionRow]],
    key: object | None,
    field: str,
    make: Callable[[], PrescriptionRow],
) -> PrescriptionRow:
    """A patient's prescriptions row (`field`: their id's key and value) made once for each
    `key` (None: made, not kept): another patient's is the kept row with their id put in,
    where the id's key is the row's only "patient" key (text holds none unescaped)."""
    made = kept.get(key) if key is not None else None
    if made is not None:
        first, row = made
        return row._replace(prescription=row.prescription.replace(first, field, 1))
    row = make()
    if key is not None and row.prescription.count('"patient":') == 1:
        if len(kept) >= _DECISIONS_KEPT:
            kept.clear()
        kept[key] = (field, row)
    return row


#: How many distinct decisions rows, and prescriptions rows, StoreColumns keeps (a few
#: hundred in a usual clinic week).
_DECISIONS_KEPT = 20_000

#: How the column engine writes a patient's id in its rows.
_json_text = json.JSONEncoder(ensure_ascii=False).encode
