"""The clinic's embedded store: one SQLite file holding programs, patients, logs and results.

Inputs (programs, enrollments, imported records, clinician actions) are kept as they came;
results (prescriptions, decisions, alerts) are a cache of the weekly fold that
`progressor.store.batch.recompute` rewrites per patient. Every change runs in one transaction, so a
failed import or recompute leaves what was stored before untouched. WAL mode lets readers and
one writer work at once; writers take the lock up front (BEGIN IMMEDIATE) and wait for each
other up to `busy_timeout`. docs/store.md describes the schema and its rules.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace as dc_replace
from functools import cache, partial
from pathlib import Path
from types import TracebackType
from typing import Literal, NamedTuple

from progressor.core.engine import CompiledProgram
from progressor.core.models import (
    Dose,
    Enrollment,
    Outcome,
    PainReport,
    Prescription,
    Program,
    Record,
    SetAside,
    ids_alike,
    ids_meant,
)
from progressor.core.timeline import fold
from progressor.errors import (
    LogError,
    ProgressorError,
    StoreConflict,
    UnknownPatient,
    did_you_mean,
)
from progressor.reading import parse_program
from progressor.reading.records import (
    FUTURE_GRACE,
    SALVAGED,
    Row,
    future_reason,
    held,
    kept_as_of,
    kept_for,
    log_format,
    log_rows,
    meant_by_several,
    rows,
    salvage,
    spelled_otherwise,
)
from progressor.store.clinic import Clinic
from progressor.store.results import (
    CURRENT_ACTIONS,
    UNHEARD,
    WAITING_UNMATCHED,
    acted_since_data,
    arrivals,
)
from progressor.store.schema import MIGRATIONS, SCHEMA_VERSION, statements
from progressor.store.values import (
    ACTION_COLUMNS,
    ClinicianAction,
    ImportReport,
    StoreError,
    action_of_row,
    canonical_json,
    dose_json,
    enrollment_of_row,
    limit_problem,
    now_text,
    prescription_row,
    sha256_hex,
    week_of,
)

#: The schema version that keeps the quarantined lines of ids enrolled nowhere (`unmatched`).
_UNMATCHED_VERSION = 10

# -- the store --------------------------------------------------------------------------------


class Store(Clinic):
    """One clinic's SQLite file. Not shared between threads: open one Store per thread."""

    def __init__(self, db: sqlite3.Connection, path: Path, readonly: bool) -> None:
        self._db, self.path, self.readonly = db, path, readonly

    @classmethod
    def init(cls, path: str | Path, *, busy_timeout: float = 60.0) -> Store:
        """Create the store, or migrate an older one to the current schema."""
        store = cls(_connect(Path(path), False, busy_timeout), Path(path), False)
        try:
            store._migrate()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False, busy_timeout: float = 60.0) -> Store:
        """Open an existing store at the current schema version (see `init`)."""
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"{path}: no store here; create it with 'progressor init'")
        store = cls(_connect(path, readonly, busy_timeout), path, readonly)
        version = store.schema_version()
        if version != SCHEMA_VERSION:
            store.close()
            if version > SCHEMA_VERSION:
                raise StoreError(f"{path}: schema {version} is newer than this progressor's")
            raise StoreError(f"{path}: schema {version} is old; migrate it with 'progressor init'")
        return store

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _migrate(self) -> None:
        for version, script in enumerate(MIGRATIONS, start=1):
            with self._write() as db:
                current = self.schema_version()  # another process may have migrated meanwhile
                if current > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path}: schema {current} is newer than this progressor's"
                    )
                if current >= version:
                    continue
                for statement in statements(script):
                    db.execute(statement)
                if version == _UNMATCHED_VERSION:  # (its bookkeeping for the rows already there)
                    self._fill_unmatched()
                db.execute(f"PRAGMA user_version = {version}")

    def _fill_unmatched(self) -> None:
        """The unmatched lines among those already waiting in the quarantine (schema 10): each
        read again as an import reads it, as a JSON line (a CSV row, kept without its header,
        cannot be read again: it waits as before, without an alert). A line whose pain the
        import stored (kept for an enrolled patient) is not one. Bytes that are not UTF-8 (put
        there by other software) are read as U+FFFD, as an import reads them."""
        enrolled: dict[str, bool] = {}
        usable_of = partial(_usable, enrolled=enrolled, is_enrolled=self._enrolled)
        ids = [patient for (patient,) in self._db.execute("SELECT patient FROM patients")]
        waiting = self._db.execute(
            "SELECT id, source, line, CAST(raw AS BLOB) FROM quarantine"
            " WHERE settled_by IS NULL ORDER BY id"
        ).fetchall()
        today = dt.date.today()
        limit = today + FUTURE_GRACE
        for entry, source, line, raw in waiting:
            text = bytes(raw).decode("utf-8", "replace")
            for row in rows([text], source, "jsonl"):
                usable, kept = _checked(row, usable_of, limit)
                usable, kept, _ = _not_enrolled_line(
                    row, usable, kept, usable_of, lambda written: tuple(ids_meant(written, ids))
                )
                if not isinstance(usable, tuple) and kept is not None:
                    stored = "SELECT 1 FROM pain_reports WHERE hash = ?"
                    if self._db.execute(stored, (sha256_hex(canonical_json(kept)),)).fetchone():
                        continue  # (its pain reached the patient at its import)
                # (A whole line waiting: its record was never stored, enrolled since or not.)
                self._unmatched(entry, _nobodys(row, kept, limit, today), source, line)

    # -- programs and enrollments -------------------------------------------------------------

    def add_program(self, program: Program, toml_text: str) -> bool:
        """Store a program version; False when that exact text is already stored.

        A version is immutable: other text under a stored id and version is refused.
        """
        parsed = parse_program(toml_text)
        if (parsed.id, parsed.version) != (program.id, program.version):
            raise StoreError(
                f"the text is of program {parsed.id!r} version {parsed.version!r}, "
                f"not {program.id!r} version {program.version!r}"
            )
        digest = sha256_hex(toml_text)
        with self._write() as db:
            row = db.execute(
                "SELECT hash FROM programs WHERE program = ? AND version = ?",
                (program.id, program.version),
            ).fetchone()
            if row is not None:
                if row[0] != digest:
                    raise StoreError(
                        f"program {program.id!r} version {program.version!r} is already stored "
                        "with other content; give the changed program a new version"
                    )
                return False
            db.execute(
                "INSERT INTO programs VALUES (?, ?, ?, ?, ?)",
                (program.id, program.version, digest, toml_text, now_text()),
            )
        return True

    def program(self, program_id: str, version: str) -> Program:
        """A stored program version, parsed again from its TOML text."""
        row = self._db.execute(
            "SELECT toml FROM programs WHERE program = ? AND version = ?", (program_id, version)
        ).fetchone()
        if row is None:
            raise StoreError(f"program {program_id!r} version {version!r} is not in the store")
        return parse_program(row[0], f"store:{program_id}@{version}")

    def enroll(
        self, enrollment: Enrollment, program: Program, compiled: CompiledProgram | None = None
    ) -> bool:
        """Enroll a patient on a stored program version; False when already enrolled so.

        Overrides must name the program's exercises and stay within floor and ceiling; with
        `compiled`, the engine checks them in full (`CompiledProgram.first_week`). A patient
        is on one enrollment: a different one for an enrolled patient is refused.
        """
        if compiled is not None:
            _engine_check(compiled, enrollment, enrollment.overrides)
        added = self.enroll_many([enrollment], program) == 1
        if added and compiled is not None:
            with self._write():
                self._first_week(compiled, enrollment, computed=True)
        return added

    def _first_week(
        self, compiled: CompiledProgram, enrollment: Enrollment, *, computed: bool
    ) -> None:
        """Store week 1's prescription of an enrollment as the fold makes it (no week judged
        yet), in place of any results of an earlier enrollment: `show`, the review queue and
        the handout see a new patient at once. `computed`: nothing was logged, so these are
        the patient's whole results; otherwise (a re-enrolment) recompute computes them
        again with the records."""
        patient = enrollment.patient
        timeline = fold(compiled, enrollment, (), as_of=enrollment.start, weeks=0)
        # Results made with other code than the store's stored ones wait for recompute, as
        # recompute's own would (Results.computed_with); a new store takes this code's.
        self._db.execute(
            "INSERT OR IGNORE INTO store_meta VALUES ('code', ?)", (compiled.signature,)
        )
        (code,) = self._db.execute("SELECT value FROM store_meta WHERE key = 'code'").fetchone()
        computed = computed and code == compiled.signature
        for table in ("prescriptions", "decisions", "alerts", "set_aside"):
            self._db.execute(f"DELETE FROM {table} WHERE patient = ?", (patient,))
        self._db.execute(
            "INSERT INTO prescriptions VALUES (?, ?, ?, ?, ?, ?, ?)",
            (patient, *prescription_row(timeline.prescriptions[0])),
        )
        self._db.execute(
            "UPDATE patient_state SET computed_weeks = 0, error = NULL, next_due = ?,"
            " computed_version = CASE WHEN ? THEN data_version END,"
            " computed_at = CASE WHEN ? THEN ? END,"
            " computed_import = CASE WHEN ? THEN (SELECT coalesce(max(id), 0) FROM imports) END"
            " WHERE patient = ?",
            (
                (enrollment.start + dt.timedelta(days=7)).isoformat(),
                computed,
                computed,
                now_text(),
                computed,
                patient,
            ),
        )

    def enroll_many(self, enrollments: Iterable[Enrollment], program: Program) -> int:
        """Enroll patients on one program version in one transaction; how many are new."""
        added = 0
        with self._write() as db:
            digest = _stored_hash(db, program)
            for enrollment in enrollments:
                added += self._enroll(enrollment, program, digest)
        return added

    def _enroll(self, enrollment: Enrollment, program: Program, digest: str) -> bool:
        patient = enrollment.patient
        values = _enrollment_values(enrollment, program, digest)
        row = self._db.execute(
            "SELECT program, program_version, program_hash, start, overrides FROM patients"
            " WHERE patient = ?",
            (patient,),
        ).fetchone()
        if row is not None:
            if tuple(row) != values:
                raise StoreConflict(f"patient {patient!r} is already enrolled")
            return False
        self._db.execute(
            "INSERT INTO patients"
            " (patient, program, program_version, program_hash, start, overrides, enrolled_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (patient, *values, now_text()),
        )
        first_due = (enrollment.start + dt.timedelta(days=7)).isoformat()  # the first week's end
        self._db.execute(
            "INSERT INTO patient_state (patient, next_due) VALUES (?, ?)", (patient, first_due)
        )
        return True

    def enrollment(self, patient: str) -> Enrollment:
        row = self._db.execute(
            "SELECT program, start, overrides FROM patients WHERE patient = ?", (patient,)
        ).fetchone()
        if row is None:
            raise self.unknown(patient)
        return enrollment_of_row(patient, *row)

    def alike(self, patient: str) -> list[str]:
        """The enrolled ids that `patient` differs from in case or surrounding spaces only
        (ids_alike): one patient written differently, in all likelihood."""
        return ids_alike(patient, (p for (p,) in self._db.execute("SELECT patient FROM patients")))

    def unknown(self, patient: str) -> UnknownPatient:
        """The error for a patient not enrolled, naming an enrolled one close to it."""
        close = self._db.execute(
            # (ids sharing the first character: a typo rarely changes it, and an index finds them)
            "SELECT patient FROM patients WHERE patient >= ? AND patient < ? LIMIT 5000",
            (patient[:1], patient[:1] + "\U0010ffff"),
        )
        return UnknownPatient(patient, did_you_mean(patient, (p for (p,) in close)))

    def program_of(self, patient: str) -> Program:
        """The program version the patient is enrolled on."""
        row = self._db.execute(
            "SELECT program, program_version FROM patients WHERE patient = ?", (patient,)
        ).fetchone()
        if row is None:
            raise self.unknown(patient)
        return self.program(row[0], row[1])

    def reenroll(
        self,
        patient: str,
        compiled: CompiledProgram,
        start: dt.date,
        note: str,
        who: str,
    ) -> Enrollment:
        """Move an enrolled (or discharged) patient onto another program or program version
        (stored first, with `add_program`), from `start`: the enrollment it ends is kept with
        who, when and why. Each exercise that continues keeps the dose of the newest stored
        prescription, within the new program's floor and ceiling
        (`CompiledProgram.carried_doses`); the others start at the program's dose. Week 1 of
        the new enrollment is stored at once; recompute computes the patient again. Refused
        while records wait for recompute or the patient waits in the review queue; records
        dated before `start` stay with the enrollment that ends (`ended`). A discharged
        patient's records that no computation judged are the new enrollment's instead (they
        can wait for no recompute: a discharged patient is never computed)."""
        if not note.strip() or not who.strip():
            raise StoreError("a re-enrolment needs a note (why) and who did it")
        program = compiled.program
        current = self.enrollment(patient)
        history = self.prescriptions(patient)
        doses = (
            {name: state.dose for name, state in history[-1].exercises.items()}
            if history
            else dict(current.overrides)
        )
        enrollment = Enrollment(
            patient=patient,
            program=program.id,
            start=start,
            overrides=compiled.carried_doses(doses),
        )
        _engine_check(compiled, enrollment, enrollment.overrides)
        # What the ending enrollment raised must have been seen: its records computed (below,
        # inside the transaction) and nothing of it waiting in the review queue. (A discharged
        # patient waits there only for records no computation judged: the re-enrolment is
        # what computes them.)
        waiting = not self.is_discharged(patient)
        if waiting and any(item.patient == patient for item in self.review_queue()):
            raise StoreError(
                f"patient {patient!r} waits in the review queue: resume or acknowledge what "
                "was raised, then re-enrol"
            )
        with self._write() as db:
            discharged = self.is_discharged(patient)
            if not discharged:
                self._check_nothing_waiting(patient, "re-enrol")
            values = _enrollment_values(enrollment, program, _stored_hash(db, program))
            change = self._record_change(patient, "reenroll", note, who)
            # The records the ending enrollment judged stay with it: the new one starts
            # afresh. (One dated before the new start but imported later still reaches the
            # new week 1's safety rules: a late diary's flare is not lost in the move.) The
            # records that no computation judged are the new enrollment's in the same way: a
            # discharged patient's (imported since, or waiting at the discharge: each an
            # alert), and anyone's that a computation read but judged nothing of (dated
            # after its week under way): nothing waits for a recompute that never comes.
            for table in ("outcomes", "pain_reports"):
                unread = (
                    f" AND id NOT IN (SELECT r.id FROM {table} r JOIN patient_state s"
                    f" USING (patient) WHERE r.patient = :patient AND {UNHEARD})"
                )
                db.execute(
                    f"UPDATE {table} SET ended = :change WHERE patient = :patient"
                    " AND date < :start AND ended IS NULL" + unread,
                    {"change": change, "patient": patient, "start": start.isoformat()},
                )
            # The earlier enrollment's clinician actions name its weeks, not the new ones.
            (newest_action,) = db.execute(
                "SELECT coalesce(max(id), 0) FROM clinician_actions"
            ).fetchone()
            db.execute(
                "UPDATE patients SET program = ?, program_version = ?, program_hash = ?,"
                " start = ?, overrides = ?, discharged = NULL, actions_after = ?,"
                " enrolled_at = ? WHERE patient = ?",
                (*values, newest_action, now_text(), patient),
            )
            db.execute(
                "UPDATE patient_state SET data_version = data_version + 1 WHERE patient = ?",
                (patient,),
            )
            self._first_week(compiled, enrollment, computed=False)
        return enrollment

    # -- records -------------------------------------------------------------------------------

    def import_records(
        self,
        data: str | Path | Iterable[str],
        source: str | None = None,
        fmt: str | None = None,
        today: dt.date | None = None,
        encoding: str | None = None,
        patient: str | None = None,
        *,
        fix: QuarantineFix | None = None,
    ) -> ImportReport:
        """Import a JSONL, CSV or Parquet log (a path, or lines with `fmt`) in one transaction.

        Each record needs a `patient` who is enrolled; a record already stored is counted as
        a duplicate and not added again. Lines that cannot be used go to the quarantine with
        their reason; so does a record dated more than a day after `today` (default: the
        machine's date; a day's grace for time zones), whose pain scores and flags the safety
        rules get as of `today`. A file is read in `encoding` (default UTF-8); an unreadable
        one raises LogError and stores nothing. With `patient`, the records are that patient's:
        one without a `patient` field is theirs, one naming another patient is set aside. With
        `fix` (see `reimport`), the quarantined line it names is marked fixed when the import
        stores what it read and sets nothing aside.
        """
        today = today or dt.date.today()
        if not isinstance(data, str | Path):
            source = source or "<lines>"
            return self._import(rows(data, source, fmt or "jsonl"), source, today, patient, fix)
        path = Path(data)
        fmt = fmt or log_format(path)
        try:
            with log_rows(path, encoding, fmt) as read:
                return self._import(read, source or str(path), today, patient, fix)
        except LogError as exc:
            raise LogError(f"{exc}; nothing imported") from None

    def reimport(
        self,
        entry: int,
        data: Path | Sequence[str],
        note: str,
        who: str,
        fmt: str | None = None,
        today: dt.date | None = None,
        encoding: str | None = None,
    ) -> ImportReport:
        """Import the fixed text of quarantined line `entry` (lines, JSONL by default, or a
        log file) through the same reader and import path as `import_records`. When it is
        stored whole (added, or already stored) the quarantined line is marked fixed, with
        who, when, why and the text: it stays in the quarantine, never deleted. A fix that is
        itself set aside leaves the line waiting (the report says why)."""
        if not note.strip() or not who.strip():
            raise StoreError("a fixed line needs a note (why) and who fixed it")
        row = self._db.execute(
            "SELECT q.source, q.line, f.quarantine FROM quarantine q"
            " LEFT JOIN quarantine_fixes f ON f.quarantine = q.id WHERE q.id = ?",
            (entry,),
        ).fetchone()
        if row is None:
            raise StoreError(f"no quarantined line {entry} (see `progressor quarantine`)")
        if row[2] is not None:
            raise StoreError(f"quarantined line {entry} is fixed already")
        if isinstance(data, Path):
            text, source = data.read_text(encoding=encoding or "utf-8"), str(data)
        else:
            text, source = "\n".join(data), f"{row[0]}:{row[1]} fixed"
        fix = QuarantineFix(entry, text, note, who)
        return self.import_records(data, source, fmt, today, encoding, fix=fix)

    def _import(
        self,
        read: Iterable[Row],
        source: str,
        today: dt.date,
        owner: str | None = None,
        fix: QuarantineFix | None = None,
    ) -> ImportReport:
        added = duplicates = 0
        aside: list[SetAside] = []
        touched: set[str] = set()
        enrolled: dict[str, bool] = {}
        usable_of = partial(_usable, enrolled=enrolled, is_enrolled=self._enrolled, owner=owner)
        with self._write() as db:
            batch = db.execute(
                "INSERT INTO imports (source, at, added, duplicates, quarantined)"
                " VALUES (?, ?, 0, 0, 0)",
                (source, now_text()),
            ).lastrowid
            seen: dict[str, int] = {}  # identical records in one file are separate bouts
            # Lines quarantined for want of an enrollment that this import stores are settled,
            # found by their text (file names and line numbers repeat across weekly exports;
            # no other line can be stored later as it stands). Read once, looked up per line.
            waiting = {
                raw for (raw,) in db.execute("SELECT raw FROM quarantine WHERE settled_by IS NULL")
            }
            # The ids of the unmatched lines that wait (read once: few, or none).
            unmatched = {
                patient
                for (patient,) in db.execute(f"SELECT DISTINCT u.patient FROM {WAITING_UNMATCHED}")
            }
            limit = today + FUTURE_GRACE
            ids: list[str] = []  # (every enrolled id, read at the first id not enrolled)

            @cache
            def meant_of(written: str) -> tuple[str, ...]:
                """The enrolled patients `written` names but for case or spaces (ids_meant)."""
                ids[:] = ids or [p for (p,) in db.execute("SELECT patient FROM patients")]
                return tuple(ids_meant(written, ids))

            for row in read:
                usable, kept = _checked(row, usable_of, limit)
                identity: str | None = None  # the key of a report kept as of today
                whole = not isinstance(usable, str)  # the line's own record, not a rescue
                # An id not enrolled: its pains may be a patient's written otherwise.
                usable, kept, alike = _not_enrolled_line(row, usable, kept, usable_of, meant_of)
                if isinstance(usable, str):
                    if kept is not None and kept.date > limit:
                        # What a record from the future says is seen now, not when its
                        # date comes: a pain of 9 must not wait a year. It is the same
                        # report whatever day, file or line it is imported again from.
                        identity = canonical_json(kept)
                        kept = kept_as_of(kept, today)
                    stored = usable_of(kept) if kept else None
                    # (Whose safety rules got the pains of an id spelled otherwise is said.)
                    said = alike is None and isinstance(stored, tuple)
                    reason = usable + (SALVAGED if said else "")
                    aside.append(
                        SetAside(source=source, line=row.line, reason=reason, record=row.text)
                    )
                    entry = self._quarantine(aside[-1], batch)
                    if not isinstance(stored, tuple):
                        # (A pain no patient's safety rules get: an alert says so.)
                        self._unmatched(entry, _nobodys(row, kept, limit, today), source, row.line)
                        continue
                    usable = stored
                # An unmatched line's alert ends once its pains reach the patient: this line
                # again, or the same record from another file or format.
                if usable[1] in unmatched:
                    db.execute(
                        "UPDATE quarantine SET settled_by = ? WHERE id IN (SELECT u.quarantine"
                        f" FROM {WAITING_UNMATCHED} AND u.patient = ?"
                        " AND (u.key = ? OR q.raw = ?))",
                        (batch, usable[1], canonical_json(usable[0]), row.text),
                    )
                if self._insert_record(usable[0], source, row.line, batch, seen, identity):
                    added += 1
                    touched.add(usable[1])
                else:
                    duplicates += 1
                if whole and row.text in waiting:
                    # (A line whose id was spelled otherwise was told the id it may mean.)
                    reason = not_enrolled(usable[1])
                    db.execute(
                        "UPDATE quarantine SET settled_by = ? WHERE raw = ?"
                        " AND settled_by IS NULL AND substr(reason, 1, ?) = ?",
                        (batch, row.text, len(reason), reason),
                    )
            db.executemany(
                "UPDATE patient_state SET data_version = data_version + 1 WHERE patient = ?",
                ((p,) for p in sorted(touched)),
            )
            db.execute(
                "UPDATE imports SET added = ?, duplicates = ?, quarantined = ? WHERE id = ?",
                (added, duplicates, len(aside), batch),
            )
            if fix is not None and not aside and added + duplicates:
                db.execute(
                    "INSERT INTO quarantine_fixes VALUES (?, ?, ?, ?, ?, ?)",
                    (fix.entry, batch, fix.text, fix.note, fix.who, now_text()),
                )
                db.execute("UPDATE quarantine SET settled_by = ? WHERE id = ?", (batch, fix.entry))
        return ImportReport(source, added, duplicates, tuple(aside), len(touched))

    def _enrolled(self, patient: str) -> bool:
        query = "SELECT 1 FROM patients WHERE patient = ?"
        return self._db.execute(query, (patient,)).fetchone() is not None

    def _insert_record(
        self,
        record: Record,
        source: str,
        line: int,
        batch: int | None,
        seen: dict[str, int],
        identity: str | None = None,
    ) -> bool:
        """Whether the record was added. Its key is its canonical JSON, or `identity` (a
        record kept as of the day of its import: what it was before that date was given)."""
        text = canonical_json(record)
        same = identity or text
        # The n-th identical record of one file is its own bout (n > 1 gets its own key), so
        # re-importing the file adds nothing while five identical bouts stay five.
        seen[same] = seen.get(same, 0) + 1
        key = same if seen[same] == 1 else f"{same}#{seen[same]}"
        row: dict[str, object] = {
            "patient": record.patient,
            "hash": sha256_hex(key),
            "date": record.date.isoformat(),
        }
        row |= {"record": text, "source": source, "line": line, "import": batch}
        table = "pain_reports"
        if isinstance(record, Outcome):
            table, row["exercise"] = "outcomes", record.exercise
        columns, names = ", ".join(row), ", ".join(f":{name}" for name in row)
        query = f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({names})"
        return self._db.execute(query, row).rowcount == 1

    def _quarantine(self, aside: SetAside, batch: int | None) -> int:
        """The line's entry in the quarantine (the one it has already, imported again)."""
        key = sha256_hex(canonical_json([aside.source, aside.line, aside.reason, aside.record]))
        self._db.execute(
            "INSERT OR IGNORE INTO quarantine (hash, source, line, reason, raw, import)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key, aside.source, aside.line, aside.reason, aside.record, batch),
        )
        return int(
            self._db.execute("SELECT id FROM quarantine WHERE hash = ?", (key,)).fetchone()[0]
        )

    def _unmatched(
        self, entry: int, nobodys: tuple[list[Record], list[str]], source: str, line: int | None
    ) -> None:
        """Note quarantined line `entry` as holding records no patient's safety rules got
        (_nobodys: what to judge, and what it holds; none, nothing to note): recompute sends
        its alert. `key` is the record's canonical text: an import that stores the same
        record for its patient, from any file, ends the alert."""
        records, holds = nobodys
        if not records:
            return
        written = records[0].patient
        self._db.execute(
            "INSERT OR IGNORE INTO unmatched VALUES (?, ?, ?, ?, NULL, ?)",
            (
                entry,
                written or "",
                json.dumps([json.loads(canonical_json(r)) for r in records]),
                unmatched_message(written, entry, source, line, holds),
                canonical_json(records[0]),
            ),
        )

    def quarantine(self) -> list[SetAside]:
        """Every line ever set aside by an import, in the order first seen."""
        rows = self._db.execute("SELECT source, line, reason, raw FROM quarantine ORDER BY id")
        return [SetAside(source=s, line=n, reason=r, record=raw) for s, n, r, raw in rows]

    # -- clinician actions ---------------------------------------------------------------------

    def resume(
        self,
        patient: str,
        note: str,
        who: str,
        at: dt.datetime | None = None,
        *,
        exercises: Sequence[str] = (),
        week: int | None = None,
    ) -> list[ClinicianAction]:
        """Record a clinician's resume of the patient (or of the named exercises only).

        It changes the prescription of `week`, by default the newest computed week (the one
        `review` shows; the week that contains `at` when none is computed yet);
        the next recompute applies it.
        """
        items: list[tuple[str | None, Dose | None]] = [(n, None) for n in exercises]
        return self._act(patient, "resume", items or [(None, None)], note, who, at, week)

    def acknowledge(
        self,
        patient: str,
        note: str,
        who: str,
        at: dt.datetime | None = None,
        *,
        week: int | None = None,
    ) -> ClinicianAction:
        """Record that a clinician reviewed the flags of the patient's week (or an alert the
        week under way raised) and changed nothing: it takes the patient out of the review
        queue (not a pause: that needs a resume). The week's prescription must exist and carry
        flags, or the week an alert."""
        [action] = self._act(patient, "acknowledge", [(None, None)], note, who, at, week)
        return action

    def override(
        self,
        patient: str,
        exercise: str,
        dose: Dose,
        note: str,
        who: str,
        at: dt.datetime | None = None,
        *,
        week: int | None = None,
        compiled: CompiledProgram | None = None,
    ) -> ClinicianAction:
        """Record a clinician's new dose for one exercise, from `week` on (default: the newest
        computed week, as for `resume`).

        The store checks the exercise and its floor and ceiling; with `compiled` (the
        patient's program, compiled by the engine that will recompute), the dose is also
        checked like a starting dose: the exercise type's fields and the strategy's needs.
        """
        if compiled is not None:
            unknown = _override_problem(compiled.program, exercise, None)  # (named before doses)
            if unknown:
                raise StoreError(f"patient {patient!r}: {unknown}")
            _engine_check(compiled, self.enrollment(patient), {exercise: dose})
        [action] = self._act(patient, "override", [(exercise, dose)], note, who, at, week)
        return action

    def _act(
        self,
        patient: str,
        kind: Literal["resume", "override", "acknowledge"],
        items: Sequence[tuple[str | None, Dose | None]],
        note: str,
        who: str,
        at: dt.datetime | None,
        week: int | None,
    ) -> list[ClinicianAction]:
        if not note.strip() or not who.strip():
            raise StoreError("a clinician action needs a note (why) and who took it")
        at = at or dt.datetime.now().astimezone()
        enrollment = self.enrollment(patient)
        if self.is_discharged(patient):
            raise StoreError(f"patient {patient!r} is discharged: re-enrol them first")
        history = self.prescriptions(patient)
        # By default the newest computed week: what the clinician saw in `review`.
        if week is None:
            week = history[-1].week if history else week_of(enrollment.start, at.date())
        if week < 1:
            raise StoreError(f"week {week}: weeks are counted from 1")
        if kind == "resume":
            _check_resume(patient, week, history, [n for n, _ in items if n])
        if kind == "acknowledge":
            alerted = any(a.week == week for a in self.alerts(patient))
            _check_acknowledge(patient, week, history, alerted)
        actions = []
        with self._write() as db:
            # Inside the write transaction: an import under way commits first (it holds the
            # write lock), so its records are seen here.
            if kind in ("resume", "acknowledge"):
                self._check_nothing_waiting(patient, kind)
                _check_not_recorded(db, patient, kind, week, [n for n, _ in items])
            (version,) = db.execute(
                "SELECT program_version FROM patients WHERE patient = ?", (patient,)
            ).fetchone()
            program = self.program(enrollment.program, version)
            recorded = now_text()  # (one time for the action's rows: one data version)
            for exercise, dose in items:
                problem = exercise and _override_problem(program, exercise, dose)
                if problem:
                    raise StoreError(f"patient {patient!r}: {problem}")
                row = (patient, kind, exercise, dose and dose_json(dose), note, who)
                cursor = db.execute(
                    "INSERT INTO clinician_actions"
                    " (patient, kind, exercise, dose, note, who, at, week, recorded_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*row, at.isoformat(), week, recorded),
                )
                number = int(cursor.lastrowid or 0)
                actions.append(
                    ClinicianAction(
                        number,
                        *row[:2],
                        exercise,
                        dose,
                        note,
                        who,
                        at,
                        week,
                        dt.datetime.fromisoformat(recorded),
                    )
                )
            db.execute(
                "UPDATE patient_state SET data_version = data_version + 1 WHERE patient = ?",
                (patient,),
            )
        return actions

    def _check_nothing_waiting(self, patient: str, kind: str) -> None:
        """A resume or an acknowledgement settles what the clinician saw in the stored
        results: refused while records imported since those results were computed wait for
        recompute (they may hold a new reason to pause, a late diary's adverse event, say)."""
        computed_version, data_version, computed_at = self._db.execute(
            "SELECT computed_version, data_version, computed_at FROM patient_state"
            " WHERE patient = ?",
            (patient,),
        ).fetchone()
        waiting = ""
        if computed_at is None:
            # Never computed, or computed before schema 5 (when is not known): anything new
            # since the computation (records or actions) waits.
            if computed_version != data_version:
                waiting = "data not yet recomputed"
        else:
            computed = dt.datetime.fromisoformat(computed_at)
            later = [at for at in arrivals(self._db, patient) if at > computed]
            # Data versions rise with every import and every action (its rows share one
            # time): more rises than the actions recorded since means an import waiting.
            acted = {
                a.recorded_at
                for a in self.actions(patient)
                if a.recorded_at is not None and a.recorded_at > computed
            }
            if later:
                newest = f"{max(later):%Y-%m-%d %H:%M}"
                waiting = f"records imported since the last recompute, the newest {newest}"
            elif data_version - (computed_version or 0) > len(acted):
                waiting = "records imported (or voided) since the last recompute"
        if waiting:
            raise StoreConflict(
                f"patient {patient!r} has {waiting}: run `progressor recompute`, review the "
                f"patient, then {kind}"
            )

    def actions(self, patient: str) -> list[ClinicianAction]:
        """A patient's clinician actions, in the order recompute applies them: by week, then
        in the order they were recorded."""
        rows = self._db.execute(
            f"SELECT {ACTION_COLUMNS} FROM clinician_actions WHERE patient = ?"
            f" AND {CURRENT_ACTIONS} ORDER BY week, id",
            (patient,),
        )
        return [action_of_row(row) for row in rows]


