"""The store's schema: ordered migrations (PRAGMA user_version) and the result tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from progressor.store.values import StoreError

#: Migration i (0-based) takes a store from schema version i to i + 1 (PRAGMA user_version).
#: Append only: a released script is never edited, a change is a new script.
MIGRATIONS: tuple[str, ...] = (
    # 1: inputs as they came, and the results of the weekly fold.
    """
    CREATE TABLE programs (
        program TEXT NOT NULL, version TEXT NOT NULL, hash TEXT NOT NULL,
        toml TEXT NOT NULL, added_at TEXT NOT NULL,
        PRIMARY KEY (program, version)
    );
    CREATE TABLE patients (
        patient TEXT PRIMARY KEY, program TEXT NOT NULL, program_version TEXT NOT NULL,
        program_hash TEXT NOT NULL, start TEXT NOT NULL, overrides TEXT NOT NULL,
        enrolled_at TEXT NOT NULL,
        FOREIGN KEY (program, program_version) REFERENCES programs (program, version)
    );
    CREATE TABLE imports (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, at TEXT NOT NULL,
        added INTEGER NOT NULL, duplicates INTEGER NOT NULL, quarantined INTEGER NOT NULL
    );
    CREATE TABLE outcomes (
        id INTEGER PRIMARY KEY, patient TEXT NOT NULL REFERENCES patients (patient),
        hash TEXT NOT NULL, date TEXT NOT NULL, exercise TEXT NOT NULL, record TEXT NOT NULL,
        source TEXT NOT NULL, line INTEGER, import INTEGER REFERENCES imports (id),
        UNIQUE (patient, hash)
    );
    CREATE TABLE pain_reports (
        id INTEGER PRIMARY KEY, patient TEXT NOT NULL REFERENCES patients (patient),
        hash TEXT NOT NULL, date TEXT NOT NULL, record TEXT NOT NULL,
        source TEXT NOT NULL, line INTEGER, import INTEGER REFERENCES imports (id),
        UNIQUE (patient, hash)
    );
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
        line INTEGER, reason TEXT NOT NULL, raw TEXT NOT NULL,
        import INTEGER REFERENCES imports (id)
    );
    CREATE TABLE clinician_actions (
        id INTEGER PRIMARY KEY, patient TEXT NOT NULL REFERENCES patients (patient),
        kind TEXT NOT NULL CHECK (kind IN ('resume', 'override')), exercise TEXT, dose TEXT,
        note TEXT NOT NULL, who TEXT NOT NULL, at TEXT NOT NULL, week INTEGER NOT NULL
    );
    CREATE INDEX clinician_actions_patient ON clinician_actions (patient, week);
    CREATE TABLE prescriptions (
        patient TEXT NOT NULL REFERENCES patients (patient), week INTEGER NOT NULL,
        start TEXT NOT NULL, status TEXT NOT NULL, paused INTEGER NOT NULL,
        flags INTEGER NOT NULL, prescription TEXT NOT NULL,
        PRIMARY KEY (patient, week)
    );
    CREATE TABLE decisions (
        patient TEXT NOT NULL REFERENCES patients (patient), week INTEGER NOT NULL,
        exercise TEXT NOT NULL, action TEXT NOT NULL, rule TEXT NOT NULL, plugin TEXT NOT NULL,
        reason TEXT NOT NULL, decision TEXT NOT NULL,
        PRIMARY KEY (patient, week, exercise)
    );
    CREATE TABLE alerts (
        patient TEXT NOT NULL REFERENCES patients (patient), week INTEGER NOT NULL,
        rule TEXT NOT NULL, plugin TEXT NOT NULL, message TEXT NOT NULL, urgent INTEGER NOT NULL,
        PRIMARY KEY (patient, week, rule, message)
    );
    """,
    # 2: per-patient bookkeeping for incremental recompute. A store made before it has every
    # patient marked as never computed, so the next recompute rebuilds all results.
    """
    CREATE TABLE patient_state (
        patient TEXT PRIMARY KEY REFERENCES patients (patient),
        data_version INTEGER NOT NULL DEFAULT 1,
        computed_version INTEGER,
        computed_weeks INTEGER NOT NULL DEFAULT 0,
        error TEXT
    );
    INSERT INTO patient_state (patient) SELECT patient FROM patients;
    """,
    # 3: which alert went out on which channel (and target), so that no run sends it twice.
    # Kept apart from `alerts`, which recompute rewrites.
    """
    CREATE TABLE alert_deliveries (
        patient TEXT NOT NULL REFERENCES patients (patient), week INTEGER NOT NULL,
        rule TEXT NOT NULL, message TEXT NOT NULL, channel TEXT NOT NULL,
        delivered_at TEXT NOT NULL,
        PRIMARY KEY (patient, week, rule, message, channel)
    );
    """,
    # 4: when each clinician action was recorded (`at` is when the clinician says it was
    # taken). The review compares it with when the patient's data arrived: data imported
    # after an action may hold what the clinician never saw. Older actions keep NULL and
    # count from their `at`.
    """
    ALTER TABLE clinician_actions ADD COLUMN recorded_at TEXT;
    """,
    # 5: the day each patient's next week ends (`next_due`: start + 7 x (computed weeks + 1)),
    # indexed, and an index of the patients with data not yet computed: a nightly recompute
    # finds its due patients through them, not by reading every patient's row. And when the
    # stored results' inputs were read (`computed_at`): a resume is refused while records
    # imported since wait to be computed.
    """
    ALTER TABLE patient_state ADD COLUMN next_due TEXT;
    ALTER TABLE patient_state ADD COLUMN computed_at TEXT;
    UPDATE patient_state SET next_due = (
        SELECT date(p.start, '+' || (7 * (patient_state.computed_weeks + 1)) || ' days')
        FROM patients p WHERE p.patient = patient_state.patient);
    CREATE INDEX patient_state_next_due ON patient_state (next_due);
    CREATE INDEX patient_state_unstarted ON patient_state (computed_weeks, next_due);
    CREATE INDEX patient_state_stale ON patient_state (patient)
        WHERE computed_version IS NOT data_version;
    """,
    # 6: a third kind of clinician action, 'acknowledge': a flag reviewed, nothing changed.
    # SQLite cannot alter a CHECK constraint: the table is made again with its rows.
    """
    CREATE TABLE clinician_actions_6 (
        id INTEGER PRIMARY KEY, patient TEXT NOT NULL REFERENCES patients (patient),
        kind TEXT NOT NULL CHECK (kind IN ('resume', 'override', 'acknowledge')),
        exercise TEXT, dose TEXT, note TEXT NOT NULL, who TEXT NOT NULL, at TEXT NOT NULL,
        week INTEGER NOT NULL, recorded_at TEXT
    );
    INSERT INTO clinician_actions_6
        SELECT id, patient, kind, exercise, dose, note, who, at, week, recorded_at
        FROM clinician_actions;
    DROP TABLE clinician_actions;
    ALTER TABLE clinician_actions_6 RENAME TO clinician_actions;
    CREATE INDEX clinician_actions_patient ON clinician_actions (patient, week);
    """,
    # 7: a quarantined line settled by a later import that stored it (the patient enrolled
    # since, say): `settled_by` is that import; status counts the lines still waiting.
    """
    ALTER TABLE quarantine ADD COLUMN settled_by INTEGER REFERENCES imports (id);
    CREATE INDEX quarantine_open ON quarantine (raw) WHERE settled_by IS NULL;
    """,
    # 8: what the stored results were computed with (progressor.core.plugins.code_signature:
    # progressor's version, the plugins and their versions, the block list). A recompute with
    # other code makes every computed patient due again; a store made before it is
    # recomputed whole by its first recompute.
    # And the records the rules set aside when the patient was computed (an unknown
    # exercise, a date before the start), each at the file and line it was imported from.
    """
    CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE set_aside (
        patient TEXT NOT NULL REFERENCES patients (patient), source TEXT NOT NULL,
        line INTEGER, reason TEXT NOT NULL, record TEXT NOT NULL
    );
    CREATE INDEX set_aside_patient ON set_aside (patient);
    """,
    # 9: the clinic's workflows (docs/store.md). A change of enrollment (a move to another
    # program or version, a discharge) keeps the enrollment it ended, with who, when and why;
    # `patients.discharged` is the discharge in force, `patients.actions_after` the newest
    # clinician action of an earlier enrollment (its weeks are not the new one's), and a
    # record's `ended` the re-enrolment that closed the enrollment it was judged in. A voided
    # record stays stored with the void that set it aside from recompute. A quarantined line
    # fixed and imported again keeps the fix beside it.
    """
    CREATE TABLE enrollment_changes (
        id INTEGER PRIMARY KEY, patient TEXT NOT NULL REFERENCES patients (patient),
        kind TEXT NOT NULL CHECK (kind IN ('reenroll', 'discharge')),
        program TEXT NOT NULL, program_version TEXT NOT NULL, start TEXT NOT NULL,
        overrides TEXT NOT NULL, note TEXT NOT NULL, who TEXT NOT NULL, at TEXT NOT NULL
    );
    CREATE INDEX enrollment_changes_patient ON enrollment_changes (patient);
    ALTER TABLE patients ADD COLUMN discharged INTEGER REFERENCES enrollment_changes (id);
    ALTER TABLE patients ADD COLUMN actions_after INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE voids (
        id INTEGER PRIMARY KEY, patient TEXT NOT NULL REFERENCES patients (patient),
        record TEXT NOT NULL UNIQUE, note TEXT NOT NULL, who TEXT NOT NULL, at TEXT NOT NULL
    );
    ALTER TABLE outcomes ADD COLUMN voided INTEGER REFERENCES voids (id);
    ALTER TABLE pain_reports ADD COLUMN voided INTEGER REFERENCES voids (id);
    ALTER TABLE outcomes ADD COLUMN ended INTEGER REFERENCES enrollment_changes (id);
    ALTER TABLE pain_reports ADD COLUMN ended INTEGER REFERENCES enrollment_changes (id);
    CREATE TABLE quarantine_fixes (
        quarantine INTEGER PRIMARY KEY REFERENCES quarantine (id),
        import INTEGER NOT NULL REFERENCES imports (id), text TEXT NOT NULL,
        note TEXT NOT NULL, who TEXT NOT NULL, at TEXT NOT NULL
    );
    """,
    # 10: a quarantined line whose pains reach no patient's safety rules (an id enrolled
    # nowhere, no patient at all) and that holds a pain score or a flag: a flare under a
    # mistyped id, so an alert says so on the clinic's channels until the line is settled or
    # fixed. `message` says what the line holds; `urgent` is the safety rules' verdict (NULL
    # until a recompute judges it: sent as urgent). Filled in from the lines already waiting
    # (Store._fill_unmatched).
    """
    CREATE TABLE unmatched (
        quarantine INTEGER PRIMARY KEY REFERENCES quarantine (id),
        patient TEXT NOT NULL, records TEXT NOT NULL, message TEXT NOT NULL, urgent INTEGER,
        key TEXT NOT NULL
    );
    CREATE INDEX unmatched_alert ON unmatched (patient, message);
    CREATE INDEX unmatched_key ON unmatched (patient, key);
    CREATE TABLE unmatched_deliveries (
        quarantine INTEGER NOT NULL REFERENCES quarantine (id), channel TEXT NOT NULL,
        delivered_at TEXT NOT NULL,
        PRIMARY KEY (quarantine, channel)
    );
    """,
    # 11: the newest import whose records a patient's stored results read (`computed_import`):
    # a record of a later import was never computed. A discharged patient is never computed
    # again, so such a record of theirs that holds a pain or a flag reaches no safety rule:
    # recompute raises an alert for it (docs/store.md). Filled in where the results are up to
    # date (every record stored was read); empty elsewhere: which were read is not known, so
    # every record of the enrollment in force counts as not read (a false alarm at worst).
    # A discharged patient with records stored beyond the weeks their results judged (read,
    # judged for nothing) gets a new data version, as a discharge now gives one: recompute
    # looks for such records among the patients whose data changed.
    """
    ALTER TABLE patient_state ADD COLUMN computed_import INTEGER;
    UPDATE patient_state SET computed_import = (SELECT coalesce(max(id), 0) FROM imports)
        WHERE computed_version = data_version;
    UPDATE patient_state SET data_version = data_version + 1
        WHERE patient IN (SELECT patient FROM patients WHERE discharged IS NOT NULL)
        AND (EXISTS (SELECT 1 FROM outcomes r WHERE r.patient = patient_state.patient
                AND r.voided IS NULL AND r.ended IS NULL
                AND r.date >= (SELECT date(start, '+' || (7 * (patient_state.computed_weeks + 1))
                    || ' days') FROM patients WHERE patient = r.patient))
            OR EXISTS (SELECT 1 FROM pain_reports r WHERE r.patient = patient_state.patient
                AND r.voided IS NULL AND r.ended IS NULL
                AND r.date >= (SELECT date(start, '+' || (7 * (patient_state.computed_weeks + 1))
                    || ' days') FROM patients WHERE patient = r.patient)));
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

#: The result tables with their keys: what recompute writes, and what a dump compares.
RESULT_TABLES = {
    "prescriptions": "patient, week",
    "decisions": "patient, week, exercise",
    "alerts": "patient, week, rule, message",
    "set_aside": "patient, source, line, reason, record",
    "patient_state": "patient",
}


def statements(script: str) -> Iterator[str]:
    """Split a migration script into complete statements (sqlite3.complete_statement)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise StoreError(f"incomplete statement in a migration: {pending.strip()[:60]}")
