"""The clinic's workflows on the store: list patients, read a patient's records and the
quarantine, discharge a patient, void a wrongly logged record.

`Clinic` is the part of `progressor.store.database.Store` these live in (the store keeps
enrollments, imports and re-enrolment, which need its import path). Nothing here deletes: a
discharge and a void are rows of their own, with who, when and why (docs/store.md).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Literal

from progressor.core.models import Prescription, StepResult
from progressor.store.results import BEYOND_JUDGED, RECORD_TABLES, Results
from progressor.store.values import StoreError, now_text

#: What `Store.patients` can filter on: a computed patient's newest status, a discharge, or
#: an enrollment nothing was computed for yet (enrolled through the API without an engine).
PatientStatus = Literal["active", "paused", "discharged", "not-computed"]
PATIENT_STATUSES: tuple[PatientStatus, ...] = ("active", "paused", "discharged", "not-computed")

_RECORD_ID = re.compile(r"^([op])([1-9][0-9]{0,17})$")


@dataclass(frozen=True)
class PatientEntry:
    """One patient as the clinic's list shows them."""

    patient: str
    program: str
    program_version: str
    status: PatientStatus
    week: int | None  # the newest computed week (None: nothing computed)
    start: dt.date  # the first day of week 1 of the enrollment in force
    enrolled_at: str  # when the store recorded the enrollment in force


@dataclass(frozen=True)
class StoredRecord:
    """A record as stored: its visible id (`o12`, `p3`), where it came from, and its void."""

    id: str
    date: dt.date
    exercise: str | None  # None: a pain report
    record: str  # canonical JSON, as imported
    source: str
    line: int | None
    voided: bool


@dataclass(frozen=True)
class QuarantineEntry:
    """A quarantined line: where it came from, why, its text, and what became of it."""

    id: int
    source: str
    line: int | None
    reason: str
    text: str
    state: Literal["waiting", "settled", "fixed"]  # settled: a later import stored it
    fix: str | None  # the fixed text a `reimport` stored, with who and why