# -- helpers -----------------------------------------------------------------------------------


class QuarantineFix(NamedTuple):
    """A quarantined line's fixed text, who fixed it and why (`Store.reimport`)."""

    entry: int
    text: str
    note: str
    who: str


def _stored_hash(db: sqlite3.Connection, program: Program) -> str:
    """The stored text's hash of `program`'s version; a StoreError when it is not stored."""
    stored = db.execute(
        "SELECT hash FROM programs WHERE program = ? AND version = ?",
        (program.id, program.version),
    ).fetchone()
    if stored is None:
        raise StoreError(
            f"program {program.id!r} version {program.version!r} is not in the store; add it first"
        )
    digest: str = stored[0]
    return digest


def _connect(path: Path, readonly: bool, busy_timeout: float) -> sqlite3.Connection:
    if readonly:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout)
    else:
        db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
    try:
        if not readonly:
            db.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL loses no committed transaction when the process dies, only
            # (at worst) the last ones on a power cut; the file always stays consistent.
            db.execute("PRAGMA synchronous = NORMAL")
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        db.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StoreError(f"{path}: cannot open the store: {exc}") from None
    return db


def not_enrolled(patient: str) -> str:
    """Why a record of someone not enrolled is quarantined (and how a later import that stores
    the same line finds it to settle)."""
    return f"patient {patient!r} is not enrolled"


