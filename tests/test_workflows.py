"""The clinic's workflows (docs/store.md, "Clinic workflows"): listing patients, a week and the
history, the quarantine and its fixes, re-enrolment, discharge, voiding a record and the first
week at enrolment; in the Python API and through the real `progressor` entry point."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import progressor
from progressor.core.models import PainReport
from progressor.reading.records import kept_for
from progressor.store import unheard
from progressor.store.batch import recompute
from progressor.store.database import Store
from progressor.store.schema import MIGRATIONS, SCHEMA_VERSION
from progressor.store.values import StoreError, canonical_json, sha256_hex
from progressor.synth import synthesize_into_store
from tests.conftest import PROGRAMS, START, full_week
from tests.test_cli import run

SEED_PATH = PROGRAMS / "low-back-pain.toml"
SEED_TEXT = SEED_PATH.read_text(encoding="utf-8")
SEED = progressor.parse_program(SEED_TEXT)
#: Two weeks have ended: weeks 1 and 2 are judged, week 3 is under way.
AS_OF = START + dt.timedelta(days=14)
#: The seed program's next version: the bridge's ceiling lowered, the knee-to-chest stretch
#: replaced by a new exercise (a realistic revision of the program).
NEXT_TEXT = (
    SEED_TEXT.replace('version = "1.0.0"', 'version = "1.1.0"', 1)
    .replace("reps = 12, hold_s = 10 }", "reps = 6, hold_s = 10 }", 1)
    .replace("first_top = 12,", "first_top = 6,", 1)
    .replace('id = "knee-to-chest"', 'id = "cat-camel"', 1)
)


def lines(patient: str, rows: list[dict[str, Any]]) -> list[str]:
    return [json.dumps({**row, "patient": patient}) for row in rows]


def flare(patient: str, day: int = 3, pain: float = 9) -> str:
    date = (START + dt.timedelta(days=day)).isoformat()
    return json.dumps({"patient": patient, "date": date, "pain": pain})


@pytest.fixture
def engine() -> progressor.Engine:
    return progressor.Engine()


@pytest.fixture
def compiled(engine: progressor.Engine) -> progressor.CompiledProgram:
    return engine.compile(SEED)


@pytest.fixture
def store(tmp_path: Path, compiled: progressor.CompiledProgram) -> Iterator[Store]:
    with Store.init(tmp_path / "clinic.db") as opened:
        opened.add_program(SEED, SEED_TEXT)
        for patient in ("anna", "ben"):
            enrollment = progressor.Enrollment(patient=patient, program=SEED.id, start=START)
            opened.enroll(enrollment, SEED, compiled)
        yield opened


def compute(store: Store, as_of: dt.date = AS_OF) -> progressor.store.Summary:
    return recompute(store.path, as_of=as_of)


def week_1_and_2(store: Store, patient: str = "anna", **extra: str) -> None:
    """Two full weeks at the starting dose, then the second at the progressed one."""
    rows = full_week() + full_week(START + dt.timedelta(days=7), reps=6)
    store.import_records(lines(patient, rows) + list(extra.values()), today=AS_OF)


# -- the first week at enrolment -------------------------------------------------------------


def test_enrolment_stores_week_1_at_once(
    store: Store, compiled: progressor.CompiledProgram
) -> None:
    [week_1] = store.prescriptions("anna")
    enrollment = progressor.Enrollment(patient="anna", program=SEED.id, start=START)
    assert week_1 == compiled.first_week(enrollment)
    assert [e.status for e in store.patients()] == ["active", "active"]
    # Nothing to compute before the first week ends: counted as not started, not due.
    summary = compute(store, START + dt.timedelta(days=3))
    assert (summary.due, summary.not_started) == (0, 2)
    # Enrolled without an engine, nothing is computed (and the list says so).
    store.enroll_many([progressor.Enrollment(patient="cleo", program=SEED.id, start=START)], SEED)
    assert store.prescriptions("cleo") == []
    assert store.patients(status="not-computed")[0].patient == "cleo"


def test_a_flare_in_week_1_still_reaches_the_queue_after_enrolment_stored_week_1(
    store: Store,
) -> None:
    store.import_records([flare("anna")], today=START + dt.timedelta(days=4))
    summary = compute(store, START + dt.timedelta(days=4))
    assert summary.computed == 1 and summary.alerts == 1
    assert [item.patient for item in store.review_queue()] == ["anna"]


# -- listing patients -------------------------------------------------------------------------


def test_patients_lists_a_cohort_by_status_and_program(
    tmp_path: Path, engine: progressor.Engine
) -> None:
    walking_text = (PROGRAMS / "graded-walking.toml").read_text(encoding="utf-8")
    walking = progressor.parse_program(walking_text)
    programs = [(engine.compile(SEED), SEED_TEXT), (engine.compile(walking), walking_text)]
    path = tmp_path / "cohort.db"
    with Store.init(path) as store:
        synthesize_into_store(store, programs, 24, 3, seed=7, start=START)
    recompute(path, as_of=START + dt.timedelta(days=21))
    with Store.open(path) as store:
        every = store.patients()
        assert len(every) == 24 and [e.week for e in every] == [4] * 24
        newest = {e.patient: store.prescriptions(e.patient)[-1].status for e in every}
        paused = [p for p, status in newest.items() if status == "paused"]
        assert paused, "the seed's cohort holds flares"
        assert [e.patient for e in store.patients(status="paused")] == paused
        on_walking = store.patients(program=walking.id)
        assert on_walking and {e.program for e in on_walking} == {walking.id}
        assert len(store.patients(program=walking.id, status="active")) + len(
            store.patients(program=walking.id, status="paused")
        ) == len(on_walking)


# -- discharge -------------------------------------------------------------------------------


def test_a_discharged_patient_is_kept_never_computed_and_reviewed_only_for_new_records(
    store: Store,
) -> None:
    week_1_and_2(store, flare=flare("anna"))
    compute(store)
    queued = [item.patient for item in store.review_queue()]
    assert queued == ["anna", "ben"]  # (ben logged nothing for two weeks: flagged)
    kept = store.prescriptions("anna")
    store.discharge("anna", "moved away", "dr-x")
    assert [item.patient for item in store.review_queue()] == ["ben"]
    assert [e.status for e in store.patients()] == ["discharged", "active"]
    assert store.patients(status="discharged")[0].patient == "anna"
    # New data and weeks later: never computed again; the results stay as they were. The
    # flare no computation judged is an alert, and waits in the review queue with it.
    store.import_records([flare("anna", day=15)], today=AS_OF + dt.timedelta(days=2))
    summary = compute(store, AS_OF + dt.timedelta(days=21))
    assert summary.enrolled == 1 and store.prescriptions("anna") == kept
    [waits, _] = store.review_queue()
    assert (waits.patient, waits.week, waits.flags) == ("anna", 0, ("discharged",))
    assert waits.reasons[0].startswith("urgent: discharged: patient 'anna' is discharged")
    assert [i.patient for i in store.review_page(flag="discharged").items] == ["anna"]
    store.void("anna", "p2", "typed by her sister", "dr-x")
    compute(store, AS_OF + dt.timedelta(days=21))
    assert [item.patient for item in store.review_queue()] == ["ben"]
    with pytest.raises(StoreError, match="discharged: re-enrol them first"):
        store.resume("anna", "ok", "dr-x")
    with pytest.raises(StoreError, match="already discharged"):
        store.discharge("anna", "again", "dr-x")
    [audit] = store._db.execute("SELECT kind, program, who, note FROM enrollment_changes")
    assert audit == ("discharge", SEED.id, "dr-x", "moved away")


def test_a_patient_discharged_while_a_recompute_runs_stays_discharged(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run read anna's inputs, then a clinician discharged her, then the run stored her
    # results: they are stored (computed from what was read), but no week of hers is due
    # again, and she is not back among the enrolled or in the review queue.
    week_1_and_2(store, flare=flare("anna"))
    written = Store.write_results

    def discharged_first(self: Store, batch: Any) -> None:
        with Store.open(self.path) as other:
            if not other.is_discharged("anna"):
                other.discharge("anna", "moved away", "dr-x")
        written(self, batch)

    monkeypatch.setattr(Store, "write_results", discharged_first)
    assert compute(store).computed == 2
    monkeypatch.undo()
    assert [e.status for e in store.patients()] == ["discharged", "active"]
    assert [item.patient for item in store.review_queue()] == ["ben"]
    later = compute(store, AS_OF + dt.timedelta(days=21))
    assert (later.enrolled, later.computed) == (1, 1)  # (ben alone)


def discharged_alerts(store: Store) -> list[tuple[str, bool]]:
    """(patient and record id, urgent) of the alerts of discharged patients' unread records."""
    return [
        (f"{a.patient} {a.message.split(' record ')[1].split(' ')[0]}", a.urgent)
        for a in store.alerts()
        if a.week == 0 and a.rule == "discharged"
    ]


