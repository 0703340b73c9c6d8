"""Recomputing a clinic: due weeks, the fold with clinician actions, incremental and idempotent
runs, a failing plugin or run, any number of workers, and a run killed with SIGKILL."""

from __future__ import annotations

import datetime as dt
import json
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import progressor
import progressor.store.batch
from progressor.reading import parse_record
from progressor.store.batch import recompute
from progressor.store.database import Store
from progressor.store.values import PatientResults, StoreError
from progressor.synth import SyntheticPatient, synthesize_clinic
from tests.conftest import PROGRAMS, ROOT, START, full_week
from tests.conftest import SometimesBroken as _Sometimes

SEED_TEXT = (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8")
SEED = progressor.parse_program(SEED_TEXT)
WEEK = dt.timedelta(days=7)
AS_OF = START + 2 * WEEK  # weeks 1 and 2 have ended


def dump(path: Path) -> list[str]:
    with Store.open(path) as store:
        return list(store.dump_results())


def lines_of(patient: str, rows: list[dict[str, Any]]) -> list[str]:
    return [json.dumps({**row, "patient": patient}) for row in rows]


def in_store_order(decisions: tuple[progressor.Decision, ...]) -> list[dict[str, Any]]:
    """A week's decisions as the store lists them: by exercise id."""
    return [d.model_dump(mode="json") for d in sorted(decisions, key=lambda d: d.exercise)]


def flare(day: dt.date) -> dict[str, Any]:
    return {"date": day.isoformat(), "pain": 8, "context": "flare"}


def new_store(path: Path, program: progressor.Program = SEED, text: str = SEED_TEXT) -> Store:
    store = Store.init(path)
    store.add_program(program, text)
    return store


def enrollment(patient: str, start: dt.date = START) -> progressor.Enrollment:
    return progressor.Enrollment(patient=patient, program=SEED.id, start=start)


@pytest.fixture
def clinic(tmp_path: Path) -> Path:
    """anna: two steady weeks; ben: a flare in week 2; cy: starts later, nothing has ended."""
    path = tmp_path / "clinic.db"
    with new_store(path) as store:
        store.enroll(enrollment("anna"), SEED)
        store.enroll(enrollment("ben"), SEED)
        store.enroll(enrollment("cy", START + dt.timedelta(days=10)), SEED)
        rows = lines_of("anna", full_week() + full_week(START + WEEK))
        rows += lines_of("ben", [*full_week(), *full_week(START + WEEK), flare(START + WEEK)])
        store.import_records(rows, "week-1-2.jsonl")
    return path


def test_due_patients_are_replayed_from_week_one_like_the_engine(clinic: Path) -> None:
    summary = recompute(clinic, as_of=AS_OF)
    assert (summary.enrolled, summary.due, summary.computed, summary.not_started) == (3, 2, 2, 1)
    assert summary.actions == {"progress": 0, "hold": 3, "regress": 0, "pause": 3}  # week 2
    assert (summary.alerts, summary.plugin_failures, summary.failures) == (1, 0, ())
    compiled = progressor.Engine().compile(SEED)
    with Store.open(clinic) as store:
        for patient in ("anna", "ben"):
            stored = store._db.execute(
                "SELECT record FROM outcomes WHERE patient = ?1 UNION ALL"
                " SELECT record FROM pain_reports WHERE patient = ?1",
                (patient,),
            )
            log = [parse_record(json.loads(text)) for (text,) in stored]
            expected = compiled.replay(enrollment(patient), log, until=AS_OF)
            assert [p.week for p in store.prescriptions(patient)] == [1, 2, 3]
            assert store.prescriptions(patient)[1:] == [r.prescription for r in expected]
            assert [d.model_dump(mode="json") for _, d in store.decisions(patient)] == [
                d for r in expected for d in in_store_order(r.decisions)
            ]
        assert store.prescriptions("cy") == []
        assert [(a.week, a.rule) for a in store.alerts("ben")] == [(2, "pain-flare")]


def test_data_that_arrive_after_a_clinician_action_bring_the_patient_back_to_review(
    clinic: Path,
) -> None:
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        store.resume("ben", "flare settled; checked by phone", "dr.lee")
        assert store.review_queue() == []
        # ben's diary for week 2, entered after the resume: an adverse event on its Wednesday.
        late = {**full_week(START + WEEK, (2,))[0], "adverse_event": True}
        store.import_records(lines_of("ben", [late]), "late-diary.jsonl")
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        [ben] = store.review_queue()
        assert ben.patient == "ben" and ben.status == "paused"
        # The resume did not lift a pause it never saw: the adverse event arrived after it.
        [flag] = [r for r in ben.reasons if r.startswith("resume-not-applied")]
        assert "adverse event" in flag and "review and resume again" in flag
        assert store.prescriptions("ben")[-1].status == "paused"
        # A clinician who has now seen it settles it; anna, paused by her own late adverse
        # event, is not settled by resuming one exercise of several.
        gentler = progressor.Dose(sets=1, reps=4, hold_s=5)
        store.override("ben", "bridge", gentler, "called: bruised shin, go gently", "dr.lee")
        store.resume("ben", "seen the adverse event: carry on, bridge gentler", "dr.lee")
        store.import_records(lines_of("anna", [{**late, "exercise": "bridge"}]), "anna.jsonl")
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        assert [i.patient for i in store.review_queue()] == ["anna"]
        newest = store.prescriptions("ben")[-1]
        assert newest.status == "active" and newest.exercises["bridge"].dose.reps == 4
        store.resume("anna", "bridge only", "dr.lee", exercises=["bridge"])
        assert [i.patient for i in store.review_queue()] == ["anna"]
        store.resume("anna", "all of it", "dr.lee")
        assert store.review_queue() == []


def test_a_resume_waits_for_records_imported_since_the_last_recompute(clinic: Path) -> None:
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        # A late diary with an adverse event arrives; the review still shows the old results.
        late = {**full_week(START + WEEK, (2,))[0], "adverse_event": True}
        store.import_records(lines_of("ben", [late]), "late-diary.jsonl")
        with pytest.raises(StoreError, match="records imported since the last recompute"):
            store.resume("ben", "flare settled; checked by phone", "dr.lee")
        store.override("ben", "bridge", progressor.Dose(sets=1, reps=4, hold_s=5), "x", "dr.lee")
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        [ben] = store.review_queue()
        assert any("adverse event" in reason for reason in ben.reasons)
        store.resume("ben", "seen the fall too: carry on", "dr.lee")  # now it may
        # An action alone (no new records) does not hold a resume back.
        store.override("ben", "bridge", progressor.Dose(sets=1, reps=3, hold_s=5), "y", "dr.lee")
        store.resume("ben", "and the rest", "dr.lee", exercises=["bridge"])


def test_a_resume_not_applied_names_the_late_reason_and_goes_once_resumed_again(
    clinic: Path,
) -> None:
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        store.resume("ben", "flare settled; checked by phone", "dr.lee")  # week 3
        # A paper diary for week 1 arrives late: a fall on its Wednesday.
        fall = {**full_week(START, (2,))[0], "adverse_event": True}
        store.import_records(lines_of("ben", [fall]), "paper-diary.jsonl")
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        newest = store.prescriptions("ben")[-1]
        assert (newest.week, newest.status) == (3, "paused")
        [flag] = [f for f in newest.flags if f.code == "resume-not-applied"]
        # It names what was new (week 1's adverse event), not what the clinician had seen.
        assert "adverse event" in flag.message and "8/10" not in flag.message
        store.resume("ben", "called about the fall: fine, carry on", "dr.lee")
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        newest = store.prescriptions("ben")[-1]
        assert newest.status == "active"
        assert not [f for f in newest.flags if f.code == "resume-not-applied"]


def test_a_resume_during_an_import_sees_that_import(clinic: Path) -> None:
    # An import under way holds the write lock; a resume recorded meanwhile waits for it and
    # then sees its records (their import started before the resume: they are new data).
    recompute(clinic, as_of=AS_OF)
    importer = sqlite3.connect(clinic, isolation_level=None)
    importer.execute("BEGIN IMMEDIATE")
    started = dt.datetime.now().astimezone().isoformat(timespec="microseconds")
    importer.execute("INSERT INTO imports VALUES (99, 'late.jsonl', ?, 1, 0, 0)", (started,))
    fall = json.dumps({"kind": "pain", "date": "2026-01-14", "pain": 3, "flags": ["fall"]})
    importer.execute(
        "INSERT INTO pain_reports (patient, hash, date, record, source, line, import)"
        " VALUES ('ben', 'h-fall', '2026-01-14', ?, 'late.jsonl', 1, 99)",
        (fall,),
    )
    importer.execute(
        "UPDATE patient_state SET data_version = data_version + 1 WHERE patient = 'ben'"
    )
    outcome: queue.Queue[BaseException | None] = queue.Queue()

    def resume() -> None:
        try:
            with Store.open(clinic) as store:
                store.resume("ben", "flare settled", "dr.lee")
            outcome.put(None)
        except BaseException as exc:  # (handed to the test)
            outcome.put(exc)

    thread = threading.Thread(target=resume)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()  # waiting for the import's lock
    importer.execute("COMMIT")
    importer.close()
    thread.join(10)
    error = outcome.get(timeout=1)
    assert isinstance(error, StoreError) and "imported since the last recompute" in str(error)


def test_an_acknowledgement_or_resume_waits_for_new_records_and_migrated_stores_resume(
    clinic: Path,
) -> None:
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        # A store computed before schema 5 knows no computed_at: versions decide.
        store._db.execute("UPDATE patient_state SET computed_at = NULL")
        store.resume("ben", "flare settled", "dr.lee")  # nothing new: allowed
        late = {**full_week(START + WEEK, (2,))[0], "pain_during": 5}
        store.import_records(lines_of("ben", [late]), "late.jsonl")
        with pytest.raises(StoreError, match="data not yet recomputed"):
            store.acknowledge("ben", "seen", "dr.lee")
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        store.acknowledge("ben", "seen the late diary", "dr.lee")  # computed_at known now
        store.import_records(lines_of("ben", [{**late, "pain_during": 6}]), "later.jsonl")
        with pytest.raises(StoreError, match="records imported since the last recompute"):
            store.acknowledge("ben", "seen", "dr.lee")


def test_late_data_that_change_nothing_of_a_pause_leave_its_resume_in_force(
    clinic: Path,
) -> None:
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        store.resume("ben", "flare settled; checked by phone", "dr.lee")
        # A forgotten pelvic tilt session of week 2, pain 1, entered after the resume.
        tilt = {**full_week(START + WEEK, (5,))[0], "pain_during": 1, "pain_after": 1}
        store.import_records(lines_of("ben", [tilt]), "late-diary.jsonl")
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        newest = store.prescriptions("ben")[-1]
        assert newest.status == "active"
        assert [f.code for f in newest.flags] == ["review"]  # the flare's own, no other
        # Still listed for review (data arrived after the last action), but not paused.
        assert [(i.patient, i.status) for i in store.review_queue()] == [("ben", "active")]


def test_an_acknowledgement_settles_flags_but_never_a_pause(clinic: Path) -> None:
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        [ben] = store.review_queue()
        assert ben.status == "paused"
        store.acknowledge("ben", "saw the flare alert", "dr.lee")  # his week has flags
        assert [i.patient for i in store.review_queue()] == ["ben"]  # a pause needs a resume
        with pytest.raises(StoreError, match="no flags or alerts in week 3: nothing to ack"):
            store.acknowledge("anna", "all fine", "dr.lee")
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        assert store.prescriptions("ben")[-1].status == "paused"  # nothing changed


def test_a_second_run_changes_nothing_and_only_new_data_is_recomputed(clinic: Path) -> None:
    recompute(clinic, as_of=AS_OF)
    first = dump(clinic)
    again = recompute(clinic, as_of=AS_OF)
    assert (again.due, again.computed, again.up_to_date) == (0, 0, 2)
    assert dump(clinic) == first
    with Store.open(clinic) as store:  # a record of week 3, which has not ended
        store.import_records(lines_of("anna", full_week(START + 2 * WEEK, (0,))), "late.jsonl")
        assert store.status().stale == 1  # anna (cy, never computed, has nothing logged)
    assert recompute(clinic, as_of=AS_OF).computed == 1
    changed = [a for a, b in zip(first, dump(clinic), strict=True) if a != b]
    assert [json.loads(line.split("\t")[1])[0] for line in changed] == ["anna"]  # its version
    week_later = recompute(clinic, as_of=AS_OF + WEEK)
    assert (week_later.due, week_later.computed) == (3, 3)  # cy's first week has ended too


def test_clinician_actions_apply_at_their_week_and_clear_the_review_queue(clinic: Path) -> None:
    recompute(clinic, as_of=AS_OF)
    with Store.open(clinic) as store:
        [item] = store.review_queue()
        assert (item.patient, item.week, item.status, item.pending) == ("ben", 3, "paused", False)
        assert item.reasons[0] == "program paused until a clinician resumes it"
        assert "pain 8/10" in item.reasons[1]
        status = store.status()
        assert (status.paused, status.flagged, status.alerts) == (1, 1, 1)
        monday = dt.datetime.combine(AS_OF, dt.time(9)).astimezone()
        store.resume("ben", "flare settled; checked by phone", "dr.lee", monday)
        assert store.review_queue() == []
        easier = progressor.Dose(sets=1, reps=4, hold_s=5)
        store.override("anna", "bridge", easier, "sore knee", "dr.lee", monday)
        assert store.status().stale == 2  # ben and anna (cy has nothing logged)
    assert recompute(clinic, as_of=AS_OF).computed == 2
    with Store.open(clinic) as store:
        ben = store.prescriptions("ben")
        assert ben[2].status == "active" and ben[2].week == 3
        assert {s.status for s in ben[2].exercises.values()} == {"active"}
        anna = store.prescriptions("anna")
        assert anna[2].exercises["bridge"].dose == easier
        assert [a.kind for a in store.actions("anna")] == ["override"]
    recompute(clinic, as_of=AS_OF + WEEK)
    with Store.open(clinic) as store:
        [bridge] = [d for _, d in store.decisions("anna", 3) if d.exercise == "bridge"]
        assert bridge.dose_before == easier  # week 3 started from the clinician's dose
        assert {d.action for _, d in store.decisions("ben", 3)} != {"pause"}


def test_an_override_the_engine_refuses_stops_only_that_patient(clinic: Path) -> None:
    with Store.open(clinic) as store:  # within the limits, but not a dose a hold can take
        store.override("anna", "bridge", progressor.Dose(duration_s=60), "walk", "dr.lee", week=2)
    summary = recompute(clinic, as_of=AS_OF)
    assert summary.computed == 1
    [failure] = summary.failures
    assert failure.patient == "anna" and "override of 'bridge': a 'hold' dose" in failure.error
    with Store.open(clinic) as store:
        assert store.status().failed == 1
        assert store.prescriptions("anna") == [] and len(store.prescriptions("ben")) == 3
        compiled = progressor.Engine().compile(SEED)  # what the command line passes
        walk = progressor.Dose(duration_s=60)
        with pytest.raises(StoreError, match="override of 'bridge': a 'hold' dose"):
            store.override("ben", "bridge", walk, "walk", "dr.lee", week=2, compiled=compiled)
        with pytest.raises(StoreError, match="override of 'bridge': a 'hold' dose"):
            dan = enrollment("dan").model_copy(update={"overrides": {"bridge": walk}})
            store.enroll(dan, SEED, compiled)
        assert len(store.actions("ben")) == 0


def test_a_failed_run_changes_nothing_already_stored(
    clinic: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recompute(clinic, as_of=AS_OF)
    before = dump(clinic)
    real = Store._replace

    def fail_after_ben(self: Store, batch: Any) -> None:
        real(self, batch)  # (the batch's rows written, then the disk fills)
        if any(results.patient == "ben" for results in batch):
            raise RuntimeError("disk full")

    monkeypatch.setattr(Store, "_replace", fail_after_ben)
    with pytest.raises(RuntimeError, match="disk full"):
        recompute(clinic, as_of=AS_OF + WEEK)  # anna and ben were replaced, then it failed
    assert dump(clinic) == before
    monkeypatch.undo()
    recompute(clinic, as_of=AS_OF + WEEK)
    shutil.copy(clinic, tmp_path / "fresh.db")
    with Store.open(tmp_path / "fresh.db") as fresh:
        fresh._db.execute("UPDATE patient_state SET computed_version = NULL")
    recompute(tmp_path / "fresh.db", as_of=AS_OF + WEEK)
    assert dump(clinic) == dump(tmp_path / "fresh.db")


def test_a_patient_given_twice_in_one_batch_keeps_the_later_results(
    clinic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's patients are replaced together, a statement a table; a patient given twice
    (recompute never does) is replaced in the batch's order, the later results kept."""
    written: list[Any] = []
    real = Store.write_results

    def kept(self: Store, batch: Any) -> None:
        written.extend(batch)
        real(self, batch)

    monkeypatch.setattr(Store, "write_results", kept)

    def rows() -> list[str]:  # (anna's and ben's: cy, who starts later, is computed once)
        return [row for row in dump(clinic) if '["cy"' not in row]

    recompute(clinic, as_of=AS_OF)
    first = rows()
    recompute(clinic, as_of=AS_OF + WEEK)  # (a week more: ben's and anna's results change)
    second = rows()
    monkeypatch.undo()
    assert first != second
    older = [r for r in written if r.patient == "anna"]
    assert len(older) == 2 and older[0] != older[1]
    ben = [r for r in written if r.patient == "ben"]
    with Store.open(clinic) as store:
        store.write_results([older[1], ben[1], older[0], ben[0]])
    assert rows() == first
    with Store.open(clinic) as store:
        store.write_results([older[0], ben[0], older[1], ben[1]])
    assert rows() == second


def broken_engine() -> progressor.Engine:
    raise progressor.PluginError("clinic_gone", "failed to import: ModuleNotFoundError")


def test_workers_that_cannot_start_fail_the_run_and_store_nothing(
    clinic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progressor.store.batch, "_POOL_BATCHES", 1)  # a pool even for two patients
    before = dump(clinic)
    # (The engine is built before the workers start: the run fails with the plugin's error.)
    with pytest.raises(progressor.PluginError, match="clinic_gone"):
        recompute(clinic, as_of=AS_OF, engine_factory=broken_engine, workers=2, batch_size=1)
    with pytest.raises(progressor.PluginError, match="clinic_gone"):
        recompute(clinic, as_of=AS_OF, engine_factory=broken_engine)
    assert dump(clinic) == before


# -- a plugin failing for some patients -----------------------------------------------------------


class clinic_sometimes:
    @staticmethod
    @progressor.hookimpl
    def progressor_register_safety_rules(register: Any) -> None:
        register(_Sometimes())


def with_sometimes() -> progressor.Engine:
    return progressor.Engine(plugins=[clinic_sometimes])


def store_of(path: Path, cohort: list[SyntheticPatient], text: str = SEED_TEXT) -> None:
    program = progressor.parse_program(text)
    with new_store(path, program, text) as store:
        for patient in cohort:
            store.enroll(patient.enrollment, program)
        store.import_records(
            [
                r.model_copy(update={"patient": p.enrollment.patient}).model_dump_json()
                for p in cohort
                for r in p.records
            ],
            "synthetic.jsonl",
        )


def test_a_plugin_failing_for_some_patients_leaves_the_others_computed(tmp_path: Path) -> None:
    base = progressor.Engine().compile(SEED)
    cohort = synthesize_clinic(base, 200, 3, seed=11)
    path, as_of = tmp_path / "clinic.db", START + 3 * WEEK
    store_of(path, cohort, SEED_TEXT + "\n[safety.sometimes-broken]\n")
    without = recompute(path, as_of=as_of)  # the program needs the plugin: nobody computed
    assert (without.computed, len(without.failures)) == (0, 200)
    assert "unknown safety rule 'sometimes-broken'" in without.failures[0].error
    assert dump(path)[0].startswith("patient_state")  # no results stored
    summary = recompute(path, as_of=as_of, engine_factory=with_sometimes)
    assert (summary.computed, summary.failures) == (200, ())
    broken = [p for p in cohort if sum(map(ord, p.enrollment.patient)) % 10 == 0]
    assert 0 < summary.plugin_failures <= len(broken) < 40
    with Store.open(path) as store:
        for patient in cohort:
            name = patient.enrollment.patient
            newest = store.prescriptions(name)[-1]
            decisions = [d.model_dump(mode="json") for _, d in store.decisions(name, 3)]
            if patient in broken:
                assert {d["action"] for d in decisions} <= {"hold", "pause"}
                failures = [f for f in newest.flags if f.code == "plugin-failure"]
                assert newest.status == "paused" or failures[0].plugin == "clinic_sometimes"
            else:
                expected = base.replay(patient.enrollment, patient.records, until=as_of)[-1]
                assert decisions == in_store_order(expected.decisions)


# -- a cohort of a few thousand: workers and SIGKILL ---------------------------------------------

COHORT_AS_OF = START + 3 * WEEK


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A store of 2,000 synthetic patients with three weeks of logs, and its clean result."""
    base = progressor.Engine().compile(SEED)
    folder = tmp_path_factory.mktemp("cohort")
    template, clean = folder / "template.db", folder / "clean.db"
    store_of(template, synthesize_clinic(base, 2000, 3, seed=5))
    shutil.copy(template, clean)
    recompute(clean, as_of=COHORT_AS_OF)
    return template, dump(clean)


def test_results_are_the_same_for_any_number_of_workers(
    cohort: tuple[Path, list[str]], tmp_path: Path
) -> None:
    template, clean = cohort
    shutil.copy(template, tmp_path / "two.db")
    # 10 batches: enough for the pool (fewer run in this process, see batch._POOL_BATCHES)
    summary = recompute(tmp_path / "two.db", as_of=COHORT_AS_OF, workers=2, batch_size=200)
    assert summary.computed == 2000 and summary.failures == ()
    assert dump(tmp_path / "two.db") == clean


#: A recompute killed (SIGKILL) while it replaces the die_at-th patient's results, half-way
#: through a batch's transaction: `python -c KILLED_RUN.replace("ARGS", ...) STORE AS_OF DIE_AT`
#: (ARGS: recompute's further keyword arguments).
KILLED_RUN = """
import datetime as dt, os, signal, sys
from progressor.store.batch import recompute
from progressor.store.database import Store

path, as_of, die_at = sys.argv[1], dt.date.fromisoformat(sys.argv[2]), int(sys.argv[3])
replace, calls = Store._replace, []

def replace_or_die(store, batch):
    for results in batch:  # (a patient at a time, to die half-way through a transaction)
        calls.append(results.patient)
        if len(calls) == die_at:
            os.kill(os.getpid(), signal.SIGKILL)
        replace(store, [results])

Store._replace = replace_or_die
recompute(path, as_of=as_of, batch_size=40, ARGS)
"""
_RUN = KILLED_RUN.replace("ARGS", "progress=lambda done, total: print(done, flush=True)")


def _run_and_kill(path: Path, batches: int = 0, die_at: int = 0) -> None:
    """Start a recompute in a process and SIGKILL it once `batches` batches were stored, or
    let it SIGKILL itself inside the transaction that stores its `die_at`-th patient."""
    command = [sys.executable, "-c", _RUN, str(path), COHORT_AS_OF.isoformat(), str(die_at)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()])
    reader.daemon = True
    reader.start()
    try:
        for _ in range(batches):
            lines.get(timeout=30)
        if batches:
            process.send_signal(signal.SIGKILL)
        process.wait(60)
    finally:
        process.kill()
        process.wait(10)
    assert process.returncode == -signal.SIGKILL


def test_a_run_killed_at_any_moment_then_run_again_equals_a_clean_run(
    cohort: tuple[Path, list[str]], tmp_path: Path
) -> None:
    template, clean = cohort
    path = tmp_path / "killed.db"
    shutil.copy(template, path)
    done = []
    for batches, die_at in ((3, 0), (0, 130)):  # killed from outside, then inside a write
        _run_and_kill(path, batches, die_at)
        with Store.open(path) as store:
            status = store.status()
        assert 0 < status.up_to_date < 2000
        done.append(status.up_to_date)
    assert done[1] == done[0] + 120  # three batches stored, the fourth rolled back
    summary = recompute(path, as_of=COHORT_AS_OF)
    assert summary.computed == 2000 - done[1]
    assert dump(path) == clean


# -- finding the due patients through the store's indexes ------------------------------------

_PATIENT_STATES = st.lists(
    st.tuples(
        st.integers(-20, 40),  # start, in days after START
        st.none() | st.integers(0, 6),  # weeks computed (None: never computed)
        st.integers(0, 2),  # data since enrolling or the last computation (0: none)
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(states=_PATIENT_STATES, as_of_day=st.integers(-10, 70))
def test_the_indexed_due_lists_and_counts_follow_the_definition(
    states: list[tuple[int, int | None, int]], as_of_day: int
) -> None:
    # Due: a week ended that was not computed, or new data, of a patient computed before or
    # with something logged since enrolling (a week-1 patient with a flare is computed at
    # once). The indexed queries (next_due, the partial index of new data) and the page-at-
    # a-time scan must both give exactly these patients.
    as_of = START + dt.timedelta(days=as_of_day)
    expected_due, not_started = [], 0
    with tempfile.TemporaryDirectory() as folder, new_store(Path(folder) / "c.db") as store:
        for i, (start_day, computed, new_data) in enumerate(states):
            patient, start = f"p{i:02d}", START + dt.timedelta(days=start_day)
            store.enroll(enrollment(patient, start), SEED)
            if computed is not None:
                store.write_results([PatientResults(patient, 1, computed)])
            store._db.execute(
                "UPDATE patient_state SET data_version = data_version + ? WHERE patient = ?",
                (new_data, patient),
            )
            weeks, done = max(0, (as_of - start).days // 7), computed or 0
            stale = computed is None or new_data > 0
            due = done < weeks or (stale and (done >= 1 or new_data > 0))
            expected_due += [patient] if due else []
            # (No week computed or ended, nothing logged: week 1 alone may be stored, as
            # enrolment stores it.)
            not_started += done == 0 and new_data == 0 and weeks == 0
        assert store.due_few(as_of) == expected_due
        assert store.due(as_of) == expected_due
        assert store.due(as_of, after="p03", limit=2) == [p for p in expected_due if p > "p03"][:2]
        assert store.count_patients(as_of) == (len(states), not_started, len(expected_due))


def test_an_upgrade_or_another_plugin_set_computes_every_patient_again(
    clinic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = recompute(clinic, as_of=AS_OF)
    assert (first.due, first.computed) == (2, 2)
    assert recompute(clinic, as_of=AS_OF).due == 0  # nothing new: nothing to do
    # A new version of progressor (or of a plugin) may decide differently: everyone computed
    # is due again, and once only.
    monkeypatch.setattr(
        progressor.core.plugins, "code_versions", lambda plugins=(): (("progressor", "99.0"),)
    )
    upgraded = recompute(clinic, as_of=AS_OF)
    assert (upgraded.due, upgraded.computed) == (2, 2)
    assert recompute(clinic, as_of=AS_OF).due == 0
    blocked = recompute(clinic, as_of=AS_OF, engine_factory=_without_ladder)
    assert (blocked.due, blocked.computed) == (2, 2)


def _without_ladder() -> progressor.Engine:
    return progressor.Engine(block=["ladder"])