def _not_enrolled_line(
    row: Row,
    usable: tuple[Record, str] | str,
    kept: PainReport | None,
    usable_of: Callable[[Record], tuple[Record, str] | str],
    meant_of: Callable[[str], tuple[str, ...]],
) -> tuple[tuple[Record, str] | str, PainReport | None, str | None]:
    """A line of an id that is not enrolled, read whole or only in part: when the id names one
    enrolled patient but for case or spaces (`meant_of`), its pains are kept as theirs and the
    reason says so; otherwise the reason says what the line holds (and the patients it may
    mean, when several), for whoever reviews the quarantine. The line's (usable, kept) as
    _import goes on with them, and the patient meant."""
    if row.record is not None:
        written = row.record.patient
        lost = written is not None and usable == not_enrolled(written)
    else:
        written = kept.patient if kept is not None else None
        lost = kept is not None and written is not None and usable_of(kept) == not_enrolled(written)
    if not lost or written is None or not isinstance(usable, str):
        return usable, kept, None
    meant = meant_of(written)
    alike = meant[0] if len(meant) == 1 else None
    if alike is not None and row.record is not None:
        return f"{usable} ({spelled_otherwise(alike)})", kept_for(alike, row.record), alike
    if alike is not None and kept is not None:
        reason = f"{usable}; {not_enrolled(written)} ({spelled_otherwise(alike)})"
        return reason, dc_replace(kept, patient=alike), alike
    # Nobody's: the line waits in the quarantine, saying what it holds.
    if row.record is None:
        usable = f"{usable}; {not_enrolled(written)}"
    if len(meant) > 1:
        usable += f" ({meant_by_several(meant)})"
    holds = held([row.record] if row.record is not None else [kept] if kept else [])
    if holds:
        usable += (
            f"; it holds {', '.join(holds)}: enroll the patient or correct the id, and review it"
        )
    return usable, kept, None