def test_a_discharged_patients_unread_records_are_alerted_until_voided_or_re_enrolled(
    store: Store, compiled: progressor.CompiledProgram
) -> None:
    """A record stored for a discharged patient that no computation read (imported after the
    discharge, whatever its day) is an alert while the patient stays discharged: urgent by
    their program's rules on all such records of theirs read together, once a channel, ended
    by a void (at the next recompute) or a re-enrolment (at once), which computes it."""
    week_1_and_2(store)
    compute(store)
    store.discharge("anna", "goals met", "dr-x")
    assert compute(store).computed == 0 and discharged_alerts(store) == []  # (all computed)
    later = AS_OF + dt.timedelta(days=3)
    store.import_records([flare("anna", day=10, pain=3), flare("anna", day=16)], today=later)
    assert discharged_alerts(store) == []  # (judged by recompute, as any alert)
    compute(store, later)
    # (A pain of 3 beside one of 9: urgent, as an unknown id's lines read together.)
    assert discharged_alerts(store) == [("anna p1", True), ("anna p2", True)]
    assert store.prescriptions("anna")[-1].week == 3  # never computed again
    [first, second] = [a for a in store.undelivered_alerts("pager") if a.week == 0]
    assert "of 2026-01-15" in first.message and "pain up to 3/10" in first.message
    store.record_delivery(first, "pager")
    assert [a for a in store.undelivered_alerts("pager") if a.week == 0] == [second]
    assert len([a for a in store.undelivered_alerts("email") if a.week == 0]) == 2

    store.void("anna", "p2", "typed 9 for 2", "dr-x")
    compute(store, later)
    assert discharged_alerts(store) == [("anna p1", False)]  # (3 alone raises nothing)
    compute(store, later)
    assert discharged_alerts(store) == [("anna p1", False)]  # (a run changes nothing)
    store.reenroll("anna", compiled, later, "back with a new flare-up", "dr-x")
    assert discharged_alerts(store) == []
    compute(store, later + dt.timedelta(days=7))
    assert discharged_alerts(store) == []
    # The unread record is the new week 1's: set aside, its pain counting for safety.
    [aside] = store.set_aside("anna")
    assert aside.record == "2026-01-15 pain report" and "still count" in aside.reason
    assert [r.id for r in store.records("anna") if r.voided] == ["p2"]


