"""The review queue filtered and paged (progressor.store.queue), and records sent for one
patient (Store.import_records(patient=...)), on a synthetic clinic."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

import progressor
from progressor.errors import StoreConflict, UnknownPatient
from progressor.store.batch import recompute
from progressor.store.database import Store
from progressor.store.values import StoreError
from progressor.synth import synthesize_into_store
from tests.conftest import PROGRAMS, START

PROGRAM_FILES = ("low-back-pain.toml", "achilles-tendinopathy.toml")
WEEKS = 4
LATER = START + dt.timedelta(days=7)


def _programs() -> list[tuple[progressor.CompiledProgram, str]]:
    engine = progressor.Engine()
    texts = [(PROGRAMS / name).read_text(encoding="utf-8") for name in PROGRAM_FILES]
    return [(engine.compile(progressor.parse_program(text)), text) for text in texts]


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 synthetic patients on two programs, four weeks logged and computed."""
    path = tmp_path_factory.mktemp("queue") / "clinic.db"
    with Store.init(path) as store:
        synthesize_into_store(store, _programs(), 40, WEEKS, seed=3, start=START)
    recompute(path, as_of=START + dt.timedelta(days=7 * WEEKS))
    return path


def test_without_filters_a_page_is_the_whole_queue(clinic: Path) -> None:
    with Store.open(clinic, readonly=True) as store:
        queue = store.review_queue()
        page = store.review_page()
    assert len(queue) >= 5
    assert page.items == tuple(queue) and page.total == len(queue)
    assert page.next_offset is None


def test_paused_and_flagged_split_the_queue(clinic: Path) -> None:
    with Store.open(clinic, readonly=True) as store:
        queue = store.review_queue()
        paused = store.review_page(status="paused").items
        flagged = store.review_page(status="flagged").items
    assert paused and flagged
    assert all(i.paused for i in paused) and not any(i.paused for i in flagged)
    assert sorted(i.patient for i in (*paused, *flagged)) == sorted(i.patient for i in queue)
    # A program pause is a paused item; a reason "paused: ..." (an exercise) is one too.
    assert all(i.status == "paused" or "paused: " in i.reasons[0] for i in paused)


def test_a_program_filter_keeps_its_patients(clinic: Path) -> None:
    with Store.open(clinic, readonly=True) as store:
        queue = store.review_queue()
        programs = {i.program for i in queue}
        assert len(programs) == 2  # (both programs have patients waiting)
        for program in programs:
            page = store.review_page(program=program)
            assert page.items == tuple(i for i in queue if i.program == program)
            for item in page.items:
                assert store.enrollment(item.patient).program == program
        assert store.review_page(program="no-such-program").total == 0


def test_a_flag_filter_matches_a_flag_code_a_flag_rule_or_an_alert_rule(clinic: Path) -> None:
    with Store.open(clinic, readonly=True) as store:
        queue = store.review_queue()
        flared = store.review_page(flag="pain-flare").items
        reviewed = store.review_page(flag="review").items
        for item in flared:
            assert any(a.rule == "pain-flare" for a in store.alerts(item.patient))
    assert flared and reviewed
    assert {i.patient for i in flared} == {i.patient for i in queue if "pain-flare" in i.flags}
    assert all("review" in i.flags for i in reviewed)


def test_pages_follow_each_other_to_the_end(clinic: Path) -> None:
    with Store.open(clinic, readonly=True) as store:
        queue = store.review_queue()
        seen = []
        offset: int | None = 0
        while offset is not None:
            page = store.review_page(offset=offset, limit=3)
            assert page.total == len(queue) and len(page.items) <= 3
            seen.extend(page.items)
            offset = page.next_offset
        assert seen == queue
        assert store.review_page(offset=len(queue), limit=3).items == ()


def test_filters_and_paging_combine(clinic: Path) -> None:
    with Store.open(clinic, readonly=True) as store:
        paused = store.review_page(status="paused").items
        page = store.review_page(status="paused", offset=1, limit=2)
    assert page.items == paused[1:3] and page.total == len(paused)