def _nobodys(
    row: Row, kept: PainReport | None, limit: dt.date, today: dt.date
) -> tuple[list[Record], list[str]]:
    """What a quarantined line whose pains reach no patient's safety rules holds (an id
    enrolled nowhere, no readable patient, another patient's record sent for one): its
    record, or what the reader kept of it, to judge, and what it holds said as `held` says
    it of the line as read; none of either when it holds no pain score or flag. Dated after
    `limit`, or with no readable day, it is judged as of `today`, as any such pain is kept
    (and as a program can judge it: its start is a real day)."""
    found: list[Record] = [row.record] if row.record is not None else [kept] if kept else []
    holds = held(found)
    if not holds:
        return [], []
    judged: list[Record] = []
    for record in found:
        if record.date > limit:
            report = (
                record
                if isinstance(record, PainReport)
                else salvage(record.model_dump(mode="json"))
            )
            if isinstance(report, PainReport):
                judged.append(kept_as_of(report, today))
        else:
            judged.append(record)
    return judged, holds


def unmatched_message(
    written: str | None, entry: int, source: str, line: int | None, holds: list[str]
) -> str:
    """The alert of a quarantined line whose pains reach no patient's safety rules: whose it
    says it is, where it is (and its quarantine entry), what it holds, and what to do."""
    where = f"{source}:{line}" if line is not None else source
    whose = f"a line for {written!r}" if written else "a line without a readable patient id"
    return (
        f"not enrolled: {whose} ({where}, quarantine entry {entry}) holds {', '.join(holds)}, "
        "and it reaches no patient's safety rules: enroll the patient and import the line "
        "again, or fix it (quarantine reimport), and review the quarantine"
    )


