"""The command line, run through the installed `progressor` entry point."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROGRAMS, START, full_week

SEED = str(PROGRAMS / "low-back-pain.toml")
WriteLog = Callable[[Iterable[Mapping[str, Any] | str], str], Path]


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("progressor")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "progressor"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_check_accepts_the_shipped_programs() -> None:
    shipped = sorted(str(p) for p in PROGRAMS.glob("*.toml"))
    done = run("check", *shipped)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": ok") == len(shipped) >= 4


def test_check_reports_located_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        Path(SEED).read_text(encoding="utf-8").replace('"double"', '"dubble"', 1), encoding="utf-8"
    )
    done = run("check", str(bad))
    assert done.returncode == 1
    assert "exercises[0].progression.strategy: unknown strategy 'dubble'" in done.stderr
    assert "(did you mean 'double'?)" in done.stderr
    assert f"{bad}:" in done.stderr


def test_schema_is_json_schema_of_programs() -> None:
    done = run("schema")
    schema = json.loads(done.stdout)
    assert schema["title"] == "Program"
    assert "exercises" in schema["required"] and schema["additionalProperties"] is False


def test_next_writes_toml_and_json(write_log: WriteLog, tmp_path: Path) -> None:
    log = write_log(full_week(), "anna.jsonl")
    done = run("next", SEED, "--log", str(log))
    assert done.returncode == 0, done.stderr
    doc = tomllib.loads(done.stdout)
    assert doc["week"] == 2 and doc["exercises"]["bridge"]["dose"]["reps"] == 6
    assert doc["exercises"]["bridge"]["action"] == "progress"
    out = tmp_path / "next.json"
    done = run("next", SEED, "--log", str(log), "--format", "json", "--out", str(out))
    assert done.returncode == 0 and done.stdout == ""
    assert json.loads(out.read_text(encoding="utf-8"))["exercises"]["bridge"]["dose"] == {
        "sets": 1,
        "reps": 6,
        "hold_s": 5,
    }


def test_the_default_format_is_the_first_exporter_registered(write_log: WriteLog) -> None:
    log = str(write_log(full_week(), "anna.jsonl"))
    default = run("next", SEED, "--log", log, "--as-of", "2026-01-12")
    assert default.returncode == 0 and tomllib.loads(default.stdout)["week"] == 2
    # The core names no built-in: without the toml exporter, the next one registered.
    without = run("next", SEED, "--log", log, "--as-of", "2026-01-12", "--block", "toml")
    assert without.returncode == 0 and json.loads(without.stdout)["week"] == 2
    unknown = run("next", SEED, "--log", log, "--format", "tmol")
    assert unknown.returncode == 1 and "(did you mean 'toml'?)" in unknown.stderr


def test_next_computes_only_weeks_that_have_ended(write_log: WriteLog) -> None:
    # Week 1 in full, and the first day of week 2, which is still under way on the 13th.
    week_2_started = START + dt.timedelta(days=7)
    rows = [*full_week(), *full_week(week_2_started, days=(0,), pain=8)]
    log = str(write_log(rows, "anna.jsonl"))
    as_of = (START + dt.timedelta(days=8)).isoformat()
    done = run("next", SEED, "--log", log, "--format", "json", "--as-of", as_of)
    assert done.returncode == 0, done.stderr
    assert f"week 2 has not ended by {as_of}: 3 records wait for it" in done.stderr
    # ... but the flare already logged in it is not kept from the clinician until then.
    assert "warning: week 2 is under way, but what is logged so far raises an alert: pain 8/10" in (
        done.stderr
    )
    doc = json.loads(done.stdout)
    # Week 1 alone decides: the pain of 8 on day 1 of week 2 belongs to a week not yet judged.
    alone = run("next", SEED, "--log", str(write_log(full_week(), "w1.jsonl")), "--format", "json")
    # ... but the document lists the alert it already raised, as `show` does from the store
    # (the patient's handout must not say "go on" after it).
    [early] = doc.pop("alerts")
    assert (early["week"], early["rule"]) == (2, "pain-flare")
    expected = json.loads(alone.stdout)
    assert expected.pop("alerts") == []
    assert doc == expected and doc["week"] == 2 and doc["status"] == "active"
    # Sent on the alert channels too, not only printed.
    sent = run("next", SEED, "--log", log, "--as-of", as_of, "--alerts", "stderr")
    assert sent.returncode == 0, sent.stderr
    [alert] = [json.loads(x)["alert"] for x in sent.stderr.splitlines() if x.startswith("{")]
    assert (alert["week"], alert["rule"]) == (2, "pain-flare")
    # Once week 2 has ended, it is judged: the pain of 8 pauses the program.
    after = (START + dt.timedelta(days=14)).isoformat()
    done = run("next", SEED, "--log", log, "--format", "json", "--as-of", after)
    assert done.returncode == 0 and "has not ended" not in done.stderr
    assert json.loads(done.stdout)["week"] == 3
    assert json.loads(done.stdout)["status"] == "paused"


def test_next_as_of_a_day_judges_every_week_ended_by_then_logged_or_not(
    write_log: WriteLog,
) -> None:
    # One week logged, then nothing: on the 2nd of February four weeks have ended.
    log = str(write_log(full_week(), "anna.jsonl"))
    as_of = (START + dt.timedelta(days=28)).isoformat()
    done = run("next", SEED, "--log", log, "--format", "json", "--as-of", as_of)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["week"] == 5
    assert any(f["rule"] == "adherence" for f in doc["flags"])  # a drop-out, flagged
    # Without --as-of, the log's own weeks (all ended long before today) are judged.
    plain = json.loads(run("next", SEED, "--log", log, "--format", "json").stdout)
    assert plain["week"] == 2


def test_a_quiet_week_under_way_raises_no_warning(write_log: WriteLog) -> None:
    rows = [*full_week(), *full_week(START + dt.timedelta(days=7), days=(0,))]
    as_of = (START + dt.timedelta(days=8)).isoformat()
    done = run("next", SEED, "--log", str(write_log(rows, "a.jsonl")), "--as-of", as_of)
    assert done.returncode == 0 and "has not ended" in done.stderr
    assert "warning" not in done.stderr


def test_a_patient_id_written_two_ways_is_refused_not_half_dropped(write_log: WriteLog) -> None:
    rows = [{**r, "patient": "anna"} for r in full_week()]
    rows.append({"patient": "Anna ", "date": "2026-01-07", "pain": 9})  # anna's flare
    done = run("next", SEED, "--log", str(write_log(rows, "a.jsonl")), "--patient", "anna")
    assert done.returncode == 1 and done.stdout == ""
    assert "records of 'Anna ' as well as of 'anna'" in done.stderr


@pytest.mark.parametrize("patient", ["", " ", "an\tna"])
def test_a_log_whose_patient_id_cannot_be_enrolled_is_refused_cleanly(
    write_log: WriteLog, patient: str
) -> None:
    rows = [{**r, "patient": patient} for r in full_week()]
    done = run("next", SEED, "--log", str(write_log(rows, "a.jsonl")), "--as-of", "2026-01-12")
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert f"cannot compute patient {patient!r}: a patient id must" in done.stderr


def test_next_before_the_first_week_ends_says_so(write_log: WriteLog) -> None:
    log = str(write_log(full_week(), "anna.jsonl"))
    done = run("next", SEED, "--log", log, "--as-of", (START + dt.timedelta(days=5)).isoformat())
    assert done.returncode == 1 and done.stdout == ""
    assert "week 1 (2026-01-05 to 2026-01-11) has not ended by 2026-01-10" in done.stderr
    assert "warning" not in done.stderr
    flare = str(write_log(full_week(pain=9), "flare.jsonl"))
    done = run("next", SEED, "--log", flare, "--as-of", (START + dt.timedelta(days=5)).isoformat())
    assert done.returncode == 1 and "has not ended" in done.stderr
    assert "warning: week 1 is under way, but what is logged so far raises an alert" in done.stderr


def test_next_is_byte_identical_across_runs_and_record_order(write_log: WriteLog) -> None:
    rows = full_week()
    first = run("next", SEED, "--log", str(write_log(rows, "a.jsonl")), "--format", "json")
    second = run("next", SEED, "--log", str(write_log(rows[::-1], "b.jsonl")), "--format", "json")
    assert first.stdout == second.stdout and first.stdout


def test_a_log_with_no_usable_record_says_why_line_by_line(tmp_path: Path) -> None:
    log = tmp_path / "nd.csv"
    log.write_text("exercise,reps\nbridge,5\n", encoding="utf-8")
    done = run("next", SEED, "--log", str(log))
    assert done.returncode != 0
    assert "nd.csv:2: date: " in done.stderr  # the cause, before the conclusion
    assert "the log has no usable records: give --start" in done.stderr


def test_a_record_dated_next_year_is_set_aside_and_its_pain_warned_of_now(
    write_log: WriteLog,
) -> None:
    today = dt.date.today()
    start = today - dt.timedelta(days=10)  # week 1 has ended, week 2 is under way
    typo = (start + dt.timedelta(days=366)).isoformat()  # next year's date for this week's
    rows: list[Mapping[str, Any] | str] = [
        *full_week(start),
        {"date": typo, "exercise": "bridge", "reps": [5], "hold_s": 5, "pain_before": 2}
        | {"pain_during": 9},
    ]
    done = run("next", SEED, "--log", str(write_log(rows, "anna.jsonl")), "--format", "json")
    assert done.returncode == 3, done.stderr
    assert f"bridge of {typo}: dated {typo}, after the day it was read" in done.stderr
    assert "kept for the safety rules" in done.stderr
    assert "week 2 is under way, but what is logged so far raises" in done.stderr
    assert "pain 9/10 reached the pause threshold" in done.stderr


@pytest.mark.parametrize(
    "day",
    ["2027-01-08", "2026-13-45"],
    ids=["next year's date", "a day that does not exist"],
)
def test_a_pain_kept_as_of_today_raises_its_alert_though_the_log_ended_weeks_ago(
    write_log: WriteLog, day: str
) -> None:
    # The log's one week is long past (START, January 2026): without --as-of, `next` judges
    # that week only, and today lies weeks after the week under way. A flare typed with a
    # wrong date is kept as of today; its alert used to be lost there (exit 3, no alert).
    rows: list[Mapping[str, Any] | str] = [
        *full_week(),
        {"date": day, "exercise": "bridge", "reps": [5], "hold_s": 5, "pain_before": 9}
        | {"pain_during": 9},
    ]
    done = run("next", SEED, "--log", str(write_log(rows, "anna.jsonl")), "--format", "json")
    assert done.returncode == 3, done.stderr
    assert "kept for the safety rules" in done.stderr
    out = json.loads(done.stdout)
    # The log's own week judged, not every week up to today (a bad line moves no week).
    assert out["week"] == 2, out
    # Raised now, as the week under way's: the week whose prescription it must stop.
    assert [(a["rule"], a["week"]) for a in out["alerts"]] == [("pain-flare", 2)]
    assert "week 2 is under way, but what is logged so far raises" in done.stderr
    assert "pain 9/10 reached the pause threshold" in done.stderr


def test_a_log_of_one_patient_written_differently_is_refused_with_why(
    write_log: WriteLog,
) -> None:
    # 'ANNA' beside 'anna': not two patients to choose from (a flare under either must not
    # be dropped by the choice), so the log is refused with or without --patient.
    rows: list[Mapping[str, Any] | str] = [
        *({**r, "patient": "anna"} for r in full_week()),
        {"patient": "ANNA", "date": str(START + dt.timedelta(days=2)), "pain": 9},
    ]
    log = str(write_log(rows, "anna.jsonl"))
    for chosen in ([], ["--patient", "anna"], ["--patient", "ANNA"]):
        done = run("next", SEED, "--log", log, *chosen)
        assert done.returncode == 1, done.stderr
        assert "the same patient written differently? Correct the log." in done.stderr
        assert "choose one with --patient" not in done.stderr
    # Two patients are two: choose one.
    other = [*rows[:-1], {"patient": "ben", "date": str(START), "pain": 2}]
    done = run("next", SEED, "--log", str(write_log(other, "two.jsonl")))
    assert done.returncode == 1 and "choose one with --patient" in done.stderr


def test_a_log_of_records_all_dated_later_says_why_and_asks_for_the_start(
    write_log: WriteLog,
) -> None:
    later = (dt.date.today() + dt.timedelta(days=365)).isoformat()
    rows: list[Mapping[str, Any] | str] = [
        {"date": later, "exercise": "bridge", "reps": [5], "hold_s": 5, "pain_before": 2}
        | {"pain_during": 9}
    ]
    log = str(write_log(rows, "anna.jsonl"))
    done = run("next", SEED, "--log", log, "--alerts", "stderr")
    assert done.returncode == 1
    assert f"bridge of {later}: dated {later}, after the day it was read" in done.stderr
    assert "the log has no usable records: give --start" in done.stderr
    # Its pain of 9, kept as of today, is warned of and sent all the same.
    assert "week 1 is under way, but what is logged so far raises" in done.stderr
    assert '"rule": "pain-flare"' in done.stderr


def test_bad_records_are_reported_and_the_rest_used(write_log: WriteLog) -> None:
    rows: list[Mapping[str, Any] | str] = [
        *full_week(),
        "{oops",
        {"date": "2026-01-06", "exercise": "brdge"},
    ]
    done = run("next", SEED, "--log", str(write_log(rows, "anna.jsonl")), "--format", "json")
    assert done.returncode == 3
    assert "anna.jsonl:10: not valid JSON" in done.stderr
    assert "unknown exercise 'brdge'" in done.stderr
    assert json.loads(done.stdout)["exercises"]["bridge"]["action"] == "progress"


def test_csv_logs_work_too(tmp_path: Path) -> None:
    lines = ["date,exercise,reps,hold_s,pain_before,pain_during"]
    for row in full_week():
        lines.append(f"{row['date']},{row['exercise']},5,5,2,2")
    log = tmp_path / "anna.csv"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = run("next", SEED, "--log", str(log), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["exercises"]["pelvic-tilt"]["dose"]["reps"] == 6


def test_simulate_prints_each_week(write_log: WriteLog) -> None:
    rows = full_week() + full_week(START.replace(day=12), reps=6)
    done = run("simulate", SEED, "--log", str(write_log(rows, "anna.jsonl")))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:5] == ["week", "exercise", "dose", "action", "next"]
    assert sum(1 for line in lines if line.startswith("2 ")) == 3


def test_explain_shows_every_rule_and_the_winner(write_log: WriteLog) -> None:
    rows = full_week()
    rows[2]["pain_after"] = 5
    done = run("explain", SEED, "--log", str(write_log(rows, "anna.jsonl")), "--week", "1")
    assert done.returncode == 0, done.stderr
    assert "bridge: REGRESS by new-pain" in done.stdout
    assert "* new-pain [regress]" in done.stdout and "- double [progress]" in done.stdout
    assert "saw sessions=1, largest_rise=3.0" in done.stdout
    missing = run("explain", SEED, "--log", str(write_log(rows, "anna.jsonl")), "--week", "9")
    assert missing.returncode == 1 and "no week 9" in missing.stderr


def test_plugins_lists_the_builtins() -> None:
    assert json.loads(run("plugins", "--json", env={"PROGRESSOR_PLUGINS": ""}).stdout) == []
    rows = json.loads(run("plugins", "--all", "--json").stdout)
    names = {row["name"]: row["registered"] for row in rows if row["builtin"]}
    assert names["progressor.builtins.safety"]["safety rules"] == [
        "adherence",
        "missing-data",
        "new-pain",
        "pain-flare",
        "pain-monitoring",
    ]
    assert "two-for-two" in names["progressor.builtins.progressions"]["strategies"]


def test_an_allow_list_naming_a_plugin_not_installed_warns_with_the_installed_ones(
    write_log: WriteLog,
) -> None:
    done = run("plugins", env={"PROGRESSOR_PLUGINS": "red-flag,nonexistent"})
    assert done.returncode == 0
    assert done.stderr == (
        "warning: PROGRESSOR_PLUGINS names plugins that are not installed: red-flag, "
        "nonexistent (did you mean 'red-flags'?); installed plugins: red-flags, "
        "repeated-movements\n"
    )
    log = str(write_log(full_week(), "anna.jsonl"))
    computed = run("next", SEED, "--log", log, env={"PROGRESSOR_PLUGINS": "nonexistent"})
    assert computed.stderr.count("not installed: nonexistent") == 1
    for fine in ("red-flags", ""):
        assert "warning" not in run("plugins", env={"PROGRESSOR_PLUGINS": fine}).stderr


@pytest.mark.parametrize(
    "args", [["next", SEED, "--log", "missing.jsonl"], ["next", "missing.toml", "--log", "x.jsonl"]]
)
def test_missing_files_fail_cleanly(args: list[str], tmp_path: Path) -> None:
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error:") and "Traceback" not in done.stderr


def test_demo_prints_the_clinic_table() -> None:
    done = run("demo", "--patients", "24", "--weeks", "4")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "patient",
        "profile",
        "status",
        "pelvic-tilt",
        "knee-to-chest",
        "bridge",
        "flags",
    ]
    assert sum(1 for line in lines if line.startswith("p00")) == 24
    assert " paused " in done.stdout and "drop-out" in done.stdout
    assert "24 patients on low-back-pain" in done.stdout


def test_a_start_after_every_record_reports_them(write_log: WriteLog) -> None:
    log = str(write_log(full_week(), "anna.jsonl"))
    done = run("next", SEED, "--log", log, "--start", "2026-02-02", "--format", "json")
    assert done.returncode == 3 and "dated outside week 1" in done.stderr


def test_a_misspelt_patient_is_suggested(write_log: WriteLog) -> None:
    rows = [{**r, "patient": "anna"} for r in full_week()]
    rows += [{**r, "patient": "ben"} for r in full_week()]
    done = run("next", SEED, "--log", str(write_log(rows, "clinic.jsonl")), "--patient", "ana")
    assert done.returncode == 1 and "did you mean 'anna'" in done.stderr


def test_a_start_at_the_end_of_the_calendar_is_refused_without_a_traceback(
    write_log: WriteLog,
) -> None:
    log = write_log([{"date": "2026-01-05", "exercise": "bridge", "reps": [5]}], "log.jsonl")
    done = run("next", SEED, "--log", str(log), "--start", "9999-12-31", "--patient", "a")
    assert done.returncode == 2
    assert "'--start': 9999-12-31 is after 9000-12-31: check the year" in done.stderr
    assert "Traceback" not in done.stderr
