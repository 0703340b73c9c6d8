"""The embedded store: schema and migrations, programs and enrollments, imports and their
quarantine, clinician actions, and imports from several processes at once."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import progressor
from progressor.reading import parse_record
from progressor.store import database as store_module
from progressor.store.batch import recompute
from progressor.store.database import Store
from progressor.store.schema import MIGRATIONS, SCHEMA_VERSION
from progressor.store.values import StoreError, canonical_json
from tests.conftest import PROGRAMS, ROOT, START, full_week

SEED_TEXT = (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8")
SEED = progressor.parse_program(SEED_TEXT)


def rows_of(patient: str, rows: list[dict[str, Any]]) -> list[str]:
    return [json.dumps({**row, "patient": patient}) for row in rows]


def on_seed(patient: str) -> progressor.Enrollment:
    return progressor.Enrollment(patient=patient, program=SEED.id, start=START)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.init(tmp_path / "clinic.db") as opened:
        opened.add_program(SEED, SEED_TEXT)
        for patient in ("anna", "ben"):
            opened.enroll(
                progressor.Enrollment(patient=patient, program=SEED.id, start=START), SEED
            )
        yield opened


def count(store: Store, table: str) -> int:
    return int(store._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def data_versions(store: Store) -> dict[str, int]:
    return dict(store._db.execute("SELECT patient, data_version FROM patient_state").fetchall())


# -- schema -------------------------------------------------------------------------------------


def test_init_creates_the_current_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "clinic.db"
    with pytest.raises(StoreError, match="progressor init"):
        Store.open(path)
    (tmp_path / "notes.db").write_text("not a database, " * 100, encoding="utf-8")
    with pytest.raises(StoreError, match="cannot open the store: file is not a database"):
        Store.init(tmp_path / "notes.db")
    with Store.init(path, busy_timeout=5) as store:
        assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
        pragma = store._db.execute
        assert pragma("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert pragma("PRAGMA foreign_keys").fetchone()[0] == 1
        assert pragma("PRAGMA busy_timeout").fetchone()[0] == 5000
    with Store.init(path) as again, Store.open(path, readonly=True) as reader:
        assert again.schema_version() == reader.schema_version() == SCHEMA_VERSION
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._db.execute("DELETE FROM programs")


def test_a_version_1_store_migrates_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    db.execute("INSERT INTO programs VALUES ('low-back-pain', '1.0.0', 'h', 'x', 'then')")
    db.execute(
        "INSERT INTO patients VALUES ('anna', 'low-back-pain', '1.0.0', 'h', ?, '{}', 'then')",
        (START.isoformat(),),
    )
    db.close()
    with pytest.raises(StoreError, match="schema 1 is old"):
        Store.open(path)
    with Store.init(path) as store:
        assert store.schema_version() == SCHEMA_VERSION == 11
        state = store._db.execute("SELECT * FROM patient_state").fetchall()
        # Never computed: the next run rebuilds; due once the first week has ended.
        first_end = (START + dt.timedelta(days=7)).isoformat()
        assert state == [("anna", 1, None, 0, None, first_end, None, None)]
        assert store._db.execute("SELECT count(*) FROM alert_deliveries").fetchone() == (0,)
        assert store.enrollment("anna").start == START


def test_migration_5_gives_each_patient_the_day_its_next_week_ends(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript("".join(MIGRATIONS[:4]) + "PRAGMA user_version = 4;")
    db.execute("INSERT INTO programs VALUES ('low-back-pain', '1.0.0', 'h', 'x', 'then')")
    for patient, computed in (("anna", 0), ("ben", 2)):
        db.execute(
            "INSERT INTO patients VALUES (?, 'low-back-pain', '1.0.0', 'h', ?, '{}', 'then')",
            (patient, START.isoformat()),
        )
        db.execute(
            "INSERT INTO patient_state (patient, computed_version, computed_weeks)"
            " VALUES (?, ?, ?)",
            (patient, 1 if computed else None, computed),
        )
    db.close()
    with Store.init(path) as store:
        rows = store._db.execute("SELECT patient, next_due FROM patient_state ORDER BY 1")
        assert rows.fetchall() == [
            ("anna", (START + dt.timedelta(days=7)).isoformat()),  # week 1 not yet computed
            ("ben", (START + dt.timedelta(days=21)).isoformat()),  # weeks 1-2 computed
        ]
        # ben's third week has ended by START + 21 days, not a day earlier.
        assert store.due_few(START + dt.timedelta(days=20)) == ["anna"]
        assert store.due_few(START + dt.timedelta(days=21)) == ["anna", "ben"]


def test_migration_6_keeps_every_clinician_action(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript("".join(MIGRATIONS[:5]) + "PRAGMA user_version = 5;")
    db.execute("INSERT INTO programs VALUES ('low-back-pain', '1.0.0', 'h', 'x', 'then')")
    db.execute(
        "INSERT INTO patients VALUES ('anna', 'low-back-pain', '1.0.0', 'h', ?, '{}', 'then')",
        (START.isoformat(),),
    )
    row = ("anna", "resume", None, None, "phoned", "dr.lee", "2026-01-20T09:30:00+00:00", 3)
    db.execute(
        "INSERT INTO clinician_actions (patient, kind, exercise, dose, note, who, at, week,"
        " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '2026-01-20T09:31:00+00:00')",
        row,
    )
    db.close()
    with Store.init(path) as store:
        [action] = store.actions("anna")
        assert (action.id, action.kind, action.note, action.week) == (1, "resume", "phoned", 3)
        assert action.recorded_at == dt.datetime.fromisoformat("2026-01-20T09:31:00+00:00")
        indexes = store._db.execute(
            "SELECT name FROM sqlite_master WHERE tbl_name = 'clinician_actions' AND type = 'index'"
        ).fetchall()
        assert indexes == [("clinician_actions_patient",)]
        assert (
            "acknowledge"
            in store._db.execute(
                "SELECT sql FROM sqlite_master WHERE name = 'clinician_actions'"
            ).fetchone()[0]
        )


def test_each_migration_is_one_transaction_and_a_newer_store_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "clinic.db"
    Store.init(path).close()
    broken = "CREATE TABLE half_done (a);\nCREATE TABLE oops (b REFERENCES nowhere, (;\n"
    monkeypatch.setattr(store_module, "MIGRATIONS", (*MIGRATIONS, broken))
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", len(MIGRATIONS) + 1)
    with pytest.raises(sqlite3.OperationalError):
        Store.init(path)
    monkeypatch.undo()
    with Store.open(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        tables = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master")}
        assert "half_done" not in tables
        store._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        Store.open(path)


# -- programs and enrollments --------------------------------------------------------------------


def test_a_program_version_is_stored_once_and_never_changes(store: Store) -> None:
    assert store.add_program(SEED, SEED_TEXT) is False
    with pytest.raises(StoreError, match="new version"):
        store.add_program(SEED, SEED_TEXT + "\n# edited\n")
    with pytest.raises(StoreError, match="the text is of program 'low-back-pain'"):
        store.add_program(SEED.model_copy(update={"version": "9"}), SEED_TEXT)
    assert store.program(SEED.id, SEED.version).model_dump() == SEED.model_dump()
    assert count(store, "programs") == 1


def cy_with(overrides: dict[str, progressor.Dose]) -> progressor.Enrollment:
    return progressor.Enrollment(patient="cy", program=SEED.id, start=START, overrides=overrides)


def test_enrollment_is_checked_and_not_changed_silently(store: Store) -> None:
    anna = progressor.Enrollment(patient="anna", program=SEED.id, start=START)
    assert store.enroll(anna, SEED) is False  # the same enrollment again
    with pytest.raises(StoreError, match="already enrolled"):
        store.enroll(anna.model_copy(update={"start": START + dt.timedelta(days=1)}), SEED)
    high = progressor.Dose(sets=1, reps=30, hold_s=5)
    with pytest.raises(StoreError, match="above the ceiling"):
        store.enroll(cy_with({"bridge": high}), SEED)
    with pytest.raises(StoreError, match="no exercise 'brige'"):
        store.enroll(cy_with({"brige": high}), SEED)
    other = SEED.model_copy(update={"version": "2.0.0"})
    with pytest.raises(StoreError, match="add it first"):
        store.enroll(on_seed("cy"), other)
    cy = cy_with({"bridge": progressor.Dose(sets=1, reps=4, hold_s=5)})
    assert store.enroll(cy, SEED) is True
    assert store.enrollment("cy") == cy
    assert count(store, "patients") == 3


# -- imports -------------------------------------------------------------------------------------


def test_bad_lines_are_quarantined_with_their_reasons_and_the_good_ones_stored(
    store: Store, tmp_path: Path
) -> None:
    good = rows_of("anna", full_week())
    lines = [
        good[0],
        "{not json",
        json.dumps({"patient": "anna", "date": "2026-01-05", "exercise": "bridge", "rep": [5]}),
        json.dumps({"date": "2026-01-05", "pain": 3}),
        json.dumps({"patient": "zoe", "date": "2026-01-05", "pain": 3}),
        "",
        json.dumps({"patient": "ben", "date": "2026-01-06", "pain": 2, "context": "morning"}),
        *good[1:],
    ]
    path = tmp_path / "week-1.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = store.import_records(path)
    assert (report.added, report.duplicates, report.patients) == (len(good) + 1, 0, 2)
    reasons = [(a.line, a.reason) for a in report.quarantined]
    assert reasons == [
        (2, "not valid JSON: Expecting property name enclosed in double quotes at column 2"),
        (3, "rep: unknown field (did you mean 'reps'?)"),
        (4, "no 'patient' field: the store must know whose record it is"),
        (
            5,
            "patient 'zoe' is not enrolled; it holds pain up to 3/10: enroll the patient or"
            " correct the id, and review it",
        ),
    ]
    assert report.quarantined[0].record == "{not json"
    assert [(a.line, a.reason) for a in store.quarantine()] == reasons
    assert (count(store, "outcomes"), count(store, "pain_reports")) == (len(good), 1)
    assert data_versions(store) == {"anna": 2, "ben": 2}

    again = store.import_records(path)
    assert (again.added, again.duplicates, len(again.quarantined)) == (0, len(good) + 1, 4)
    assert (count(store, "outcomes"), count(store, "quarantine")) == (len(good), 4)
    assert data_versions(store) == {"anna": 2, "ben": 2}  # nothing new: nothing to recompute
    stored = store._db.execute("SELECT source, line FROM outcomes ORDER BY id").fetchone()
    assert stored == (str(path), 1)


def test_a_quarantined_line_a_later_import_stores_is_settled(store: Store, tmp_path: Path) -> None:
    # zoe's diary arrived before her enrollment: quarantined. Enrolled, the same file again
    # stores her line: status no longer counts it, the quarantine still shows what happened.
    zoe = json.dumps({"patient": "zoe", "date": "2026-01-06", "pain": 3})
    bad = json.dumps({"patient": "anna", "date": "2026-01-06", "pian": 3})
    path = tmp_path / "diary.jsonl"
    path.write_text(f"{zoe}\n{bad}\n", encoding="utf-8")
    first = store.import_records(path)
    assert (first.added, len(first.quarantined), store.status().quarantined) == (0, 2, 2)
    store.enroll(progressor.Enrollment(patient="zoe", program=SEED.id, start=START), SEED)
    again = store.import_records(path)
    assert (again.added, len(again.quarantined)) == (1, 1)  # anna's typo still waits
    assert store.status().quarantined == 1
    assert [a.line for a in store.quarantine()] == [1, 2]  # the history is kept
    settled = "SELECT line, settled_by FROM quarantine ORDER BY id"
    imports = [i for (i,) in store._db.execute("SELECT id FROM imports ORDER BY id")]
    assert store._db.execute(settled).fetchall() == [(1, imports[1]), (2, None)]


def test_two_lines_at_one_place_of_an_overwritten_export_are_two_alerts_sent_apart(
    store: Store, tmp_path: Path
) -> None:
    """A weekly export overwritten under one name puts two lines of an unknown id at the same
    file and line: each waiting line is its own alert (its quarantine entry in the message),
    and a delivery of one does not count for the other."""
    path = tmp_path / "export.jsonl"
    for day in ("2026-01-06", "2026-01-13"):
        path.write_text(json.dumps({"patient": "bem", "date": day, "pain": 9}) + "\n")
        store.import_records(path)
    alerts = [alert for _, alert in store.unmatched_alerts("pager")]
    assert [a.message.split(" holds")[0] for a in alerts] == [
        f"not enrolled: a line for 'bem' ({path}:1, quarantine entry {n})" for n in (1, 2)
    ]
    store.record_delivery(alerts[0], "pager")
    assert store.unmatched_alerts("pager") == [(2, alerts[1])]
    assert store.undelivered_alerts("pager") == [alerts[1]]
    assert len(store.undelivered_alerts("email")) == 2


@pytest.mark.parametrize("engine", ["patients", "columns"])
def test_a_record_of_an_id_spelled_otherwise_gives_its_pain_to_that_patient(
    store: Store, tmp_path: Path, engine: str
) -> None:
    """'ANNA' (or 'Anna '), not enrolled, names anna but for case and spaces: the line is
    quarantined saying so, and its pain of 9 reaches anna's safety rules (she is paused). An
    id that differs otherwise (zoe, bem) is quarantined as before, with no pain given away."""
    path = tmp_path / "diary.jsonl"
    store.enroll(on_seed("cy"), SEED)
    lines = [
        {"patient": "ANNA", "date": "2026-01-06", "pain": 9},
        {"patient": "bem", "date": "2026-01-06", "pain": 9},
        {"patient": "Ben ", "date": "2026-01-06", "exercise": "bridge", "reps": [5]}
        | {"hold_s": 5, "pain_before": 2, "pain_during": 8},
        {"patient": "CY", "date": "2026-01-06", "pain": "9/10"},  # (read in part only)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    report = store.import_records(path)
    assert report.added == 3  # (what is kept of each, as anna's, ben's and cy's)
    hint = "count for the safety rules of {0!r}"
    assert [q.reason for q in report.quarantined] == [
        f"patient 'ANNA' is not enrolled (did you mean 'anna'? its pain scores and symptom "
        f"flags {hint.format('anna')})",
        "patient 'bem' is not enrolled; it holds pain up to 9/10: enroll the patient or correct"
        " the id, and review it",
        f"patient 'Ben ' is not enrolled (did you mean 'ben'? its pain scores and symptom "
        f"flags {hint.format('ben')})",
        "pain: Input should be a valid number, unable to parse string as a number; patient "
        f"'CY' is not enrolled (did you mean 'cy'? its pain scores and symptom flags "
        f"{hint.format('cy')})",
    ]
    recompute(store.path, as_of=START + dt.timedelta(days=7), engine=engine)
    newest = {p: store.prescriptions(p)[-1] for p in ("anna", "ben", "cy")}
    assert [(p.week, p.status) for p in newest.values()] == [(2, "paused")] * 3
    # ANNA enrolled after all, the same file again stores her line and settles it.
    store.enroll(on_seed("ANNA"), SEED)
    again = store.import_records(path)
    assert again.added == 1 and len(again.quarantined) == 3
    settled = "SELECT line, settled_by IS NOT NULL FROM quarantine ORDER BY id"
    assert store._db.execute(settled).fetchall()[:3] == [(1, 1), (2, 0), (3, 0)]


def test_a_record_whose_patient_id_is_a_number_gives_its_pain_to_that_patient(
    store: Store,
) -> None:
    store.enroll(on_seed("1001"), SEED)
    flare = json.dumps({"patient": 1001, "date": "2026-01-06", "pain": 9})
    report = store.import_records([flare], "ids.jsonl", "jsonl")
    [aside] = report.quarantined
    assert aside.reason.startswith("patient: Input should be a valid string (write the id as")
    assert report.added == 1  # (its pain, as 1001's)
    recompute(store.path, as_of=START + dt.timedelta(days=7))
    assert store.prescriptions("1001")[-1].status == "paused"


def test_a_record_of_an_id_alike_to_two_enrolled_ones_says_so_and_gives_its_pain_to_neither(
    store: Store,
) -> None:
    store.enroll(on_seed("Ben"), SEED)  # (beside the fixture's ben)
    flare = json.dumps({"patient": "BEN", "date": "2026-01-06", "pain": 9})
    report = store.import_records([flare], "two.jsonl", "jsonl")
    [aside] = report.quarantined
    assert aside.reason == (
        "patient 'BEN' is not enrolled (it may mean 'Ben' or 'ben': which one cannot be told,"
        " so its pains count for none); it holds pain up to 9/10: enroll the patient or"
        " correct the id, and review it"
    )
    assert report.added == 0


def test_only_a_line_that_waited_for_an_enrollment_is_settled(store: Store, tmp_path: Path) -> None:
    # The same CSV text under another header is another record: anna's pain of 11 (refused)
    # is not settled by a file where those cells mean a hold of 11 and a pain of 5.
    refused = tmp_path / "c.csv"
    refused.write_text(
        "patient,date,exercise,reps,pain_during,hold_s\nanna,2026-01-08,bridge,5,11,5\n"
    )
    other = tmp_path / "d.csv"
    other.write_text(
        "patient,date,exercise,reps,hold_s,pain_during\nanna,2026-01-08,bridge,5,11,5\n"
    )
    assert len(store.import_records(refused).quarantined) == 1
    assert store.import_records(other).added == 1
    assert store.status().quarantined == 1


def test_csv_logs_import_with_their_line_numbers(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "anna.csv"
    path.write_text(
        "patient,date,exercise,side,reps,hold_s,pain_before,pain_during\n"
        "anna,2026-01-05,knee-to-chest,left,5,5,2,2\n"
        "anna,2026-01-05,knee-to-chest,right,5,5,2,12\n"
        "ben,2026-01-06,bridge,,5;5,5,1,1\n",
        encoding="utf-8",
    )
    report = store.import_records(path)
    assert report.added == 3  # the bad row's pain (12, read as 10) is kept for the safety rules
    [bad] = report.quarantined
    assert (bad.line, bad.record) == (3, "anna,2026-01-05,knee-to-chest,right,5,5,2,12")
    assert "pain_during" in bad.reason and "kept for the safety rules" in bad.reason
    record = store._db.execute("SELECT record FROM outcomes WHERE patient = 'ben'").fetchone()[0]
    assert json.loads(record)["reps"] == [5, 5]


def test_the_same_record_from_another_file_or_order_is_a_duplicate(store: Store) -> None:
    rows = rows_of("anna", full_week())
    assert store.import_records(rows, "a.jsonl").added == len(rows)
    shuffled = [json.dumps(dict(reversed(json.loads(r).items()))) for r in reversed(rows)]
    report = store.import_records(shuffled, "b.jsonl")
    assert (report.added, report.duplicates) == (0, len(rows))


def test_a_failed_import_changes_nothing(store: Store, tmp_path: Path) -> None:
    store.import_records(rows_of("anna", full_week()[:3]), "first")
    before = (count(store, "outcomes"), count(store, "imports"), data_versions(store))
    path = tmp_path / "broken.jsonl"
    good = "\n".join(rows_of("ben", full_week())) + "\n"
    path.write_bytes(good.encode() + b'{"note": "caf\xe9"}\n')  # latin-1 after good lines
    with pytest.raises(progressor.LogError, match="not UTF-8"):
        store.import_records(path)
    assert (count(store, "outcomes"), count(store, "imports"), data_versions(store)) == before
    with pytest.raises(progressor.LogError, match="unknown log format"):
        store.import_records(tmp_path / "log.txt")


# -- clinician actions ---------------------------------------------------------------------------


def test_clinician_actions_are_recorded_with_who_when_why_and_week(store: Store) -> None:
    # A resume lifts a pause the clinician has seen: none before anything is computed.
    with pytest.raises(StoreError, match="none is computed yet"):
        store.resume("anna", "too early", "dr.lee")
    flare = {"kind": "pain", "patient": "anna", "pain": 8, "date": "2026-01-13"}  # week 2
    store.import_records([json.dumps(flare)], "flare.jsonl", "jsonl")
    recompute(store.path, as_of=START + dt.timedelta(days=14))  # weeks 1-2: paused in week 3
    at = dt.datetime(2026, 1, 20, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    [resumed] = store.resume("anna", "flare settled, checked by phone", "dr.lee", at)
    assert (resumed.kind, resumed.week, resumed.exercise, resumed.at) == ("resume", 3, None, at)
    with pytest.raises(StoreError, match="'ben' is not paused in week 3: there is nothing"):
        store.resume("ben", "just in case", "dr.lee")
    with pytest.raises(StoreError, match=r"no prescription for week 30 \(the newest is week 3"):
        store.resume("anna", "a typo", "dr.lee", week=30)
    dose = progressor.Dose(sets=1, reps=4, hold_s=5)
    override = store.override("anna", "bridge", dose, "easier after the flare", "dr.lee", week=4)
    assert (override.week, override.dose) == (4, dose)
    assert store.actions("anna") == [resumed, override]
    assert data_versions(store)["anna"] == 4  # enrolled, the flare, two actions
    with pytest.raises(StoreError, match="note"):
        store.resume("anna", " ", "dr.lee")
    with pytest.raises(StoreError, match="above the ceiling"):
        store.override("anna", "bridge", progressor.Dose(reps=40, hold_s=5), "why", "dr.lee")
    with pytest.raises(StoreError, match="no exercise 'plank'"):
        store.override("anna", "plank", dose, "why", "dr.lee")
    with pytest.raises(StoreError, match="not enrolled"):
        store.resume("zoe", "why", "dr.lee")
    with pytest.raises(StoreError, match="no exercise 'brige'"):  # one transaction: neither
        store.resume("anna", "why", "dr.lee", exercises=["bridge", "brige"])
    assert count(store, "clinician_actions") == 2
    [one] = store.resume("anna", "bridge only", "dr.lee", exercises=["bridge"], week=3)
    assert (one.exercise, one.week) == ("bridge", 3)


# -- several processes at once -------------------------------------------------------------------


def _import_file(path: str, log: str, ready: Any, results: Any) -> None:
    with Store.open(path) as store:
        ready.wait(30)  # all four start their transactions together
        report = store.import_records(log)
    results.put((report.added, report.duplicates))


def test_four_processes_importing_at_once_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    path = tmp_path / "clinic.db"
    patients = [f"p{n:02d}" for n in range(40)]
    with Store.init(path) as store:
        store.add_program(SEED, SEED_TEXT)
        for patient in patients:
            store.enroll(on_seed(patient), SEED)
    every = [
        row
        for patient in patients
        for week in range(4)
        for row in rows_of(patient, full_week(START + dt.timedelta(days=7 * week), (0, 2, 4, 6)))
    ]
    quarter = len(every) // 4
    files = []
    for n in range(4):  # each file: its own quarter, and half of the next quarter again
        files.append(tmp_path / f"part-{n}.jsonl")
        lines = every[n * quarter : (n + 1) * quarter + quarter // 2]
        files[-1].write_text("\n".join(lines) + "\n", encoding="utf-8")
    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(4), context.Queue()
    workers = [
        context.Process(target=_import_file, args=(str(path), str(f), ready, results))
        for f in files
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(10)
        assert worker.exitcode == 0
    assert sum(added for added, _ in reports) == len(every)
    assert sum(duplicates for _, duplicates in reports) == 3 * (quarter // 2)
    with Store.open(path) as store:
        assert count(store, "outcomes") == len(every)
        assert count(store, "imports") == 4
        stored = {r[0] for r in store._db.execute("SELECT record FROM outcomes")}
        assert stored == {canonical_json(parse_record(json.loads(r))) for r in every}
        assert set(data_versions(store).values()) <= {2, 3}


def test_docs_describe_every_table_and_column(tmp_path: Path) -> None:
    docs = (ROOT / "docs" / "store.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^### `(\w+)`\n(.*?)(?=^##)", docs, re.MULTILINE | re.DOTALL))
    assert f"## Schema (version {SCHEMA_VERSION})" in docs
    with Store.init(tmp_path / "clinic.db") as store:
        tables = [
            t for (t,) in store._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        assert sorted(sections) == sorted(tables)
        for table in tables:
            for column in store._db.execute(f"PRAGMA table_info({table})"):
                assert f"`{column[1]}`" in sections[table], f"{table}.{column[1]} undocumented"


def test_an_enrollment_stored_before_ids_were_checked_is_still_read(store: Store) -> None:
    # An id refused today may be in a store made earlier: reading it must not stop a batch.
    legacy = progressor.Enrollment.model_construct(
        patient="an\tna", program=SEED.id, start=START, overrides={}
    )
    store.enroll(legacy, SEED)
    assert store.enrollment("an\tna").patient == "an\tna"