class Clinic(Results):
    """Listing, discharging and voiding (see the module's docstring)."""

    def patients(
        self, status: PatientStatus | None = None, program: str | None = None
    ) -> list[PatientEntry]:
        """Every enrolled patient (or those of `status`, on `program`), by id."""
        rows = self._db.execute(
            "SELECT p.patient, p.program, p.program_version, p.start, p.enrolled_at,"
            " p.discharged IS NOT NULL, r.week, r.status FROM patients p"
            " LEFT JOIN prescriptions r ON r.patient = p.patient"
            " AND r.week = (SELECT max(week) FROM prescriptions WHERE patient = p.patient)"
            " WHERE :program IS NULL OR p.program = :program ORDER BY p.patient",
            {"program": program},
        )
        entries = [
            PatientEntry(
                patient,
                name,
                version,
                "discharged" if discharged else (current or "not-computed"),
                week,
                dt.date.fromisoformat(start),
                enrolled_at,
            )
            for patient, name, version, start, enrolled_at, discharged, week, current in rows
        ]
        return [e for e in entries if status is None or e.status == status]

    def programs(self) -> list[tuple[str, str]]:
        """The (id, version) of every program the store holds, by id then version."""
        rows = self._db.execute("SELECT program, version FROM programs ORDER BY program, version")
        return [(program, version) for program, version in rows]

    def result_of(self, patient: str, prescription: Prescription) -> StepResult:
        """A computed week as a StepResult (what `show` and a handout say of it): the
        decisions that made it, and the alerts of the week that ended and of the week under
        way (a flare logged yesterday stops the handout before the week is judged)."""
        week = prescription.week
        decisions = tuple(d for _, d in self.decisions(patient, week - 1))
        alerts = tuple(a for a in self.alerts(patient) if a.week in (week - 1, week))
        return StepResult(prescription=prescription, decisions=decisions, alerts=alerts)

    def is_discharged(self, patient: str) -> bool:
        row = self._db.execute(
            "SELECT discharged IS NOT NULL FROM patients WHERE patient = ?", (patient,)
        ).fetchone()
        if row is None:
            raise StoreError(f"patient {patient!r} is not enrolled")
        return bool(row[0])

    def records(self, patient: str) -> list[StoredRecord]:
        """A patient's stored records, voided ones too, by date then id."""
        found = []
        for prefix, table in RECORD_TABLES.items():
            exercise = "exercise" if table == "outcomes" else "NULL"
            for id_, date, name, text, source, line, voided in self._db.execute(
                f"SELECT id, date, {exercise}, record, source, line, voided IS NOT NULL"
                f" FROM {table} WHERE patient = ?",
                (patient,),
            ):
                found.append(
                    StoredRecord(
                        f"{prefix}{id_}",
                        dt.date.fromisoformat(date),
                        name,
                        text,
                        source,
                        line,
                        bool(voided),
                    )
                )
        return sorted(found, key=lambda r: (r.date, r.id[0], int(r.id[1:])))

    def discharge(self, patient: str, note: str, who: str) -> None:
        """Discharge a patient: their enrollment, records and results stay, recompute never
        computes them again and the review queue no longer lists them (a re-enrolment takes
        them back). The enrollment is kept with who, when and why."""
        _need_note(note, who)
        with self._write() as db:
            if self.is_discharged(patient):
                raise StoreError(f"patient {patient!r} is already discharged")
            change = self._record_change(patient, "discharge", note, who)
            db.execute("UPDATE patients SET discharged = ? WHERE patient = ?", (change, patient))
            # No next week is ever due (an empty `next_due` is how recompute and the review
            # queue know a discharge), and a failure is nobody's to fix any more.
            db.execute(
                "UPDATE patient_state SET next_due = NULL, error = NULL WHERE patient = ?",
                (patient,),
            )
            # Records stored beyond the weeks judged (read, judged for nothing) wait unheard
            # as new ones do: the data version rises, so that recompute's judging finds the
            # patient among those whose data changed (results.UNHEARD).
            beyond = " OR ".join(
                f"EXISTS (SELECT 1 FROM {table} r JOIN patient_state s USING (patient)"
                f" WHERE r.patient = :patient AND r.voided IS NULL AND r.ended IS NULL"
                f" AND {BEYOND_JUDGED})"
                for table in ("outcomes", "pain_reports")
            )
            db.execute(
                "UPDATE patient_state SET data_version = data_version + 1"
                f" WHERE patient = :patient AND ({beyond})",
                {"patient": patient},
            )

    def _record_change(
        self, patient: str, kind: Literal["reenroll", "discharge"], note: str, who: str
    ) -> int:
        """Keep the enrollment in force before a change, with who, when and why: its id."""
        cursor = self._db.execute(
            "INSERT INTO enrollment_changes"
            " (patient, kind, program, program_version, start, overrides, note, who, at)"
            " SELECT patient, ?, program, program_version, start, overrides, ?, ?, ?"
            " FROM patients WHERE patient = ?",
            (kind, note, who, now_text(), patient),
        )
        return int(cursor.lastrowid or 0)

    def void(self, patient: str, record: str, note: str, who: str) -> None:
        """Void a wrongly logged record (`o12`, `p3`, as `records` names them): it stays
        stored, with who, when and why, and the next recompute computes the patient again
        without it (from week 1: the fold is whole, so every week after the record's too)."""
        _need_note(note, who)
        match = _RECORD_ID.match(record)
        if match is None:
            raise StoreError(
                f"{record!r} is not a record id: an outcome is o<number>, a pain report "
                "p<number>, as `progressor show PATIENT --history` lists them"
            )
        table, number = RECORD_TABLES[match[1]], int(match[2])
        with self._write() as db:
            row = db.execute(
                f"SELECT patient, voided FROM {table} WHERE id = ?", (number,)
            ).fetchone()
            if row is None or row[0] != patient:
                raise StoreError(f"patient {patient!r} has no record {record}")
            if row[1] is not None:
                raise StoreError(f"record {record} of {patient!r} is already voided")
            void = db.execute(
                "INSERT INTO voids (patient, record, note, who, at) VALUES (?, ?, ?, ?, ?)",
                (patient, record, note, who, now_text()),
            ).lastrowid
            db.execute(f"UPDATE {table} SET voided = ? WHERE id = ?", (void, number))
            db.execute(
                "UPDATE patient_state SET data_version = data_version + 1 WHERE patient = ?",
                (patient,),
            )

    def quarantined(self, patient: str | None = None) -> list[QuarantineEntry]:
        """The quarantine with each line's state, in the order first seen; with `patient`,
        the lines whose text names that patient (a line may not be readable enough to say
        whose it is: its text is what is searched)."""
        rows = self._db.execute(
            "SELECT q.id, q.source, q.line, q.reason, q.raw, q.settled_by, f.text, f.who,"
            " f.note FROM quarantine q LEFT JOIN quarantine_fixes f ON f.quarantine = q.id"
            " ORDER BY q.id"
        )
        named = _names(patient) if patient is not None else None
        entries = []
        for id_, source, line, reason, raw, settled, fixed, who, note in rows:
            if named is not None and not named.search(raw):
                continue
            state: Literal["waiting", "settled", "fixed"] = (
                "fixed" if fixed is not None else "settled" if settled is not None else "waiting"
            )
            fix = f"{fixed} (by {who}: {note})" if fixed is not None else None
            entries.append(QuarantineEntry(id_, source, line, reason, raw, state, fix))
        return entries


def _names(patient: str) -> re.Pattern[str]:
    """The patient's id as a whole value in a line of JSON or CSV (not inside another id)."""
    quoted = re.escape(json.dumps(patient)[1:-1])
    return re.compile(rf"(?<![\w.-]){quoted}(?![\w.-])")


def _need_note(note: str, who: str) -> None:
    if not note.strip() or not who.strip():
        raise StoreError("this needs a note (why) and who did it")