def test_records_waiting_at_a_discharge_are_alerted_and_those_computed_are_not(
    store: Store,
) -> None:
    """Records imported before the discharge but not computed by then are unread too; the
    ones computed before it raise nothing; an enrolled patient's records are computed as
    ever, without such an alert."""
    week_1_and_2(store)
    week_1_and_2(store, "ben")
    compute(store)
    store.import_records([flare("anna", day=15, pain=8), flare("ben", day=15)], today=AS_OF)
    store.discharge("anna", "moved away", "dr-x")
    compute(store)
    assert discharged_alerts(store) == [("anna p1", True)]
    assert [a.week for a in store.alerts("ben") if a.rule == "pain-flare"] == [3]


def test_a_damaged_row_of_a_discharged_patient_gives_the_pain_that_can_be_read(
    store: Store,
) -> None:
    store.discharge("ben", "done", "dr-x")
    store.import_records([flare("ben", day=2, pain=1)], today=AS_OF)
    store._db.execute(
        "UPDATE pain_reports SET record = ?",
        ('{"date":"2026-01-07","pain":"9 of 10","patient":"ben"}',),
    )
    assert compute(store).failures == ()
    assert discharged_alerts(store) == [("ben p1", True)]
    assert "pain up to 9/10" in store.alerts("ben")[0].message


def test_a_discharged_patients_row_that_cannot_be_read_at_all_is_an_urgent_alert(
    store: Store,
) -> None:
    store.discharge("ben", "done", "dr-x")
    store.import_records([flare("ben", day=2, pain=1)], today=AS_OF)
    store._db.execute("UPDATE pain_reports SET record = ?", ('{"date":"2026-01-07","pa',))
    assert compute(store).failures == ()
    [alert] = [a for a in store.alerts("ben") if a.rule == "discharged"]
    assert alert.urgent and "record p1 (<lines>:1) cannot be read as stored" in alert.message