def test_a_bad_status_or_page_is_refused_with_what_there_is(clinic: Path) -> None:
    with Store.open(clinic, readonly=True) as store:
        with pytest.raises(StoreError, match=r"'pased' \(did you mean 'paused'\?\)"):
            store.review_page(status="pased")
        with pytest.raises(StoreError, match="the limit 1 or more"):
            store.review_page(limit=0)
        with pytest.raises(StoreError, match="the offset is 0 or more"):
            store.review_page(offset=-1)


def test_an_unknown_patient_names_a_close_one(clinic: Path) -> None:
    with Store.open(clinic, readonly=True) as store, pytest.raises(UnknownPatient) as caught:
        store.enrollment("p0O12")
    assert caught.value.suggestion == "did you mean 'p0012'?"
    assert str(caught.value) == "patient 'p0O12' is not enrolled"


# -- records sent for one patient ---------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Store:
    [(compiled, text)] = _programs()[:1]
    store = Store.init(tmp_path / "one.db")
    store.add_program(compiled.program, text)
    for patient in ("anna", "ben"):
        enrollment = progressor.Enrollment(
            patient=patient, program=compiled.program.id, start=START
        )
        store.enroll(enrollment, compiled.program)
    return store


def test_records_sent_for_a_patient_are_theirs(store: Store) -> None:
    lines = [
        json.dumps({"date": "2026-01-06", "kind": "pain", "pain": 2}),
        json.dumps({"date": "2026-01-07", "kind": "pain", "pain": 3, "patient": "anna"}),
        json.dumps({"date": "2026-01-07", "kind": "pain", "pain": 4, "patient": "ben"}),
    ]
    report = store.import_records(lines, "http", patient="anna", today=LATER)
    assert (report.added, report.patients) == (2, 1)
    [aside] = report.quarantined
    assert aside.line == 3 and aside.reason == "a record of patient 'ben', sent for patient 'anna'"
    # The same record with its patient written out is the same record: not stored twice.
    again = store.import_records(lines[1:2], "file.jsonl", today=LATER)
    assert (again.added, again.duplicates) == (0, 1)
    store.close()


def test_a_broken_line_sent_for_a_patient_keeps_its_pain_for_them(store: Store) -> None:
    report = store.import_records(
        ['{"date": "2026-01-07", "kind": "pain", "pain": 9,'], "http", patient="ben", today=LATER
    )
    assert report.added == 1 and len(report.quarantined) == 1
    [(kept,)] = store._db.execute("SELECT record FROM pain_reports WHERE patient = 'ben'")
    assert json.loads(kept)["pain"] == 9
    store.close()


def test_an_acknowledgement_with_nothing_to_settle_is_a_conflict(clinic: Path) -> None:
    with Store.open(clinic, readonly=True) as store:
        waiting = {i.patient for i in store.review_queue()}
        calm = next(
            p
            for p in (f"p{n:04d}" for n in range(1, 41))
            if p not in waiting and store.alerts(p) == []
        )
    with Store.open(clinic) as store, pytest.raises(StoreConflict, match="nothing to acknowledge"):
        store.acknowledge(calm, "looked", "dr-lee")


def test_the_same_resume_or_acknowledgement_twice_is_a_conflict(
    clinic: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(clinic, copy)
    with Store.open(copy) as store:
        paused = store.review_page(status="paused").items[0].patient
        flagged = next(i.patient for i in store.review_page(status="flagged").items if i.week > 0)
        store.resume(paused, "phoned: settled", "dr-lee")
        with pytest.raises(StoreConflict, match="already recorded"):
            store.resume(paused, "phoned: settled", "dr-lee")
        store.acknowledge(flagged, "seen", "dr-lee")
        with pytest.raises(StoreConflict, match="already recorded"):
            store.acknowledge(flagged, "seen", "dr-lee")
        assert {paused, flagged}.isdisjoint(i.patient for i in store.review_queue())
