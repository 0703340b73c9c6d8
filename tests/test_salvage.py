"""A malformed record never hides a flare or a red flag; identical bouts are not duplicates."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import progressor
from progressor.reading import read_log, salvage
from progressor.reading.records import UNDATED
from progressor.store.batch import recompute
from progressor.store.database import Store
from tests.conftest import PROGRAMS, START, full_week

SEED_TEXT = (PROGRAMS / "low-back-pain.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("record", "pain", "flags"),
    [
        ({"date": "2026-01-05", "exercise": "bridge", "pain_during": 11}, 10, ()),
        ({"date": "2026-01-05", "exercise": "bridge", "pain_durring": 9}, 9, ()),
        ({"date": "2026-01-05", "pain": 9, "Note": "bad day"}, 9, ()),
        ({"date": "2026-01-05", "pain": 3, "flags": "bladder-bowel"}, 3, ("bladder-bowel",)),
        (
            {"date": "2026-01-05", "pain": 2, "context": "evening", "flags": ["fever"]},
            2,
            ("fever",),
        ),
        (
            {"date": "2026-01-05", "exercise": "bridge", "adverse_event": "yes", "reps": "x"},
            0,
            ("adverse-event",),
        ),
        # Pain written as people write it, and adverse events marked any way but a clear no.
        ({"date": "2026-01-05", "exercise": "bridge", "pain_during": "7/10"}, 7, ()),
        ({"date": "2026-01-05", "pain": "8 (bad)"}, 8, ()),
        ({"date": "2026-01-05", "pain": "7,5"}, 7.5, ()),
        ({"date": "2026-1-5", "pain": "9"}, 9, ()),
        ({"date": "2026-01-05", "exercise": "bridge", "adverse_event": "X"}, 0, ("adverse-event",)),
        ({"date": "2026-01-05", "exercise": "bridge", "adverse_event": 2}, 0, ("adverse-event",)),
    ],
)
def test_safety_relevant_values_are_kept_from_a_bad_record(
    record: dict[str, object], pain: float, flags: tuple[str, ...]
) -> None:
    kept = salvage(record)
    assert kept is not None and (kept.pain, kept.flags) == (pain, flags)


def test_a_flare_is_kept_a_flare_even_without_a_pain_score() -> None:
    for context in ("Flare", "flare-up"):
        kept = salvage({"date": "2026-01-05", "pain": None, "context": context})
        assert kept is not None and (kept.context, kept.pain) == ("flare", 0)


@pytest.mark.parametrize(
    "record",
    [
        {"date": "2026-01-05", "exercise": "bridge", "reps": "x"},
        {"date": "2026-01-05", "exercise": "bridge", "adverse_event": "no", "pain": "n/a"},
        {"date": "05/01/2026", "exercise": "bridge", "reps": "x"},
    ],
)
def test_nothing_is_kept_without_anything_safety_relevant(record: dict[str, object]) -> None:
    assert salvage(record) is None


def test_a_pain_without_a_readable_day_is_kept_undated() -> None:
    # Day and month cannot be told apart: the readers keep it as of the day it was read.
    kept = salvage({"date": "05/01/2026", "pain": 9})
    assert kept is not None and (kept.date, kept.pain) == (UNDATED, 9)


def test_a_flare_in_a_malformed_record_still_pauses() -> None:
    compiled = progressor.Engine().compile(progressor.parse_program(SEED_TEXT))
    rows = [
        *map(json.dumps, full_week()),
        '{"date": "2026-01-06", "exercise": "bridge", "pain_during": 9, "mood": "bad"}',
    ]
    log = read_log(rows, "anna.jsonl", "jsonl")
    [aside] = log.set_aside
    assert aside.line == len(rows) and "kept for the safety rules" in aside.reason
    enrollment = progressor.Enrollment(patient="anna", program="low-back-pain", start=START)
    [result] = compiled.replay(enrollment, log.records)
    assert result.prescription.status == "paused"
    assert [a.rule for a in result.alerts] == ["pain-flare"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"pain_during": True}, "pain_during: true is not a number, e.g. 3"),
        ({"pain_after": False}, "pain_after: false is not a number, e.g. 3"),
        ({"reps": [5, True]}, "reps: [5, true] is not numbers, e.g. [5, 5]"),
        ({"hold_s": True}, "hold_s: true is not a number, e.g. 3"),
    ],
)
def test_true_or_false_where_a_number_belongs_is_set_aside_never_read_as_1_or_0(
    change: dict[str, object], reason: str
) -> None:
    # pydantic reads true as 1: a patient's "pain during: yes" must not become 1/10 pain that
    # lets the exercise progress. The session does not count; its other scores reach safety.
    compiled = progressor.Engine().compile(progressor.parse_program(SEED_TEXT))
    rows = [{**row, "kind": "outcome"} for row in full_week(pain=1)]
    rows[-1] = {**rows[-1], **change}
    log = read_log([json.dumps(row) for row in rows], "anna.jsonl", "jsonl")
    [aside] = log.set_aside
    assert (aside.line, aside.reason.split(";")[0]) == (len(rows), reason)
    assert all(isinstance(r, progressor.Outcome) for r in log.records[:-1])
    kept = log.records[-1]
    assert isinstance(kept, progressor.PainReport) and kept.pain == 1  # pain_before, kept
    enrollment = progressor.Enrollment(patient="anna", program="low-back-pain", start=START)
    [result] = compiled.replay(enrollment, log.records)
    bridge = next(d for d in result.decisions if d.exercise == "bridge")
    assert bridge.action == "hold"  # 2 sessions of the 3 needed count (read as 1: progress)


def test_a_pain_report_of_true_is_set_aside() -> None:
    log = read_log(['{"kind": "pain", "date": "2026-01-05", "pain": true}'], "x", "jsonl")
    assert log.records == () and "pain: true is not a number" in log.set_aside[0].reason


def test_the_store_keeps_the_safety_part_and_counts_identical_bouts(tmp_path: Path) -> None:
    with Store.init(tmp_path / "clinic.db") as store:
        program = progressor.parse_program(SEED_TEXT)
        store.add_program(program, SEED_TEXT)
        store.enroll(
            progressor.Enrollment(patient="anna", program=program.id, start=START), program
        )
        bout = {
            "patient": "anna",
            "date": "2026-01-05",
            "exercise": "bridge",
            "reps": [5],
            "hold_s": 5,
            "pain_before": 1,
            "pain_during": 1,
        }
        lines = [json.dumps(bout)] * 3 + [
            json.dumps({"patient": "anna", "date": "2026-01-06", "pain": 8, "contxt": "flare"})
        ]
        first = store.import_records(lines, source="export.jsonl")
        assert (first.added, first.duplicates, len(first.quarantined)) == (4, 0, 1)
        assert "kept for the safety rules" in first.quarantined[0].reason
        again = store.import_records(lines, source="export.jsonl")
        assert (again.added, again.duplicates) == (0, 4)


@pytest.mark.parametrize(
    "read",
    [
        lambda row: progressor.Outcome.model_validate(row),
        lambda row: progressor.Outcome.model_validate_json(json.dumps(row)),
        lambda row: progressor.Outcome.model_validate_json(json.dumps(row).encode()),
    ],
)
def test_the_models_refuse_true_or_false_where_a_number_belongs(read: Any) -> None:
    row = {"date": "2026-01-05", "exercise": "bridge", "reps": [5], "pain_before": 1}
    assert read({**row, "skipped": True, "note": "true"}).skipped is True  # booleans: fine
    for change in ({"pain_during": True}, {"reps": [5, False]}, {"rpe": True}):
        with pytest.raises(ValidationError, match="Input should be a valid number"):
            read({**row, **change})
    with pytest.raises(ValidationError, match="pain"):
        progressor.PainReport.model_validate({"date": "2026-01-05", "pain": True})


# -- lines that cannot be read whole ---------------------------------------------------------

_CSV_HEADER = "date,exercise,side,reps,hold_s,pain_before,pain_during,note"


def _csv_week() -> list[str]:
    rows = [_CSV_HEADER]
    for day in ("2026-01-05", "2026-01-07", "2026-01-09"):
        for exercise in ("pelvic-tilt", "knee-to-chest", "bridge"):
            rows.append(f"{day},{exercise},,5,5,2,2,")
    return rows


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        # An unquoted comma in the note at the end: the pain is where the header says.
        ("2026-01-10,bridge,,5,5,2,9,sharp pain, had to stop", "more cells (9) than"),
        # One typed into an early column: read from the right, the pain is still found.
        ("2026-01-10,bridge,left, right,5,5,2,9,", "more cells (9) than"),
        # Cells missing at the end: what is there is read against the header from the left.
        ("2026-01-10,bridge,,5,5,2,9", "fewer cells (7) than"),
    ],
)
def test_a_csv_row_with_more_or_fewer_cells_is_set_aside_and_its_pain_still_pauses(
    line: str, reason: str
) -> None:
    compiled = progressor.Engine().compile(progressor.parse_program(SEED_TEXT))
    rows = [*_csv_week(), line]
    log = read_log(rows, "hank.csv", "csv")
    [aside] = log.set_aside
    assert aside.line == len(rows) and aside.reason.startswith(reason)
    assert "a comma in a note must be quoted" in aside.reason
    assert aside.reason.endswith("kept for the safety rules")
    assert len(log.records) == 10 and isinstance(log.records[-1], progressor.PainReport)
    assert log.records[-1].pain == 9
    enrollment = progressor.Enrollment(patient="hank", program="low-back-pain", start=START)
    [result] = compiled.replay(enrollment, log.records)
    assert result.prescription.status == "paused"
    assert [a.rule for a in result.alerts] == ["pain-flare"]


def test_a_well_formed_csv_week_still_progresses() -> None:
    # The same week without the broken row: every row has its cells, nothing is set aside.
    compiled = progressor.Engine().compile(progressor.parse_program(SEED_TEXT))
    log = read_log(_csv_week(), "hank.csv", "csv")
    assert log.set_aside == () and len(log.records) == 9
    enrollment = progressor.Enrollment(patient="hank", program="low-back-pain", start=START)
    [result] = compiled.replay(enrollment, log.records)
    assert {d.action for d in result.decisions} == {"progress"}


@pytest.mark.parametrize(
    "line",
    [
        '{"date":"2026-01-10","exercise":"bridge","pain_before":2,"pain_during":9,}',
        '{"date": "2026-01-10", "exercise": "bridge", "pain_during": "9/10" "note": "x"}',
        '{"date":"2026-01-10","pain":9',
    ],
)
def test_a_line_of_broken_json_is_set_aside_and_its_pain_still_pauses(line: str) -> None:
    compiled = progressor.Engine().compile(progressor.parse_program(SEED_TEXT))
    rows = [*map(json.dumps, full_week(pain=2)), line]
    log = read_log(rows, "anna.jsonl", "jsonl")
    [aside] = log.set_aside
    assert aside.reason.startswith("not valid JSON") and "kept for the safety rules" in aside.reason
    enrollment = progressor.Enrollment(patient="anna", program="low-back-pain", start=START)
    [result] = compiled.replay(enrollment, log.records)
    assert result.prescription.status == "paused"
    assert [a.rule for a in result.alerts] == ["pain-flare"]


def test_broken_json_with_nothing_safety_relevant_keeps_nothing() -> None:
    log = read_log(['{"date":"2026-01-10","exercise":"bridge","reps":[5],}'], "a.jsonl", "jsonl")
    assert log.records == () and not log.set_aside[0].reason.endswith("kept for the safety rules")


# -- records dated after their import ------------------------------------------------------------

TODAY = dt.date(2026, 12, 5)


def _store_with(tmp_path: Path, patient: str, start: dt.date) -> Store:
    store = Store.init(tmp_path / "clinic.db")
    program = progressor.parse_program(SEED_TEXT)
    store.add_program(program, SEED_TEXT)
    store.enroll(progressor.Enrollment(patient=patient, program=program.id, start=start), program)
    return store


def test_a_record_dated_after_its_import_is_set_aside_and_its_pain_seen_at_once(
    tmp_path: Path,
) -> None:
    start = TODAY - dt.timedelta(days=2)  # week 1 is under way
    future = {"patient": "pat", "date": "2027-11-25", "exercise": "bridge", "reps": [5]}
    future |= {"hold_s": 5, "pain_before": 2, "pain_during": 9}
    tomorrow = {"patient": "pat", "date": str(TODAY + dt.timedelta(days=1)), "pain": 3}
    lines = [json.dumps(future), json.dumps(tomorrow)]
    with _store_with(tmp_path, "pat", start) as store:
        first = store.import_records(lines, source="k.jsonl", today=TODAY)
        [aside] = first.quarantined
        assert aside.line == 1 and aside.reason.startswith("dated 2027-11-25, after the day it")
        assert aside.reason.endswith("kept for the safety rules")
        assert (first.added, first.duplicates) == (2, 0)  # tomorrow's: a day's grace
        # The same file again, a week later: nothing is added, the quarantine does not grow.
        again = store.import_records(lines, source="k.jsonl", today=TODAY + dt.timedelta(7))
        assert (again.added, again.duplicates) == (0, 2)
        assert len(store.quarantine()) == 1
    summary = recompute(tmp_path / "clinic.db", as_of=TODAY)
    assert summary.alerts == 1
    with Store.open(tmp_path / "clinic.db", readonly=True) as store:
        [alert] = store.alerts("pat")
    assert (alert.rule, alert.week) == ("pain-flare", 1)
    assert alert.message.startswith("pain 9/10 reached the pause threshold")


def test_a_row_whose_extra_cells_a_note_explains_is_read_exactly() -> None:
    # The patient after the note: read from the left only, the note's second half would be
    # the patient and the pain of 9 would go to nobody. The note explains the extra cell, so
    # every other cell is in its place: the pain is 9, the patient ann, and no other column's
    # number (the rpe of 8) is taken for a pain.
    header = "date,exercise,reps,hold_s,pain_before,pain_during,rpe,flags,note,patient"
    rows = [header, "2026-11-25,bridge,5,5,2,9,8,,had to stop, sharp,ann"]
    [kept] = read_log(rows, "ann.csv", "csv").records
    assert isinstance(kept, progressor.PainReport)
    assert (kept.patient, kept.pain, kept.flags) == ("ann", 9, ())
    calm = [header, "2026-11-25,bridge,5,5,2,2,8,,tired, ok,ben"]
    [kept] = read_log(calm, "ben.csv", "csv").records
    assert isinstance(kept, progressor.PainReport) and (kept.patient, kept.pain) == ("ben", 2)


def test_flags_in_a_row_read_cautiously_are_split_as_the_reader_splits_them() -> None:
    header = "patient,date,exercise,reps,hold_s,pain_before,pain_during,flags,note"
    row = "dan,2026-11-25,bridge,5,5,2,2,adverse-event numbness,sore, stopped"
    [kept] = read_log([header, row], "dan.csv", "csv").records
    assert isinstance(kept, progressor.PainReport)
    assert set(kept.flags) >= {"adverse-event", "numbness"}


@pytest.mark.parametrize(
    ("line", "pain", "flags"),
    [
        # A pair inside an object is found (the object is not taken for the value).
        ('{"date":"2026-01-10","scores":{"pain_during":9,"pain_before":2},}', 9, ()),
        # A string holding "]" does not end its array.
        (
            '{"date":"2026-01-10","flags":["x]y","adverse-event"],"pain":1,}',
            1,
            ("x]y", "adverse-event"),
        ),
    ],
)
def test_broken_json_is_read_pair_by_pair(line: str, pain: float, flags: tuple[str, ...]) -> None:
    [kept] = read_log([line], "a.jsonl", "jsonl").records
    assert isinstance(kept, progressor.PainReport) and (kept.pain, kept.flags) == (pain, flags)


def test_a_line_nested_too_deeply_is_set_aside_not_a_crash() -> None:
    # (60,000 brackets: within the longest line read, so the nesting is what is refused)
    log = read_log(['{"a":' + "[" * 60_000, '{"date":"2026-01-10","pain":3}'], "a.jsonl", "jsonl")
    assert log.set_aside[0].reason.startswith("not valid JSON: nested too deeply")
    assert len(log.records) == 1


def test_a_record_from_the_future_is_kept_once_whatever_file_line_or_day(tmp_path: Path) -> None:
    future = {"patient": "pat", "date": "2027-11-25", "pain": 9}
    with _store_with(tmp_path, "pat", TODAY - dt.timedelta(days=2)) as store:
        first = store.import_records([json.dumps(future)], source="k.jsonl", today=TODAY)
        assert first.added == 1
        # A daily cumulative export: another name, the line moved, another day.
        moved = ['{"patient": "pat", "date": "2026-12-04", "pain": 1}', json.dumps(future)]
        later = TODAY + dt.timedelta(days=1)
        again = store.import_records(moved, source="export-1206.jsonl", today=later)
        assert (again.added, again.duplicates) == (1, 1)  # the new report only
        [inputs] = store.inputs(["pat"])
        assert sorted(json.loads(r)["pain"] for r in inputs.pain_reports) == [1, 9]


@pytest.mark.parametrize(
    "record",
    [
        {"date": "2026-13-45", "pain": 9},  # no such day
        {"date": "08/12/2026", "exercise": "bridge", "pain_before": 2, "pain_during": 9},
        {"exercise": "bridge", "pain_during": 9},  # no day at all
        {"date": "2026-01-32", "exercise": "bridge", "flags": ["saddle-numbness"]},
    ],
)
def test_a_record_whose_day_cannot_be_read_keeps_its_pain_and_flags_as_of_today(
    record: dict[str, object],
) -> None:
    line = json.dumps({"patient": "pat", **record})
    log = read_log([line], "k.jsonl", "jsonl", today=TODAY)
    [kept] = log.records
    assert isinstance(kept, progressor.PainReport) and kept.date == TODAY
    assert kept.pain == (9 if "flags" not in record else 0)
    assert kept.flags == tuple(record.get("flags", ()))  # type: ignore[arg-type]
    assert "whose day was unreadable" in kept.note
    [aside] = log.set_aside
    assert aside.line == 1 and aside.reason.endswith("kept for the safety rules")
    # Without a day to see it on (no `today`), nothing is kept, as the docstring says.
    assert read_log([line], "k.jsonl", "jsonl").records == ()


def test_a_pain_with_a_day_that_does_not_exist_reaches_the_rules_through_the_store(
    tmp_path: Path,
) -> None:
    typo = {"patient": "pat", "date": "2026-13-45", "pain": 9}
    with _store_with(tmp_path, "pat", TODAY - dt.timedelta(days=2)) as store:
        report = store.import_records([json.dumps(typo)], source="k.jsonl", today=TODAY)
        assert report.added == 1 and len(report.quarantined) == 1
    summary = recompute(tmp_path / "clinic.db", as_of=TODAY)
    assert summary.alerts == 1
    with Store.open(tmp_path / "clinic.db", readonly=True) as store:
        [alert] = store.alerts("pat")
    assert alert.rule == "pain-flare" and alert.message.startswith("pain 9/10")


def test_a_record_dated_the_last_day_there_is_is_not_taken_for_an_undated_one() -> None:
    # (Found by make fuzz: UNDATED is a day a record may carry too.)
    line = '{"patient": "pat", "date": "9999-12-31", "pain_during": 9, "reps": "x"}'
    [kept] = read_log([line], "k.jsonl", "jsonl").records
    assert isinstance(kept, progressor.PainReport) and (kept.date, kept.pain) == (UNDATED, 9)
    [kept] = read_log([line], "k.jsonl", "jsonl", today=TODAY).records
    assert kept.date == TODAY and "dated later" in kept.note  # type: ignore[union-attr]


def test_an_unterminated_string_is_named_with_its_column_once() -> None:
    log = read_log(['{"date": "2026-01-05", "note": "stiff'], "a.jsonl", "jsonl")
    assert log.set_aside[0].reason == "not valid JSON: Unterminated string starting at column 32"