def test_a_record_read_but_dated_after_the_week_under_way_is_alerted_after_a_discharge(
    store: Store, compiled: progressor.CompiledProgram
) -> None:
    """A recompute for an earlier day (or a record dated tomorrow) reads a record it judges
    nothing of: dated after the week under way. The patient discharged, it is alerted, and a
    re-enrolment takes it into the new enrollment, where it is computed."""
    week_1_and_2(store)
    store.import_records([flare("anna", day=25)], today=START + dt.timedelta(days=25))
    compute(store)  # (as of day 14: weeks 1 and 2 judged, week 3 under way; day 25 is week 4)
    assert [a.rule for a in store.alerts("anna")] == []
    store.discharge("anna", "moved away", "dr-x")
    compute(store, START + dt.timedelta(days=26))
    assert discharged_alerts(store) == [("anna p1", True)]
    store.reenroll("anna", compiled, START + dt.timedelta(days=28), "back", "dr-x")
    compute(store, START + dt.timedelta(days=35))
    assert "pain-flare" in [a.rule for a in store.alerts("anna")]


def test_a_discharged_patients_record_that_cannot_be_judged_is_alerted_as_urgent(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the judging fails, the alert is urgent, even for a pain of 1; the run goes on."""
    store.discharge("ben", "done", "dr-x")
    store.import_records([flare("ben", day=2, pain=1)], today=AS_OF)

    def failing(*args: object) -> None:
        raise RuntimeError("a safety rule failed")

    monkeypatch.setattr(unheard, "raised_by_any", failing)
    assert compute(store).failures == ()
    assert discharged_alerts(store) == [("ben p1", True)]


# -- voiding a record ------------------------------------------------------------------------


def test_a_voided_record_is_kept_and_the_next_recompute_leaves_it_out(store: Store) -> None:
    week_1_and_2(store, flare=flare("anna", day=9))  # a flare typed in week 2
    compute(store)
    assert store.prescriptions("anna")[-1].status == "paused"
    [typo] = [r for r in store.records("anna") if r.exercise is None]
    assert typo.id.startswith("p") and not typo.voided
    store.void("anna", typo.id, "the diary says 2, not 9", "dr-x")
    assert compute(store).computed == 1  # the void makes the patient due
    history = store.prescriptions("anna")
    assert history[-1].status == "active"
    assert history[1].exercises["bridge"].dose.reps == 6  # week 1 as before the void
    assert [r.voided for r in store.records("anna") if r.id == typo.id] == [True]
    [audit] = store._db.execute("SELECT patient, record, who, note FROM voids")
    assert audit == ("anna", typo.id, "dr-x", "the diary says 2, not 9")
    with pytest.raises(StoreError, match="already voided"):
        store.void("anna", typo.id, "again", "dr-x")


def test_void_names_only_the_patients_own_records(store: Store) -> None:
    week_1_and_2(store)
    first = store.records("anna")[0].id
    with pytest.raises(StoreError, match="'ben' has no record"):
        store.void("ben", first, "wrong patient", "dr-x")
    with pytest.raises(StoreError, match=r"not a record id.*--history"):
        store.void("anna", "12", "no prefix", "dr-x")
    with pytest.raises(StoreError, match="needs a note"):
        store.void("anna", first, " ", "dr-x")


# -- the quarantine --------------------------------------------------------------------------


def test_a_fixed_line_is_imported_and_the_quarantined_one_kept(store: Store) -> None:
    bad = '{"patient": "anna", "date": "2026-01-06", "pain": 12}'
    store.import_records([bad, flare("ben", day=1, pain=2)], source="diary.jsonl", today=AS_OF)
    [entry] = store.quarantined("anna")
    assert (entry.source, entry.line, entry.text, entry.state) == ("diary.jsonl", 1, bad, "waiting")
    assert store.quarantined("ben") == [] and store.status().quarantined == 1
    # A fix that is still wrong is set aside in turn, and the line waits.
    again = store.reimport(entry.id, [bad.replace("12", "11")], "typo", "dr-x", today=AS_OF)
    assert again.quarantined and store.quarantined("anna")[0].state == "waiting"
    fixed = '{"patient": "anna", "date": "2026-01-06", "pain": 2}'
    report = store.reimport(entry.id, [fixed], "the diary says 2", "dr-x", today=AS_OF)
    assert (report.added, report.quarantined) == (1, ())
    entries = store.quarantined("anna")
    assert entries[0].state == "fixed" and fixed in (entries[0].fix or "")
    assert store.status().quarantined == 1  # (the second wrong fix waits)
    with pytest.raises(StoreError, match="fixed already"):
        store.reimport(entry.id, [fixed], "twice", "dr-x", today=AS_OF)
    with pytest.raises(StoreError, match="no quarantined line 99"):
        store.reimport(99, [fixed], "none", "dr-x", today=AS_OF)


# -- re-enrolment ----------------------------------------------------------------------------


def test_reenrolment_carries_continuing_doses_within_the_new_limits(
    store: Store, engine: progressor.Engine
) -> None:
    week_1_and_2(store)
    compute(store)
    before = store.prescriptions("anna")[-1].exercises
    assert before["bridge"].dose.reps == 7 and before["pelvic-tilt"].dose.reps == 7
    next_program = progressor.parse_program(NEXT_TEXT)
    store.add_program(next_program, NEXT_TEXT)
    new_start = START + dt.timedelta(days=14)
    enrollment = store.reenroll(
        "anna", engine.compile(next_program), new_start, "next phase", "dr-x"
    )
    doses = enrollment.overrides
    assert doses["pelvic-tilt"] == before["pelvic-tilt"].dose  # continues as it was
    assert doses["bridge"].reps == 6  # lowered to the new ceiling, never copied around it
    assert "cat-camel" not in doses  # new: the program's own starting dose
    [week_1] = store.prescriptions("anna")
    assert (week_1.program_version, week_1.start) == ("1.1.0", new_start)
    assert week_1.exercises["cat-camel"].dose == next_program.exercise("cat-camel").dose
    assert store.patients()[0].program_version == "1.1.0"
    [audit] = store._db.execute(
        "SELECT kind, program_version, start, who, note FROM enrollment_changes"
    )
    assert audit == ("reenroll", "1.0.0", START.isoformat(), "dr-x", "next phase")
    # Recompute computes the new enrollment; the records of the one that ended stay with it.
    summary = compute(store, new_start + dt.timedelta(days=7))
    assert summary.failures == () and store.set_aside("anna") == []
    assert [p.week for p in store.prescriptions("anna")] == [1, 2]
    assert len(store.records("anna")) == 18  # (kept, all of them)


def test_the_earlier_enrollments_actions_no_longer_apply(
    store: Store, engine: progressor.Engine
) -> None:
    week_1_and_2(store, flare=flare("anna", day=9))
    compute(store)
    store.resume("anna", "seen, fine", "dr-x")
    compute(store)
    assert store.prescriptions("anna")[-1].status == "active"
    store.reenroll("anna", engine.compile(SEED), AS_OF, "start over", "dr-x")
    assert store.actions("anna") == []
    store.import_records([flare("anna", day=15)], today=AS_OF + dt.timedelta(days=2))
    compute(store, AS_OF + dt.timedelta(days=7))
    # The old resume (its week 3) does not lift the new week 2's pause.
    assert store.prescriptions("anna")[-1].status == "paused"


def test_carried_doses_clamp_to_the_floor_and_fall_back_for_another_type(
    engine: progressor.Engine,
) -> None:
    compiled = engine.compile(SEED)
    low = progressor.Dose(sets=1, reps=1, hold_s=5)
    timed = progressor.Dose(sets=1, duration_s=60)
    carried = compiled.carried_doses({"bridge": low, "pelvic-tilt": timed, "gone": low})
    assert carried == {"bridge": progressor.Dose(sets=1, reps=3, hold_s=5)}


# -- migration -------------------------------------------------------------------------------


def _old_store(path: Path, version: int) -> sqlite3.Connection:
    """A store at schema `version`, made by its own migrations, holding the seed program and
    anna enrolled on it (not computed yet); open, for the test to add what it needs."""
    db = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:version], start=1):
        db.executescript(script + f"PRAGMA user_version = {number};")
    db.execute(
        "INSERT INTO programs VALUES ('low-back-pain', '1.0.0', 'h', ?, 'then')", (SEED_TEXT,)
    )
    db.execute(
        "INSERT INTO patients (patient, program, program_version, program_hash, start, overrides,"
        " enrolled_at) VALUES ('anna', 'low-back-pain', '1.0.0', 'h', ?, '{}', 'then')",
        (START.isoformat(),),
    )
    db.execute("INSERT INTO patient_state (patient, next_due) VALUES ('anna', '2026-01-12')")
    return db


def test_a_version_8_store_migrates_with_everyone_enrolled_and_every_record_counted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v8.db"
    db = _old_store(path, 8)
    db.execute(
        "INSERT INTO pain_reports (patient, hash, date, record, source, line)"
        " VALUES ('anna', 'x', '2026-01-06', ?, 'old.jsonl', 1)",
        (json.dumps({"patient": "anna", "date": "2026-01-06", "pain": 9}),),
    )
    db.close()
    with Store.init(path) as store:
        assert store.schema_version() == SCHEMA_VERSION == 11
        assert [(e.patient, e.status) for e in store.patients()] == [("anna", "not-computed")]
        assert [r.voided for r in store.records("anna")] == [False]
    recompute(path, as_of=AS_OF)
    with Store.open(path) as store:
        assert store.prescriptions("anna")[-1].status == "paused"  # the old flare counts


def test_a_version_9_store_migrates_with_its_waiting_lines_of_unknown_ids_alerted(
    tmp_path: Path,
) -> None:
    """Schema 10 keeps the quarantined lines whose pains reach no patient's safety rules and
    hold a pain or a flag, for an alert; the lines already waiting are read again as an
    import reads them. 'bem' (pain 9), a broken line of anna (enrolled since: its pain was
    never stored) and a line of bytes that are not UTF-8 are; a settled line, an id alike to
    anna's (her rules got its pain: stored), a line without pain, a CSV row (kept without
    its header) and text that is not UTF-8 without a pain are not. Nothing stops the
    migration."""
    path = tmp_path / "v9.db"
    db = _old_store(path, 9)
    db.execute(
        "INSERT INTO imports (source, at, added, duplicates, quarantined)"
        " VALUES ('x', '2026-01-08T10:00:00+00:00', 1, 0, 8)"
    )
    # (What schema 9's import stored of ANNA's line: its pain, as anna's.)
    anna_kept = kept_for("anna", PainReport(patient="ANNA", date=START, pain=9))
    assert anna_kept is not None
    db.execute(
        "INSERT INTO pain_reports (patient, hash, date, record, source, line, import)"
        " VALUES ('anna', ?, ?, ?, 'old.jsonl', 3, 1)",
        (sha256_hex(canonical_json(anna_kept)), START.isoformat(), canonical_json(anna_kept)),
    )
    waiting: list[tuple[Any, Any]] = [
        (json.dumps({"patient": "bem", "date": "2026-01-06", "pain": 9}), None),
        (json.dumps({"patient": "zoe", "date": "2026-01-06", "pain": 8}), 1),  # (settled)
        (json.dumps({"patient": "ANNA", "date": START.isoformat(), "pain": 9}), None),
        (json.dumps({"patient": "cy", "date": "2026-01-06", "note": "fine"}), None),
        ("cy,2026-01-06,,,9", None),  # (a CSV row)
        ('{"patient": "anna", "date": "2026-01-07", "pain": 8', None),  # (broken: in part)
        (b'{"patient": "j\xff", "date": "2026-01-06", "pain": 9}', None),  # (bytes)
    ]
    for line, (raw, settled) in enumerate(waiting, start=1):
        db.execute(
            "INSERT INTO quarantine (hash, source, line, reason, raw, import, settled_by)"
            " VALUES (?, 'old.jsonl', ?, 'not enrolled', ?, 1, ?)",
            (f"h{line}", line, raw, settled),
        )
    db.execute(  # (text that is not UTF-8, without a pain)
        "INSERT INTO quarantine (hash, source, line, reason, raw, import)"
        " VALUES ('h8', 'old.jsonl', 8, 'bad', CAST(x'7b2270223a226cff227d' AS TEXT), 1)"
    )
    db.close()
    with Store.init(path) as store:
        assert store.schema_version() == SCHEMA_VERSION == 11
        alerts = store.unmatched_alerts()
    assert [(entry, a.patient, a.week, a.urgent) for entry, a in alerts] == [
        (1, "bem", 0, True),
        (6, "anna", 0, True),
        (7, "j\ufffd", 0, True),
    ]
    assert alerts[0][1].message.startswith("not enrolled: a line for 'bem' (old.jsonl:1, quar")
    recompute(path, as_of=AS_OF)
    with Store.open(path) as store:
        assert [a.urgent for _, a in store.unmatched_alerts("stderr")] == [True, True, True]


def test_a_version_10_store_migrates_knowing_which_records_were_computed_where_it_can(
    tmp_path: Path,
) -> None:
    """Schema 11 keeps the newest import each patient's stored results read. Where they are up
    to date (ben), every record stored was read: the newest import so far. Elsewhere (anna,
    never computed; cleo, discharged with records imported since) it is not known, so every
    record of the enrollment in force counts as unread: cleo's old record is alerted too (a
    false alarm at worst), beside the one imported after her discharge. Dora, discharged and
    up to date, holds a record dated after the week under way her results judged: read,
    judged for nothing; the migration gives her a new data version, and it is alerted."""
    path = tmp_path / "v10.db"
    db = _old_store(path, 10)
    for _ in (1, 2):
        db.execute(
            "INSERT INTO imports (source, at, added, duplicates, quarantined)"
            " VALUES ('x', '2026-01-08T10:00:00+00:00', 1, 0, 0)"
        )
    for patient in ("ben", "cleo", "dora"):
        db.execute(
            "INSERT INTO patients (patient, program, program_version, program_hash, start,"
            " overrides, enrolled_at) VALUES (?, 'low-back-pain', '1.0.0', 'h', ?, '{}', 'then')",
            (patient, START.isoformat()),
        )
    db.execute(
        "INSERT INTO patient_state (patient, data_version, computed_version, computed_weeks,"
        " next_due) VALUES ('ben', 2, 2, 1, '2026-01-19'), ('cleo', 3, 2, 1, NULL),"
        " ('dora', 2, 2, 1, NULL)"
    )
    for n, patient in enumerate(("cleo", "dora"), start=1):
        db.execute(
            "INSERT INTO enrollment_changes (patient, kind, program, program_version, start,"
            " overrides, note, who, at) VALUES (?, 'discharge', 'low-back-pain', '1.0.0', ?,"
            " '{}', 'done', 'dr-x', 'then')",
            (patient, START.isoformat()),
        )
        db.execute("UPDATE patients SET discharged = ? WHERE patient = ?", (n, patient))
    for number, (patient, day, pain) in enumerate(
        [("ben", 1, 2), ("cleo", 1, 2), ("cleo", 9, 9), ("dora", 20, 9)], start=1
    ):
        record = json.loads(flare(patient, day, pain))
        db.execute(
            "INSERT INTO pain_reports (patient, hash, date, record, source, line, import)"
            " VALUES (?, ?, ?, ?, 'old.jsonl', ?, ?)",
            (patient, f"h{number}", record["date"], canonical_json(record), number, min(number, 2)),
        )
    db.close()
    with Store.init(path) as store:
        assert store.schema_version() == SCHEMA_VERSION == 11
        state = "SELECT patient, computed_import FROM patient_state ORDER BY patient"
        found = store._db.execute(state).fetchall()
        assert found == [("anna", None), ("ben", 2), ("cleo", None), ("dora", 2)]
    recompute(path, as_of=AS_OF)
    with Store.open(path) as store:
        alerted = [("cleo p2", True), ("cleo p3", True), ("dora p4", True)]
        assert discharged_alerts(store) == alerted


# -- the command line ------------------------------------------------------------------------


def cli(store: Path, *args: str) -> Any:
    done = run(*args, "--store", str(store))
    assert done.returncode == 0, done.stderr
    return done


def test_the_workflows_on_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "clinic.db"
    cli(db, "init")
    for patient in ("anna", "ben"):
        cli(db, "enroll", patient, "--program", str(SEED_PATH), "--start", START.isoformat())
    assert "week = 1" in cli(db, "show", "anna").stdout  # at once, no recompute
    log = tmp_path / "log.jsonl"
    bad = '{"patient": "anna", "date": "2026-01-13", "pain": 12}'
    rows = lines("anna", full_week() + full_week(START + dt.timedelta(days=7), reps=6))
    log.write_text("\n".join([*rows, bad]) + "\n", encoding="utf-8")
    assert run("import", str(log), "--store", str(db)).returncode == 3
    cli(db, "recompute", "--week", AS_OF.isoformat(), "--workers", "1")
    listed = json.loads(cli(db, "patients", "--status", "paused", "--json").stdout)
    assert [p["patient"] for p in listed] == ["anna"] and listed[0]["week"] == 3
    assert "ben  low-back-pain 1.0.0  active  week 3" in cli(db, "patients").stdout

    week_2 = json.loads(cli(db, "show", "anna", "--week", "2", "--json").stdout)
    assert week_2["week"] == 2 and week_2["exercises"]["bridge"]["action"] == "progress"
    history = json.loads(cli(db, "show", "anna", "--history", "--json").stdout)
    assert [w["week"] for w in history] == [1, 2, 3]
    assert history[2]["exercises"]["bridge"]["decision"] is None
    salvaged = [r["id"] for r in history[1]["records"] if r["exercise"] is None]
    text = cli(db, "show", "anna", "--history").stdout
    assert f"record {salvaged[0]}: 2026-01-13 pain report" in text
    assert "week 3 (from 2026-01-19): paused" in text
    missing = run("show", "anna", "--week", "9", "--store", str(db))
    assert missing.returncode == 1 and "no week 9 computed (weeks 1 to 3)" in missing.stderr

    # The quarantine: listed, fixed and re-imported; the salvaged pain voided.
    [entry] = json.loads(cli(db, "quarantine", "--patient", "anna", "--json").stdout)
    assert (entry["line"], entry["text"], entry["state"]) == (19, bad, "waiting")
    fixed = bad.replace("12", "2")
    done = cli(db, "quarantine", "reimport", str(entry["id"]), "--line", fixed, "--note", "2")
    assert f"line {entry['id']} fixed" in done.stdout
    assert "fixed" in cli(db, "quarantine").stdout
    cli(db, "void", "anna", "--record", salvaged[0], "--why", "typed 12", "--who", "dr-x")
    cli(db, "recompute", "--week", AS_OF.isoformat(), "--workers", "1")
    assert json.loads(cli(db, "patients", "--status", "paused", "--json").stdout) == []

    # Re-enrolment on the next version, once what was raised was seen; then discharge.
    next_path = tmp_path / "low-back-pain-1.1.toml"
    next_path.write_text(NEXT_TEXT, encoding="utf-8")
    move = ("reenroll", "ben", "--program", str(next_path), "--start", "2026-01-19")
    refused = run(*move, "--note", "next phase", "--store", str(db))
    assert refused.returncode == 1 and "waits in the review queue" in refused.stderr
    cli(db, "acknowledge", "ben", "--note", "phoned: back to it now")
    done = cli(db, "reenroll", "ben", "--program", str(next_path), "--start", "2026-01-19",
               "--note", "next phase")  # fmt: skip
    assert "  bridge: 1 x " in done.stdout and "s (carried over)" in done.stdout
    assert "cat-camel" in done.stdout and "(start dose)" in done.stdout
    cli(db, "discharge", "ben", "--note", "goals met", "--who", "dr-x")
    cli(db, "discharge", "anna", "--note", "moved away", "--who", "dr-x")
    listed = cli(db, "patients").stdout
    assert "ben  low-back-pain 1.1.0  discharged  week 1" in listed
    assert "anna  low-back-pain 1.0.0  discharged  week 3" in listed
    assert "anna is discharged: results as kept then" in cli(db, "show", "anna").stderr
    refused = run("discharge", "ben", "--note", "again", "--store", str(db))
    assert refused.returncode == 1 and "already discharged" in refused.stderr


def test_reenrolment_keeps_a_flare_a_computation_read_but_judged_nothing_of(
    store: Store, engine: progressor.Engine
) -> None:
    """A record dated after the week under way (a recompute for an earlier day read it) was
    judged by nothing: a re-enrolment starting after it takes it over, and its flare counts
    in the new week 1, as a late diary's does; it is not closed with the old enrollment."""
    week_1_and_2(store)
    store.import_records([flare("anna", day=25)], today=START + dt.timedelta(days=25))
    compute(store)  # (as of day 14: weeks 1 and 2 judged, week 3 under way; day 25 is week 4)
    assert [a.rule for a in store.alerts("anna")] == []
    start = START + dt.timedelta(days=28)
    store.reenroll("anna", engine.compile(SEED), start, "next phase", "dr-x")
    ended = "SELECT count(*), count(ended) FROM {} WHERE patient = 'anna'"
    outcomes, closed = store._db.execute(ended.format("outcomes")).fetchone()
    assert outcomes == closed > 0  # (the outcomes the old weeks judged close with them)
    assert store._db.execute(ended.format("pain_reports")).fetchone() == (1, 0)  # (not it)
    compute(store, start + dt.timedelta(days=7))
    assert store.prescriptions("anna")[-1].status == "paused"
    assert [a.rule for a in store.alerts("anna")] == ["pain-flare"]


def test_reenrolment_waits_for_recompute_and_the_review_and_keeps_a_late_flare(
    store: Store, engine: progressor.Engine
) -> None:
    week_1_and_2(store)
    compute(store)
    store.import_records([flare("anna", day=13)], today=AS_OF)  # not yet recomputed
    seed = engine.compile(SEED)
    with pytest.raises(StoreError, match="run `progressor recompute`"):
        store.reenroll("anna", seed, AS_OF, "next phase", "dr-x")
    compute(store)
    with pytest.raises(StoreError, match="waits in the review queue"):
        store.reenroll("anna", seed, AS_OF, "next phase", "dr-x")
    store.resume("anna", "phoned: settled", "dr-x")
    store.reenroll("anna", seed, AS_OF, "next phase", "dr-x")
    compute(store, AS_OF + dt.timedelta(days=7))
    assert store.prescriptions("anna")[-1].status == "active"  # the seen flare stays behind
    # A late diary of the weeks before the move, imported after it: its flare still counts.
    late = AS_OF + dt.timedelta(days=8)
    store.import_records([flare("anna", day=12)], today=late)
    compute(store, late)
    assert store.prescriptions("anna")[-1].status == "paused"