def _checked(
    row: Row, usable_of: Callable[[Record], tuple[Record, str] | str], limit: dt.date
) -> tuple[tuple[Record, str] | str, PainReport | None]:
    """The row's record and its patient, or why it cannot be stored and the pain report the
    safety rules keep of it (a record dated after `limit`: what it says, as of its date)."""
    if row.record is None:
        return row.reason, row.kept
    usable = usable_of(row.record)
    if isinstance(usable, tuple) and usable[0].date > limit:
        return future_reason(usable[0].date), salvage(row.record.model_dump(mode="json"))
    return usable, None


def _usable(
    record: Record,
    *,
    enrolled: dict[str, bool],
    is_enrolled: Callable[[str], bool],
    owner: str | None = None,
) -> tuple[Record, str] | str:
    """The record and its patient, or why it cannot be stored. With `owner` (records sent for
    one patient), a record without a patient is theirs and one of another patient is not."""
    if owner is not None and record.patient is None:
        record = dc_replace(record, patient=owner)
    patient = record.patient
    if owner is not None and patient != owner:
        return f"a record of patient {patient!r}, sent for patient {owner!r}"
    if patient is None:
        return "no 'patient' field: the store must know whose record it is"
    if patient not in enrolled:
        enrolled[patient] = is_enrolled(patient)
    if not enrolled[patient]:
        return not_enrolled(patient)
    return record, patient


