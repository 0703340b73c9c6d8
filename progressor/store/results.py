"""The store's results side: what recompute reads and writes, and what clinicians see.

`Results` is half of `progressor.store.database.Store` (the other half keeps the inputs: programs,
enrollments, records and clinician actions). Both work on one SQLite connection through
`Connected`'s two kinds of transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from progressor.core.models import Alert, Decision, Prescription, SetAside
from progressor.core.timeline import NOBODYS_RULE
from progressor.store.queue import ReviewPage, select
from progressor.store.schema import RESULT_TABLES
from progressor.store.values import (
    ACTION_COLUMNS,
    ClinicianAction,
    PatientInputs,
    PatientResults,
    ReviewItem,
    StoreStatus,
    UnheardRecord,
    action_of_row,
    canonical_json,
    enrollment_of_row,
    now_text,
)


class Connected:
    """A store's SQLite connection and its transactions."""

    _db: sqlite3.Connection

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is stored, or none of it."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            if self._db.in_transaction:  # SQLite may have rolled back already (disk full)
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every query inside sees the same state."""
        self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            self._db.execute("COMMIT")


class Results(Connected):
    """Results (a cache of the weekly fold), the review queue, and recompute's reads."""

    # -- results ---------------------------------------------------------------------------------

    def prescriptions(self, patient: str) -> list[Prescription]:
        """A patient's stored prescriptions, week 1 first."""
        rows = self._db.execute(
            "SELECT prescription FROM prescriptions WHERE patient = ? ORDER BY week", (patient,)
        )
        return [Prescription.model_validate_json(text) for (text,) in rows]

    def decisions(self, patient: str, week: int | None = None) -> list[tuple[int, Decision]]:
        """(week, decision) of a patient, by week then exercise: the audit trail."""
        query = "SELECT week, decision FROM decisions WHERE patient = ?"
        args: tuple[Any, ...] = (patient,)
        if week is not None:
            query, args = query + " AND week = ?", (patient, week)
        rows = self._db.execute(query + " ORDER BY week, exercise", args)
        return [(w, Decision.model_validate_json(text)) for w, text in rows]

    def alerts(self, patient: str | None = None) -> list[Alert]:
        """The alerts of one patient, or of every patient, by patient and week."""
        query = "SELECT patient, week, rule, plugin, message, urgent FROM alerts"
        rows = (
            self._db.execute(query + " WHERE patient = ? ORDER BY week", (patient,))
            if patient is not None
            else self._db.execute(query + " ORDER BY patient, week")
        )
        return [
            Alert(patient=p, week=w, rule=r, plugin=g, message=m, urgent=bool(u))
            for p, w, r, g, m, u in rows
        ]

    def undelivered_alerts(self, channel: str) -> list[Alert]:
        """Every stored alert not yet sent on `channel` (a channel name and target, e.g.
        'webhook:https://...'), by patient and week: whatever week it belongs to, so that a
        missed run, a late diary or a channel that was down loses none."""
        rows = self._db.execute(
            "SELECT a.patient, a.week, a.rule, a.plugin, a.message, a.urgent FROM alerts a"
            " WHERE NOT EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.patient = a.patient"
            " AND d.week = a.week AND d.rule = a.rule AND d.message = a.message"
            " AND d.channel = ?) ORDER BY a.patient, a.week, a.rule, a.message",
            (channel,),
        )
        stored = [
            Alert(patient=p, week=w, rule=r, plugin=g, message=m, urgent=bool(u))
            for p, w, r, g, m, u in rows
        ]
        return stored + [alert for _, alert in self.unmatched_alerts(channel)]

    def unmatched_alerts(self, channel: str | None = None) -> list[tuple[int, Alert]]:
        """The alerts of the quarantined lines of ids enrolled nowhere that hold a pain or a
        flag, while the line waits (not settled by a later import, not fixed), by quarantine
        entry; with `channel`, those not yet sent on it. Week 0: no enrollment, no week (as
        a dataset's records without one). Urgent unless the safety rules judged otherwise
        (judge_unmatched, at each recompute)."""
        query = f"SELECT u.quarantine, u.patient, u.message, u.urgent FROM {WAITING_UNMATCHED}"
        args: tuple[str, ...] = ()
        if channel is not None:
            query += (
                " AND NOT EXISTS (SELECT 1 FROM unmatched_deliveries d"
                " WHERE d.quarantine = u.quarantine AND d.channel = ?)"
            )
            args = (channel,)
        rows = self._db.execute(query + " ORDER BY u.quarantine", args)
        return [
            (
                entry,
                Alert(
                    patient=p,
                    week=0,
                    rule=NOBODYS_RULE,
                    plugin="progressor",
                    message=m,
                    urgent=u is None or bool(u),
                ),
            )
            for entry, p, m, u in rows
        ]

    def unmatched_records(self) -> list[tuple[int, str, str]]:
        """The id and records (a JSON list) of each waiting unmatched line, by quarantine
        entry."""
        rows = self._db.execute(
            f"SELECT u.quarantine, u.patient, u.records FROM {WAITING_UNMATCHED}"
            " ORDER BY u.quarantine"
        )
        return [(entry, patient, records) for entry, patient, records in rows]

    def judge_unmatched(self, verdicts: Sequence[tuple[int, bool | None]]) -> None:
        """Whether each unmatched line's alert is urgent, by quarantine entry: the safety
        rules' verdict on its records (recompute); None where they could not judge it (it is
        then sent as urgent)."""
        with self._write() as db:
            db.executemany(
                "UPDATE unmatched SET urgent = ? WHERE quarantine = ?",
                ((None if urgent is None else int(urgent), entry) for entry, urgent in verdicts),
            )

    def unheard_records(self) -> list[UnheardRecord]:
        """The records of discharged patients that no computation of theirs judged (UNHEARD),
        by patient, then outcomes before pain reports, each by id."""
        found = []
        for prefix, table in RECORD_TABLES.items():
            found += [
                UnheardRecord(patient, program, version, f"{prefix}{number}", text, source, line)
                for patient, program, version, number, text, source, line in self._db.execute(
                    "SELECT r.patient, p.program, p.program_version, r.id, r.record, r.source,"
                    f" r.line FROM {table} r JOIN patient_state s USING (patient)"
                    f" JOIN patients p USING (patient) WHERE r.patient IN ({_DISCHARGED})"
                    f" AND {UNHEARD} ORDER BY r.patient, r.id"
                )
            ]
        return sorted(found, key=lambda r: r.patient)  # (stable: each table's order kept)

    def replace_discharged_alerts(self, alerts: Sequence[tuple[str, Alert]]) -> None:
        """Store the alerts of discharged patients' unheard records (record id, alert; week
        0, rule DISCHARGED_RULE) in place of those before, in one transaction: results, as
        a computed patient's alerts are, sent by `recompute --alerts` once a channel. One
        whose record was voided, or whose patient was re-enrolled, since it was judged is
        left out (the records are read again inside the transaction)."""
        with self._write() as db:
            still = {r.id for r in self.unheard_records()}
            db.execute(
                f"DELETE FROM alerts WHERE patient IN ({_DISCHARGED}) AND week = 0 AND rule = ?",
                (DISCHARGED_RULE,),
            )
            db.executemany(
                "INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (a.patient, a.week, a.rule, a.plugin, a.message, int(a.urgent))
                    for record, a in alerts
                    if record in still
                ),
            )

    def record_delivery(self, alert: Alert, channel: str) -> None:
        """Note that `alert` went out on `channel`: it is not sent there again."""
        with self._write() as db:
            if alert.week == 0 and alert.rule == NOBODYS_RULE:  # (an unmatched line's)
                db.execute(
                    "INSERT OR IGNORE INTO unmatched_deliveries SELECT quarantine, ?, ?"
                    " FROM unmatched WHERE patient = ? AND message = ?",
                    (channel, now_text(), alert.patient, alert.message),
                )
                return
            db.execute(
                "INSERT OR IGNORE INTO alert_deliveries VALUES (?, ?, ?, ?, ?, ?)",
                (alert.patient, alert.week, alert.rule, alert.message, channel, now_text()),
            )

    def status(self) -> StoreStatus:
        """Counts of what is stored, and how up to date the results are."""

        def count(query: str) -> int:
            return int(self._db.execute(query).fetchone()[0])

        with self._snapshot():
            latest = f"SELECT paused, flags FROM prescriptions p WHERE {_LATEST}"
            return StoreStatus(
                schema_version=self.schema_version(),
                programs=count("SELECT count(*) FROM programs"),
                patients=count("SELECT count(*) FROM patients"),
                outcomes=count("SELECT count(*) FROM outcomes"),
                pain_reports=count("SELECT count(*) FROM pain_reports"),
                quarantined=count("SELECT count(*) FROM quarantine WHERE settled_by IS NULL"),
                clinician_actions=count("SELECT count(*) FROM clinician_actions"),
                up_to_date=count(
                    "SELECT count(*) FROM patient_state WHERE computed_version = data_version"
                ),
                stale=count(f"SELECT count(*) FROM patient_state WHERE {_NEW_DATA}"),
                failed=count("SELECT count(*) FROM patient_state WHERE error IS NOT NULL"),
                paused=count(f"SELECT count(*) FROM ({latest}) WHERE paused > 0"),
                flagged=count(f"SELECT count(*) FROM ({latest}) WHERE flags > 0"),
                alerts=count("SELECT count(*) FROM alerts"),
            )

    def review_page(
        self,
        *,
        status: str | None = None,
        program: str | None = None,
        flag: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> ReviewPage:
        """The review queue filtered and paged (progressor.store.queue.select): `status`
        paused or flagged, the patients of `program`, those with a flag or alert of `flag`."""
        return select(
            self.review_queue(),
            status=status,
            program=program,
            flag=flag,
            offset=offset,
            limit=limit,
        )

    def review_queue(self) -> list[ReviewItem]:
        """Patients whose latest prescription is paused or flagged and still needs a clinician.

        A paused patient leaves the queue once a resume is recorded for that week; a flagged
        one once any clinician action is. Paused patients come first.
        """
        items = []
        with self._snapshot() as db:
            rows = db.execute(
                "SELECT p.patient, p.week, p.prescription,"
                " s.computed_version IS NULL OR s.computed_version != s.data_version"
                " FROM prescriptions p JOIN patient_state s USING (patient)"
                f" WHERE (p.paused > 0 OR p.flags > 0) AND {_LATEST} AND s.{_ENROLLED}"
                " ORDER BY p.patient"
            ).fetchall()
            for patient, week, text, pending in rows:
                acted = acted_since_data(db, patient, week)
                item = _review_item(Prescription.model_validate_json(text), acted, bool(pending))
                if item is None:
                    continue
                # Paused since an earlier week: say what paused it, not only that it is.
                latest = db.execute(
                    "SELECT week, rule, message FROM alerts WHERE patient = ? AND week < ?"
                    " ORDER BY week DESC, rule, message LIMIT 1",
                    (patient, week),
                ).fetchone()
                if latest and not any(latest[2] in reason for reason in item.reasons):
                    alerted = f"alert of week {latest[0]} ({latest[1]}): {latest[2]}"
                    item = _with_reason(item, alerted, latest[1])
                items.append(item)
            # An alert the week under way already raised (stored with that week's number, the
            # newest prescription's): the clinician hears of a Monday flare on Monday.
            by_patient = {i.patient: n for n, i in enumerate(items)}
            for patient, week, status, rule, message, program in db.execute(
                "SELECT a.patient, a.week, p.status, a.rule, a.message, e.program FROM alerts a"
                " JOIN prescriptions p ON p.patient = a.patient AND p.week = a.week"
                " JOIN patients e ON e.patient = a.patient"
                " WHERE a.week = (SELECT max(week) FROM prescriptions WHERE patient = a.patient)"
                f" AND a.patient IN (SELECT patient FROM patient_state WHERE {_ENROLLED})"
                " ORDER BY a.patient, a.rule, a.message"
            ):
                reason = (
                    f"alert in week {week}, under way ({rule}): {message} (the week is judged"
                    " when it ends)"
                )
                if patient not in by_patient and acted_since_data(db, patient, week):
                    continue  # seen: acknowledged (or acted on) since the data that raised it
                if patient in by_patient:
                    n = by_patient[patient]
                    items[n] = _with_reason(items[n], reason, rule)
                else:
                    by_patient[patient] = len(items)
                    items.append(
                        ReviewItem(patient, week, status, (reason,), False, program, flags=(rule,))
                    )
            listed = {i.patient for i in items}
            # A patient the last recompute could not compute at all needs someone too.
            for patient, error, program in db.execute(
                "SELECT s.patient, s.error, e.program FROM patient_state s"
                " JOIN patients e USING (patient) WHERE s.error IS NOT NULL ORDER BY s.patient"
            ):
                if patient not in listed:
                    reason = f"the last recompute failed: {error.splitlines()[0]}"
                    items.append(ReviewItem(patient, 0, "active", (reason,), True, program))
            # A discharged patient's records that no computation judged (the alerts of rule
            # DISCHARGED_RULE): a clinic that works from this queue, not from an alert
            # channel, must see them too. They leave it with a void or a re-enrolment.
            discharged: dict[str, int] = {}
            for patient, message, urgent, program in db.execute(
                "SELECT a.patient, a.message, a.urgent, e.program FROM alerts a"
                " JOIN patients e USING (patient) WHERE a.week = 0 AND a.rule = ?"
                " AND e.discharged IS NOT NULL ORDER BY a.patient, a.urgent DESC, a.message",
                (DISCHARGED_RULE,),
            ):
                reason = f"urgent: {message}" if urgent else message  # ("discharged: ...")
                if patient in discharged:
                    n = discharged[patient]
                    items[n] = _with_reason(items[n], reason, DISCHARGED_RULE)
                else:
                    discharged[patient] = len(items)
                    item = ReviewItem(
                        patient, 0, "active", (reason,), False, program, flags=(DISCHARGED_RULE,)
                    )
                    items.append(item)
        return sorted(items, key=lambda i: (i.status != "paused", i.patient))

    # -- recompute's side: due patients, inputs, results ----------------------------------------

    def computed_with(self, signature: str) -> int:
        """Record that results are now computed with code of `signature` (Engine.signature);
        when the stored ones were computed with other code (an upgrade of progressor or of a
        plugin, other plugins or blocks), every computed patient becomes due. How many did.
        """
        with self._write() as db:
            row = db.execute("SELECT value FROM store_meta WHERE key = 'code'").fetchone()
            if row is not None and row[0] == signature:
                return 0
            # (The earliest day: due whatever the run's day, until recomputed; a run killed
            # before it reaches a patient leaves it due, so the next run finishes the work.)
            stale = db.execute(
                "UPDATE patient_state SET next_due = '0001-01-01'"
                f" WHERE computed_version IS NOT NULL AND {_ENROLLED}"
            ).rowcount
            db.execute("INSERT OR REPLACE INTO store_meta VALUES ('code', ?)", (signature,))
        return stale

    def due(
        self, as_of: dt.date, after: str = "", limit: int = -1, patients: Sequence[str] = ()
    ) -> list[str]:
        """Patients (ordered, after `after`) with a newly ended week or data not yet computed.

        Read in patient order through every patient's row, `limit` at a time: the plan for a
        run where many are due (see `due_few` for a nightly run where few are).
        """
        query = f"SELECT patient FROM patient_state WHERE patient > :after AND {_DUE}"
        if patients:
            query += " AND patient IN (SELECT value FROM json_each(:patients))"
        rows = self._db.execute(
            query + " ORDER BY patient LIMIT :limit",
            {
                "as_of": as_of.isoformat(),
                "after": after,
                "limit": limit,
                "patients": json.dumps(list(patients)),
            },
        )
        return [patient for (patient,) in rows]

    def due_few(self, as_of: dt.date) -> list[str]:
        """Every due patient, in order, found through the indexes of `next_due` and of the
        patients with data not yet computed: reads about as many rows as there are due."""
        # (INDEXED BY: without statistics SQLite would rather scan the table in patient order.)
        rows = self._db.execute(
            "SELECT patient FROM patient_state INDEXED BY patient_state_next_due"
            " WHERE next_due <= :as_of UNION"
            " SELECT patient FROM patient_state INDEXED BY patient_state_stale"
            f" WHERE {_NEW_DATA} ORDER BY patient",
            {"as_of": as_of.isoformat()},
        )
        return [patient for (patient,) in rows]

    def count_patients(self, as_of: dt.date) -> tuple[int, int, int]:
        """(enrolled, not started: never computed, no week ended and nothing logged, due) as
        of a day, each counted through an index."""
        args = {"as_of": as_of.isoformat()}

        def count(query: str) -> int:
            return int(self._db.execute(query, args).fetchone()[0])

        enrolled = count(f"SELECT count(*) FROM patient_state WHERE {_ENROLLED}")
        # No week computed or ended (until then, next_due is start + 7 days) and nothing
        # logged or acted on (data_version 1): nothing to compute yet. (Enrolment may have
        # stored week 1's prescription already: that is all there is to compute.)
        not_started = count(
            "SELECT count(*) FROM patient_state WHERE computed_weeks = 0 AND next_due > :as_of"
            " AND data_version = 1"
        )
        due = count("SELECT count(*) FROM patient_state WHERE next_due <= :as_of") + count(
            "SELECT count(*) FROM patient_state INDEXED BY patient_state_stale"
            f" WHERE {_NEW_DATA} AND next_due > :as_of"
        )
        return enrolled, not_started, due

    def inputs(self, patients: Sequence[str]) -> list[PatientInputs]:
        """The inputs of the given patients, all read in one snapshot."""
        wanted = json.dumps(list(patients))
        within = "patient IN (SELECT value FROM json_each(?))"
        with self._snapshot() as db:
            read_at = now_text()  # (records imported after it are not in this snapshot)
            # (Imports take their ids in the order they commit: the snapshot holds every
            # record of an import up to this one, and none of a later one.)
            (read_import,) = db.execute("SELECT coalesce(max(id), 0) FROM imports").fetchone()
            arrived = "SELECT at FROM imports WHERE id = r.import"
            # (Each row kept as SQLite gives it, the patient first: _Stored.)
            outcomes: dict[str, list[_Stored]] = {}
            for stored in db.execute(
                f"SELECT r.patient, r.record, ({arrived}), r.source, r.line FROM outcomes r"
                f" WHERE r.{within} AND r.voided IS NULL AND r.ended IS NULL",
                (wanted,),
            ):
                outcomes.setdefault(stored[0], []).append(stored)
            reports: dict[str, list[_Stored]] = {}
            for stored in db.execute(
                f"SELECT r.patient, r.record, ({arrived}), r.source, r.line FROM pain_reports r"
                f" WHERE r.{within} AND r.voided IS NULL AND r.ended IS NULL",
                (wanted,),
            ):
                reports.setdefault(stored[0], []).append(stored)
            actions: dict[str, list[ClinicianAction]] = {}
            for row in db.execute(
                f"SELECT {ACTION_COLUMNS} FROM clinician_actions WHERE {within}"
                f" AND {CURRENT_ACTIONS} ORDER BY patient, week, id",
                (wanted,),
            ):
                actions.setdefault(row[1], []).append(action_of_row(row))
            rows = db.execute(
                "SELECT p.patient, p.program, p.start, p.overrides, p.program_version, g.toml,"
                " s.data_version, s.computed_weeks FROM patients p"
                " JOIN patient_state s USING (patient)"
                " JOIN programs g ON g.program = p.program AND g.version = p.program_version"
                f" WHERE p.{within} ORDER BY p.patient",
                (wanted,),
            ).fetchall()
        inputs = []
        moments: dict[str | None, dt.datetime | None] = {None: None}  # (a few imports' times)
        for patient, program, start, overrides, version, toml, data_version, weeks in rows:
            texts, texts_at, sources = _columns_of(outcomes.get(patient, ()), moments)
            report_texts, reports_at, report_sources = _columns_of(
                reports.get(patient, ()), moments
            )
            inputs.append(
                PatientInputs(
                    enrollment=enrollment_of_row(patient, program, start, overrides),
                    program_version=version,
                    toml=toml,
                    data_version=data_version,
                    computed_weeks=weeks,
                    outcomes=texts,
                    pain_reports=report_texts,
                    actions=tuple(actions.get(patient, ())),
                    outcomes_arrived=texts_at,
                    pain_reports_arrived=reports_at,
                    outcomes_from=sources,
                    pain_reports_from=report_sources,
                    read_at=read_at,
                    read_import=read_import,
                )
            )
        return inputs

    def set_aside(self, patient: str) -> list[SetAside]:
        """The records of a patient the rules set aside when they were last computed (an
        unknown exercise, a date before the start), at the file and line they came from."""
        rows = self._db.execute(
            "SELECT source, line, reason, record FROM set_aside WHERE patient = ? ORDER BY rowid",
            (patient,),
        )
        return [SetAside(source=s, line=n, reason=r, record=t) for s, n, r, t in rows]

    def write_results(self, batch: Sequence[PatientResults]) -> None:
        """Replace the results of a batch of patients, in one transaction.

        A patient whose computation failed keeps its previous results and gets the error.
        The batch's patients are replaced together, a statement a table (a statement a table
        and patient took twice as long: recompute's parent, which alone writes, spent half its
        time in them).
        """
        with self._write():
            if len({r.patient for r in batch}) < len(batch):  # (a patient twice: in order)
                for results in batch:
                    self._replace([results])
            else:
                self._replace(batch)

    def _replace(self, batch: Sequence[PatientResults]) -> None:
        """The results of patients given once each: the failed ones' error set, the others'
        rows of every result table replaced and their state marked computed."""
        db = self._db
        db.executemany(
            "UPDATE patient_state SET error = ? WHERE patient = ?",
            ((r.error, r.patient) for r in batch if r.error is not None),
        )
        done = [r for r in batch if r.error is None]
        if not done:
            return
        wanted = json.dumps([r.patient for r in done])
        for table in ("prescriptions", "decisions", "alerts", "set_aside"):
            db.execute(
                f"DELETE FROM {table} WHERE patient IN (SELECT value FROM json_each(?))",
                (wanted,),
            )
        db.executemany(
            "INSERT INTO set_aside VALUES (?, ?, ?, ?, ?)",
            ((r.patient, s.source, s.line, s.reason, s.record) for r in done for s in r.set_aside),
        )
        db.executemany(
            "INSERT INTO prescriptions VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((r.patient, *row) for r in done for row in r.prescriptions),
        )
        db.executemany(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((r.patient, *row) for r in done for row in r.decisions),
        )
        db.executemany(
            "INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?)",
            ((r.patient, *row) for r in done for row in r.alerts),
        )
        db.executemany(
            "UPDATE patient_state SET computed_version = ?, computed_weeks = ?, error = NULL,"
            # (None for a patient discharged while the run computed them: no week of theirs
            # is due again, as the discharge left it.)
            " next_due = (SELECT CASE WHEN discharged IS NULL THEN date(start, ?) END"
            " FROM patients WHERE patient = ?),"
            " computed_at = ?, computed_import = ? WHERE patient = ?",
            (
                (
                    r.data_version,
                    r.weeks,
                    f"+{7 * (r.weeks + 1)} days",
                    r.patient,
                    r.computed_at,
                    r.computed_import,
                    r.patient,
                )
                for r in done
            ),
        )

    def dump_results(self) -> Iterator[str]:
        """Every row of the result tables as canonical text, by key: for comparing stores."""
        for table, key in RESULT_TABLES.items():
            columns = _COMPARED.get(table, "*")
            cursor = self._db.execute(f"SELECT {columns} FROM {table} ORDER BY {key}")
            for row in cursor:
                yield f"{table}\t{canonical_json(list(row))}"


#: The unmatched lines that still wait in the quarantine (`u`, with their line `q`): neither
#: settled by a later import that stored what they hold nor fixed. A WHERE clause follows.
WAITING_UNMATCHED = (
    "unmatched u JOIN quarantine q ON q.id = u.quarantine WHERE q.settled_by IS NULL"
)

#: A record's visible id: `o` for an outcome, `p` for a pain report, then its row id.
RECORD_TABLES = {"o": "outcomes", "p": "pain_reports"}

#: The rule of the alert of a discharged patient's record that no computation judged: week 0,
#: as the unmatched lines' (no computed week holds it).
DISCHARGED_RULE = "discharged"

#: A record (`r`, a row of `outcomes` or `pain_reports`) that no computation of its patient
#: (`s`, their `patient_state`) judged, neither voided nor closed with an earlier enrollment:
#: imported after the newest import their stored results read, or any when that is not known
#: (never computed, or not since schema 11); or read, but dated after the week under way of
#: that computation, whose records the fold judged for alerts (a record dated tomorrow, or a
#: recompute run for an earlier --week, reads such a record and judges nothing of it).
UNHEARD = (
    "r.voided IS NULL AND r.ended IS NULL"
    " AND (s.computed_import IS NULL OR r.import > s.computed_import OR {beyond})"
)

#: A record (`r`) dated after the week under way of its patient's (`s`) last computation:
#: read by it where imported by then, and judged for nothing (the fold judges the ended
#: weeks, and the week under way for alerts).
BEYOND_JUDGED = (
    "r.date >= (SELECT date(start, '+' || (7 * (s.computed_weeks + 1)) || ' days')"
    " FROM patients WHERE patient = r.patient)"
)
UNHEARD = UNHEARD.format(beyond=BEYOND_JUDGED)

#: The discharged patients whose data changed since they were computed: only they can have
#: records no computation judged (through the partial index of such patients). An import
#: since the computation raises the data version, and so does the discharge of a patient
#: with records stored beyond the weeks judged (Clinic.discharge, and schema 11's migration).
_DISCHARGED = (
    "SELECT patient FROM patient_state INDEXED BY patient_state_stale"
    " WHERE computed_version IS NOT data_version"
    " AND patient IN (SELECT patient FROM patients WHERE discharged IS NOT NULL)"
)

#: The clinician actions of the enrollment in force (a re-enrolment starts its weeks anew).
CURRENT_ACTIONS = (
    "id > (SELECT actions_after FROM patients e WHERE e.patient = clinician_actions.patient)"
)

_LATEST = "p.week = (SELECT max(week) FROM prescriptions WHERE patient = p.patient)"

#: Not discharged: a discharge empties `next_due` (no week of theirs is ever due again).
_ENROLLED = "next_due IS NOT NULL"

#: Data not yet computed (computed_version is NULL before the first computation); the
#: partial index patient_state_stale holds exactly these rows.
_STALE = "computed_version IS NOT data_version"

#: Due with new data: data newer than the last computation, for a patient computed before or
#: with anything logged or acted on since enrolling (data_version 1: nothing yet). A patient
#: whose first week is under way is computed then: the week-1 prescription, and any alert in
#: what is logged so far (a flare must not wait for the week to end).
_NEW_DATA = f"{_STALE} AND {_ENROLLED} AND (computed_weeks >= 1 OR data_version > 1)"

#: Due as of the day :as_of: a week ended that was not yet computed (`next_due`, the day the
#: next week ends, has come), or new data.
_DUE = f"(next_due <= :as_of OR ({_NEW_DATA}))"


#: The columns a dump compares, where not all: when results were computed is not part of them.
_COMPARED = {
    "patient_state": "patient, data_version, computed_version, computed_weeks, error, next_due"
}


#: A stored record as recompute reads it (Results.inputs): its patient, text, when its
#: import was made, and where it was read (file, line).
_Stored = tuple[str, str, str | None, str, int | None]


def arrivals(db: sqlite3.Connection, patient: str) -> list[dt.datetime]:
    """When each import that brought records of the patient was made."""
    return [
        dt.datetime.fromisoformat(at)
        for (at,) in db.execute(
            "SELECT at FROM imports WHERE id IN ("
            " SELECT import FROM outcomes WHERE patient = :patient"
            " UNION SELECT import FROM pain_reports WHERE patient = :patient)",
            {"patient": patient},
        )
    ]


def acted_since_data(
    db: sqlite3.Connection, patient: str, week: int
) -> list[tuple[str, str | None]]:
    """(kind, exercise) of the clinician actions for `week` or later recorded after the
    patient's newest data arrived: only those settle a review, since data that arrived later
    (a late diary, say) may hold what the clinician never saw. (Compared in Python: SQLite's
    date functions stop at milliseconds.)"""
    newest = max(arrivals(db, patient), default=None)
    return [
        (kind, exercise)
        for kind, exercise, at in db.execute(
            "SELECT kind, exercise, coalesce(recorded_at, at) FROM clinician_actions"
            f" WHERE patient = ? AND week >= ? AND {CURRENT_ACTIONS}",
            (patient, week),
        )
        if newest is None or dt.datetime.fromisoformat(at) > newest
    ]


def _columns_of(
    stored: Sequence[_Stored], moments: dict[str | None, dt.datetime | None]
) -> tuple[tuple[str, ...], tuple[dt.datetime | None, ...], tuple[tuple[str, int | None], ...]]:
    """A patient's stored records of one kind as their texts, arrival times and places (file,
    line), each in the records' order: one transposition (zip) where six passes were.
    `moments`: each import time's text read once (a run meets the same few again and again)."""
    if not stored:
        return (), (), ()
    _, texts, ats, sources, lines = zip(*stored, strict=True)
    for at in ats:
        if at not in moments:
            moments[at] = dt.datetime.fromisoformat(at)
    return texts, tuple(map(moments.__getitem__, ats)), tuple(zip(sources, lines, strict=True))


def _review_item(
    prescription: Prescription, acted: Sequence[tuple[str, str | None]], pending: bool
) -> ReviewItem | None:
    """The review entry of a patient's newest prescription, unless the clinician's actions
    (kind, exercise) settled it: a program pause by a resume of the program; paused exercises
    by resumes of them all (or of the program); flags by any action."""
    paused = [n for n, s in prescription.exercises.items() if s.status == "paused"]
    reasons = []
    if prescription.status == "paused":
        reasons.append("program paused until a clinician resumes it")
    elif paused:
        reasons.append(f"paused: {', '.join(paused)}")
    reasons.extend(f"{flag.code}: {flag.message}" for flag in prescription.flags)
    resumed = {exercise for kind, exercise in acted if kind == "resume"}
    if prescription.status == "paused":
        handled = None in resumed
    elif paused:
        handled = None in resumed or set(paused) <= resumed
    else:
        handled = bool(acted)
    if handled or not reasons:
        return None
    return ReviewItem(
        prescription.patient,
        prescription.week,
        prescription.status,
        tuple(reasons),
        pending,
        prescription.program,
        paused=prescription.status == "paused" or bool(paused),
        flags=tuple(sorted({n for f in prescription.flags for n in (f.code, f.rule)})),
    )


def _with_reason(item: ReviewItem, reason: str, rule: str) -> ReviewItem:
    """`item` with one more reason, from an alert of `rule`."""
    flags = tuple(sorted({*item.flags, rule}))
    return dataclasses.replace(item, reasons=(*item.reasons, reason), flags=flags)
