"""Pains the weekly step never reads, judged at each recompute so that a clinician hears of them.

Two kinds reach no patient's computed weeks: a quarantined line whose pains reach no
patient's safety rules (an id enrolled nowhere: the store's `unmatched` lines), and a record
stored for a discharged patient that no computation of theirs judged (the patient is never
computed again). Each is an alert on the clinic's channels while it waits, urgent by one
verdict for both (`verdict`: the safety rules' own, on the records read as nobody's, as a
dataset judges records without an enrollment); where judging fails, urgent. docs/store.md,
"Import and quarantine" and "Clinic workflows".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from pydantic import TypeAdapter

from progressor.core.engine import CompiledProgram, Engine
from progressor.core.models import Alert, Outcome, PainReport, Record
from progressor.core.timeline import raised_by_any
from progressor.errors import ProgressorError
from progressor.reading.records import held, salvage
from progressor.store.database import Store
from progressor.store.results import DISCHARGED_RULE
from progressor.store.values import UnheardRecord

#: An unmatched line's records as the store keeps them (canonical JSON: a list).
_RECORDS = TypeAdapter(list[Outcome | PainReport])


def judge(store: Store, engine: Engine) -> None:
    """Judge what waits unheard (the unmatched lines, then the discharged patients' records
    no computation judged) before a recompute's patients: judging must never stop a run."""
    programs = _Programs(store, engine)
    _judge_unmatched(store, programs)
    _judge_discharged(store, programs)


def verdict(programs: Sequence[CompiledProgram], records: Sequence[Record]) -> bool | None:
    """Whether records that reach no computed week are urgent: whether the safety rules of
    any of `programs` raise an alert on them read together as nobody's
    (timeline.raised_by_any: a rise over two sessions is seen). None where that cannot be
    told (no program to judge by, or the judging failed): sent as urgent."""
    if not programs:
        return None
    try:
        return bool(raised_by_any(programs, records))
    except Exception:  # (the run goes on; the alert stays urgent)
        return None


def discharged_message(unheard: UnheardRecord, record: Record, holds: Iterable[str]) -> str:
    """The alert of a discharged patient's record that no computation judged: that the
    patient is discharged, the record's id, day and place, what it holds, and what to do."""
    return (
        f"discharged: patient {unheard.patient!r} is discharged, and their record {unheard.id} "
        f"of {record.date} ({_where(unheard)}) holds {', '.join(holds)}; it reaches no safety "
        "rules (a discharged patient is never recomputed): re-enrol the patient (progressor "
        f"reenroll) to compute it, or void the record (progressor void {unheard.patient} "
        f"--record {unheard.id}) if it was logged by mistake"
    )


def unreadable_message(unheard: UnheardRecord) -> str:
    """The alert of a discharged patient's stored record that no longer reads as a record at
    all (damaged): whatever pain it held reaches no safety rule."""
    return (
        f"discharged: patient {unheard.patient!r} is discharged, and their record {unheard.id} "
        f"({_where(unheard)}) cannot be read as stored: any pain it holds reaches no safety "
        f"rules; look at it (progressor show {unheard.patient} --history), then re-enrol the "
        f"patient (progressor reenroll) or void the record (progressor void {unheard.patient} "
        f"--record {unheard.id})"
    )


def _where(unheard: UnheardRecord) -> str:
    """Where a stored record was imported from: its file, and line where known."""
    return f"{unheard.source}:{unheard.line}" if unheard.line is not None else unheard.source


class _Programs:
    """The store's program versions, each compiled once when first needed (None: it does
    not compile with this engine)."""

    def __init__(self, store: Store, engine: Engine) -> None:
        self._store, self._engine = store, engine
        self._compiled: dict[tuple[str, str], CompiledProgram | None] = {}

    def one(self, program: str, version: str) -> CompiledProgram | None:
        key = (program, version)
        if key not in self._compiled:
            try:
                self._compiled[key] = self._engine.compile(self._store.program(*key))
            except ProgressorError:
                self._compiled[key] = None
        return self._compiled[key]

    def every(self) -> list[CompiledProgram]:
        found = (self.one(program, version) for program, version in self._store.programs())
        return [compiled for compiled in found if compiled is not None]


def _judge_unmatched(store: Store, programs: _Programs) -> None:
    """Whether the alert of each quarantined line of an id enrolled nowhere is urgent: the
    verdict of every program the store holds on the records of all the waiting lines of that
    id read together (whose they are is not known), as a dataset's partition judges a
    patient's records without an enrollment. A program that does not compile judges
    nothing; with none, the alerts stay urgent."""
    waiting = store.unmatched_records()
    if not waiting:
        return
    compiled = programs.every()
    if not compiled:
        return
    by_id: dict[str, list[Outcome | PainReport]] = {}
    for _, patient, records in waiting:
        by_id.setdefault(patient, []).extend(_RECORDS.validate_json(records))
    urgent = {patient: verdict(compiled, found) for patient, found in by_id.items()}
    store.judge_unmatched([(entry, urgent[patient]) for entry, patient, _ in waiting])


def _judge_discharged(store: Store, programs: _Programs) -> None:
    """The alerts of discharged patients' records that no computation judged and that hold a
    pain score, an adverse event or a flag: urgent by the verdict of the patient's own
    program (the one they were discharged from) on all such records of theirs read together,
    as an unmatched id's lines are; urgent where their program does not compile or judging
    fails. They replace the alerts of the run before (a void or a re-enrolment ends one)."""
    by_patient: dict[str, list[tuple[UnheardRecord, Record, list[str]]]] = {}
    alerts: list[tuple[str, Alert]] = []
    for unheard in store.unheard_records():
        record = _stored(unheard)
        if record is None:  # (nothing can be read of it: whatever it held, a person must look)
            alert = Alert(
                patient=unheard.patient,
                week=0,
                rule=DISCHARGED_RULE,
                plugin="progressor",
                message=unreadable_message(unheard),
                urgent=True,
            )
            alerts.append((unheard.id, alert))
            continue
        holds = held([record])
        if holds:
            by_patient.setdefault(unheard.patient, []).append((unheard, record, holds))
    for patient, found in by_patient.items():
        first = found[0][0]
        compiled = programs.one(first.program, first.program_version)
        urgent = verdict([compiled] if compiled else [], [record for _, record, _ in found])
        alerts += [
            (
                unheard.id,
                Alert(
                    patient=patient,
                    week=0,
                    rule=DISCHARGED_RULE,
                    plugin="progressor",
                    message=discharged_message(unheard, record, holds),
                    urgent=urgent is None or urgent,
                ),
            )
            for unheard, record, holds in found
        ]
    store.replace_discharged_alerts(alerts)


def _stored(unheard: UnheardRecord) -> Record | None:
    """The stored record (an outcome, `o...`, or a pain report); a row that no longer reads
    as one (damaged, say) gives what the salvage makes out of it: judging must not stop the
    run, nor lose a pain it can read."""
    kind: type[Outcome] | type[PainReport] = Outcome if unheard.id[0] == "o" else PainReport
    try:
        return kind.model_validate_json(unheard.record)
    except ValueError:
        try:
            data = json.loads(unheard.record)
        except ValueError:
            return None
        return salvage(data) if isinstance(data, dict) else None