def _week_prescription(patient: str, week: int, history: Sequence[Prescription]) -> Prescription:
    """The patient's prescription of `week`, which an action on what was seen needs."""
    found = [p for p in history if p.week == week]
    if not found:
        newest = f"the newest is week {history[-1].week}" if history else "none is computed yet"
        raise StoreConflict(f"patient {patient!r} has no prescription for week {week} ({newest})")
    return found[0]


def _check_acknowledge(
    patient: str, week: int, history: Sequence[Prescription], alerted: bool
) -> None:
    """An acknowledgement settles flags (or an alert of the week under way) the clinician has
    seen: the week's prescription must exist and carry some."""
    prescription = _week_prescription(patient, week, history)
    if not prescription.flags and not alerted:
        hint = " (a paused patient needs a resume)" if prescription.status == "paused" else ""
        raise StoreConflict(
            f"patient {patient!r} has no flags or alerts in week {week}: nothing to "
            f"acknowledge{hint}"
        )


def _check_resume(
    patient: str, week: int, history: Sequence[Prescription], exercises: Sequence[str]
) -> None:
    """A resume lifts a pause the clinician has seen: the week's prescription must exist and
    be paused (the program, or the named exercises). A resume recorded ahead of time would
    silently lift a pause that later data bring."""
    prescription = _week_prescription(patient, week, history)
    for name in exercises:
        if name not in prescription.exercises:
            known = ", ".join(prescription.exercises)
            raise StoreError(f"patient {patient!r}: no exercise {name!r} (there are {known})")
    named = exercises or list(prescription.exercises)
    paused = [n for n in named if prescription.exercises[n].status == "paused"]
    if prescription.status != "paused" and not paused:
        raise StoreConflict(
            f"patient {patient!r} is not paused in week {week}: there is nothing to resume"
        )


def _check_not_recorded(
    db: sqlite3.Connection, patient: str, kind: str, week: int, exercises: Sequence[str | None]
) -> None:
    """The same resume (of the program, or of exercises each resumed already) or
    acknowledgement as one recorded since the patient's newest data is refused: a request
    sent twice (a retry, a double click) must not record it twice."""
    done = {exercise for k, exercise in acted_since_data(db, patient, week) if k == kind}
    if done and set(exercises) <= done:
        raise StoreConflict(
            f"patient {patient!r}: this {kind} of week {week} is already recorded (since the "
            "newest data); the next recompute applies it"
        )


def _engine_check(
    compiled: CompiledProgram, enrollment: Enrollment, overrides: Mapping[str, Dose]
) -> None:
    """Refuse doses the engine would refuse as starting doses (type fields, strategy)."""
    try:
        compiled.first_week(enrollment.model_copy(update={"overrides": dict(overrides)}))
    except ProgressorError as exc:
        raise StoreError(f"patient {enrollment.patient!r}: {exc}") from None


def _enrollment_values(
    enrollment: Enrollment, program: Program, digest: str
) -> tuple[str, str, str, str, str]:
    """An enrollment's program, version, program hash, start and overrides (checked against
    the program's exercises, floor and ceiling) as the `patients` row holds them."""
    patient = enrollment.patient
    if enrollment.program != program.id:
        raise StoreError(f"{patient!r}: enrolled on {enrollment.program!r}, not {program.id!r}")
    for name, dose in enrollment.overrides.items():
        problem = _override_problem(program, name, dose)
        if problem:
            raise StoreError(f"patient {patient!r}: {problem}")
    overrides = canonical_json(
        {name: json.loads(dose_json(dose)) for name, dose in enrollment.overrides.items()}
    )
    return (program.id, program.version, digest, enrollment.start.isoformat(), overrides)


def _override_problem(program: Program, exercise: str, dose: Dose | None) -> str | None:
    try:
        planned = program.exercise(exercise)
    except KeyError:
        names = [e.id for e in program.exercises]
        hint = did_you_mean(exercise, names)
        known = f"{hint} it has {', '.join(names)}" if hint else f"it has {', '.join(names)}"
        return f"program {program.id!r} has no exercise {exercise!r} ({known})"
    return limit_problem(planned, dose) if dose is not None else None
