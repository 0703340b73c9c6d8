"""The clinic commands through the installed entry point: store, import, actions, batch."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import PROGRAMS, START, full_week
from tests.test_cli import run

SEED = str(PROGRAMS / "low-back-pain.toml")


def _env(store: Path) -> dict[str, str]:
    return {"PROGRESSOR_STORE": str(store), "USER": "dr-lee"}


def _log(tmp_path: Path, name: str, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_a_clinic_week_from_init_to_review(tmp_path: Path) -> None:
    store = tmp_path / "clinic.db"
    env = _env(store)
    assert run("init", env=env).returncode == 0
    for patient in ("anna", "ben"):
        done = run("enroll", patient, "--program", SEED, "--start", START.isoformat(), env=env)
        assert done.returncode == 0, done.stderr
    gentle = run(
        "enroll",
        "cleo",
        "--program",
        SEED,
        "--start",
        START.isoformat(),
        "--dose",
        "bridge:reps=3,hold_s=3",
        env=env,
    )
    assert gentle.returncode == 0, gentle.stderr

    rows = [{**r, "patient": p} for p in ("anna", "ben", "cleo") for r in full_week()]
    rows.append({"patient": "ben", "date": START.isoformat(), "pain": 8, "context": "flare"})
    log = _log(tmp_path, "week1.jsonl", rows)
    first = run("import", str(log), env=env)
    assert first.returncode == 0, first.stderr
    assert f"{log}: {len(rows)} added, 0 already stored, 0 quarantined" in first.stdout
    again = run("import", str(log), env=env)
    assert f"0 added, {len(rows)} already stored" in again.stdout

    bad = _log(tmp_path, "bad.jsonl", [{"patient": "zoe", "date": "2026-01-06", "pain": 3}])
    quarantined = run("import", str(bad), env=env)
    assert quarantined.returncode == 3 and "bad.jsonl:1" in quarantined.stderr

    computed = run("recompute", "--week", "2026-01-12", env=env)
    assert computed.returncode == 0, computed.stderr
    assert "3 patients computed" in computed.stdout and "pause 3" in computed.stdout
    idle = run("recompute", "--week", "2026-01-12", env=env)
    assert "0 patients computed" in idle.stdout and "3 up to date" in idle.stdout

    shown = run("show", "ben", "--format", "json", env=env)
    assert shown.returncode == 0, shown.stderr
    ben = json.loads(shown.stdout)
    assert (ben["week"], ben["status"], [a["rule"] for a in ben["alerts"]]) == (
        2,
        "paused",
        ["pain-flare"],
    )
    typo = run("override", "anna", "brige", "reps=4", "--note", "x", env=env)
    assert typo.returncode == 1 and "did you mean 'bridge'" in typo.stderr
    bad_field = run("override", "anna", "bridge", "rep=4", "--note", "x", env=env)
    assert bad_field.returncode == 2 and "did you mean 'reps'" in bad_field.stderr
    future = run("recompute", "--week", "2099-01-01", env=env)
    assert future.returncode == 1 and "in the future" in future.stderr
    queue = run("review", env=env).stdout
    assert "ben  week 2  paused" in queue and "anna" not in queue
    status = run("status", env=env).stdout
    assert "3 patients" in status and "1 quarantined" in status and "1 paused" in status

    resumed = run("resume", "ben", "--note", "phoned: flare settled", env=env)  # newest week
    assert resumed.returncode == 0, resumed.stderr
    assert "ben: the whole program resumed from week 2 by dr-lee" in resumed.stdout
    changed = run(
        "override",
        "anna",
        "bridge",
        "reps=5",
        "hold_s=4",
        "--week",
        "2",
        "--note",
        "sore after gardening",
        env=env,
    )
    assert changed.returncode == 0, changed.stderr
    refused = run("override", "anna", "bridge", "reps=40", "--week", "2", "--note", "x", env=env)
    assert refused.returncode == 1 and "ceiling" in refused.stderr
    applied = run("recompute", "--week", "2026-01-12", env=env)
    assert "2 patients computed" in applied.stdout, applied.stdout

    with sqlite3.connect(store) as db:
        [(who, note)] = db.execute(
            "SELECT who, note FROM clinician_actions WHERE kind = 'resume'"
        ).fetchall()
        assert (who, note) == ("dr-lee", "phoned: flare settled")
        week2 = json.loads(
            db.execute(
                "SELECT prescription FROM prescriptions WHERE patient = 'ben' AND week = 2"
            ).fetchone()[0]
        )
        anna = json.loads(
            db.execute(
                "SELECT prescription FROM prescriptions WHERE patient = 'anna' AND week = 2"
            ).fetchone()[0]
        )
    assert week2["status"] == "active"
    # show gives the week's decisions as the rules made them (pause) and says why the
    # prescription beside them is active: the clinician's resume since.
    after = run("show", "ben", "--format", "json", env=env)
    assert json.loads(after.stdout)["status"] == "active"
    assert "note: week 2's prescription: resume by dr-lee on " in after.stderr
    assert "(phoned: flare settled), after the decisions shown" in after.stderr
    assert anna["exercises"]["bridge"]["dose"] == {
        **anna["exercises"]["bridge"]["dose"],
        "reps": 5,
        "hold_s": 4,
    }
    assert "ben" not in run("review", env=env).stdout


def test_enroll_refuses_a_patient_id_that_would_never_be_computed(tmp_path: Path) -> None:
    env = _env(tmp_path / "clinic.db")
    assert run("init", env=env).returncode == 0
    for patient, problem in [
        ("", "must not be empty or only spaces"),
        ("  ", "must not be empty or only spaces"),
        ("anna ", "must not start or end with a space"),
        ("an\tna", "must hold printable characters only, not '\\t'"),
        ("an\nna", "must hold printable characters only, not '\\n'"),
    ]:
        done = run("enroll", patient, "--program", SEED, "--start", "2026-01-05", env=env)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"error: cannot enroll {patient!r}: a patient id {problem}" in done.stderr
    assert "0 patients" in run("status", env=env).stdout


def test_enroll_warns_of_an_id_enrolled_already_in_other_case(tmp_path: Path) -> None:
    """Two ids alike may be two patients (enrolled, exit 0), but the clinic is told: a record
    of the id written a third way now counts for neither, since nothing is guessed."""
    env = _env(tmp_path / "clinic.db")
    assert run("init", env=env).returncode == 0
    first = run("enroll", "anna", "--program", SEED, "--start", "2026-01-05", env=env)
    assert first.returncode == 0 and "warning" not in first.stderr
    done = run("enroll", "ANNA", "--program", SEED, "--start", "2026-01-05", env=env)
    assert done.returncode == 0, done.stderr
    assert "ANNA: enrolled on low-back-pain" in done.stdout
    assert "warning: 'anna' enrolled too: the same patient written differently?" in done.stderr
    assert "2 patients" in run("status", env=env).stdout


def test_synth_fills_a_store_that_recompute_can_use(tmp_path: Path) -> None:
    env = _env(tmp_path / "synth.db")
    made = run("synth", "--patients", "60", "--weeks", "2", "--start", "2026-01-05", env=env)
    assert made.returncode == 0, made.stderr
    done = run("recompute", "--week", "2026-01-19", "--workers", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert "60 patients computed" in done.stdout
    again = run("synth", "--patients", "5", env=env)  # never into a store holding patients
    assert again.returncode == 1 and "already holds patients" in again.stderr


def test_review_filters_and_pages_the_queue_as_the_store_does(tmp_path: Path) -> None:
    env = _env(tmp_path / "queue.db")
    made = run("synth", "--patients", "40", "--weeks", "3", "--start", "2026-01-05", env=env)
    assert made.returncode == 0, made.stderr
    assert run("recompute", "--week", "2026-01-26", "--workers", "1", env=env).returncode == 0
    whole = json.loads(run("review", "--json", env=env).stdout)
    assert whole["total"] == len(whole["items"]) >= 4 and whole["next_offset"] is None
    paused = json.loads(run("review", "--status", "paused", "--json", env=env).stdout)
    assert paused["items"] and all(i["paused"] for i in paused["items"])
    first = json.loads(run("review", "--limit", "2", "--json", env=env).stdout)
    assert (first["items"], first["next_offset"]) == (whole["items"][:2], 2)
    text = run("review", "--limit", "2", "--offset", "2", env=env).stdout
    assert f"(3-4 of {whole['total']}; next: --offset 4)" in text
    assert f"{whole['items'][2]['patient']}  week" in text
    program = whole["items"][0]["program"]
    on_it = json.loads(run("review", "--program", program, "--json", env=env).stdout)
    assert on_it["items"] == [i for i in whole["items"] if i["program"] == program]
    flare = json.loads(run("review", "--flag", "pain-flare", "--json", env=env).stdout)
    assert flare["items"] == [i for i in whole["items"] if "pain-flare" in i["flags"]]
    bad = run("review", "--status", "pased", env=env)
    assert bad.returncode == 2 and "'pased' is not one of 'paused', 'flagged'" in bad.stderr
    none = run("review", "--flag", "no-such-rule", env=env)
    assert none.returncode == 0 and "nobody in the review queue matches" in none.stdout


def test_synth_by_default_ends_its_weeks_today(tmp_path: Path) -> None:
    # A recompute as the README shows it (as of today) judges the synthetic weeks only,
    # not months of empty weeks since a fixed day.
    env = _env(tmp_path / "today.db")
    made = run("synth", "--patients", "6", "--weeks", "2", env=env)
    assert made.returncode == 0, made.stderr
    with sqlite3.connect(tmp_path / "today.db") as db:
        starts = {row[0] for row in db.execute("SELECT start FROM patients")}
    assert starts == {(dt.date.today() - dt.timedelta(days=14)).isoformat()}
    done = run("recompute", "--workers", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert "6 patients computed" in done.stdout


def test_synth_with_a_recent_start_quarantines_none_of_its_own_records(tmp_path: Path) -> None:
    # Its weeks reach past the machine's date: the synthetic clinic's today is their end.
    env = _env(tmp_path / "recent.db")
    start = (dt.date.today() - dt.timedelta(days=10)).isoformat()
    made = run("synth", "--patients", "20", "--weeks", "4", "--start", start, env=env)
    assert made.returncode == 0, made.stderr
    assert "0 quarantined" in run("status", env=env).stdout


def test_commands_on_a_missing_store_say_how_to_create_it(tmp_path: Path) -> None:
    done = run("status", env=_env(tmp_path / "none.db"))
    assert done.returncode == 1 and "progressor init" in done.stderr
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100, encoding="utf-8")
    for command in (
        ["init", "--store", str(text)],
        ["status", "--store", str(text)],
        ["init", "--store", str(tmp_path / "no" / "such" / "dir" / "x.db")],
    ):
        failed = run(*command)
        assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr


def test_recompute_over_a_dataset(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    assert (
        run(
            "synth",
            "--patients",
            "40",
            "--weeks",
            "2",
            "--start",
            "2026-01-05",
            "--out",
            str(data),
            "--partitions",
            "4",
        ).returncode
        == 0
    )
    done = run("recompute", "--dataset", str(data), "--out", str(out), "--week", "2026-01-19")
    assert done.returncode == 0, done.stderr
    assert "40 patients in 4 partitions (0 already done)" in done.stdout
    assert sorted(os.listdir(out / "prescriptions")) == [f"part-0000{i}.jsonl" for i in range(4)]
    # A record filed in the wrong partition cannot reach its patient: set aside at its line
    # (and named among the partition's problems), exit 3; its pain of 9 is not lost: an
    # urgent alert names the id and what the records hold.
    enrolled_in_1 = json.loads(
        (data / "enrollments" / "part-00001.jsonl").read_text().split("\n")[0]
    )
    stray = {"kind": "pain", "patient": enrolled_in_1["patient"], "pain": 9, "date": "2026-01-06"}
    records = data / "records" / "part-00000.jsonl"
    lines_before = len(records.read_text().splitlines())
    with records.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(stray) + "\n")
    again = run("recompute", "--dataset", str(data), "--out", str(out), "--week", "2026-01-19")
    assert again.returncode == 3, again.stderr
    assert "set aside 2" in again.stdout and f"{out}/set_aside/" in again.stderr
    problem = (out / "set_aside" / "part-00000.jsonl").read_text()
    assert "has no enrollment in this partition" in problem
    aside = [json.loads(line) for line in problem.splitlines()]
    (line,) = [a for a in aside if "line" in a]
    assert line["patient"] == stray["patient"] and line["line"] == lines_before + 1
    assert "no enrollment of" in line["reason"] and line["record"] == json.dumps(stray)
    (alert,) = [
        json.loads(a)
        for a in (out / "alerts" / "part-00000.jsonl").read_text().splitlines()
        if json.loads(a)["patient"] == stray["patient"]
    ]
    assert alert["urgent"] and alert["rule"] == "enrollment"
    assert "pain up to 9/10" in alert["message"]


def test_an_output_file_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    # A folder where a partition's `_done` marker goes (a copy gone wrong): exit 1 with the
    # partition and the file, not a traceback; once it is removed, the run completes.
    data, out = tmp_path / "data", tmp_path / "out"
    args = ["--patients", "20", "--weeks", "2", "--start", "2026-01-05", "--partitions", "2"]
    assert run("synth", *args, "--out", str(data)).returncode == 0
    (out / "_done" / "part-00001.json").mkdir(parents=True)
    week = ["--week", "2026-01-19"]
    done = run("recompute", "--dataset", str(data), "--out", str(out), *week)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"partition 1: {out}/_done/part-00001.json: Is a directory" in done.stderr
    (out / "_done" / "part-00001.json").rmdir()
    again = run("recompute", "--dataset", str(data), "--out", str(out), *week)
    assert again.returncode == 0, again.stderr


def test_a_dataset_recompute_loads_the_installed_plugins_as_every_command_does(
    tmp_path: Path,
) -> None:
    # The lumbar extension program needs the repeated-movements plugin, installed (as the
    # example plugins are in the test environment) but not named on the command line.
    data, out = tmp_path / "data", tmp_path / "out"
    program = str(PROGRAMS / "lumbar-extension.toml")
    made = run(
        "synth",
        "--patients",
        "12",
        "--weeks",
        "2",
        "--start",
        "2026-01-05",
        "--program",
        program,
        "--out",
        str(data),
    )
    assert made.returncode == 0, made.stderr
    done = run("recompute", "--dataset", str(data), "--out", str(out), "--week", "2026-01-19")
    assert done.returncode == 0, done.stderr
    assert "12 patients" in done.stdout
    rows = (out / "decisions").glob("*.jsonl")
    decisions = [json.loads(line) for r in rows for line in r.read_text().splitlines()]
    assert any(d["exercise"] == "press-up" for d in decisions)
    # Named as on the store path and in block lists: by the entry point, not the module.
    plugins = {d["plugin"] for d in decisions}
    assert "repeated-movements" in plugins and "progressor_repeated_movements" not in plugins

    def recompute_with(out: str, **variables: str) -> subprocess.CompletedProcess[str]:
        """The same recompute into tmp_path / out, with these environment variables."""
        args = ("--dataset", str(data), "--out", str(tmp_path / out), "--week", "2026-01-19")
        return run("recompute", *args, env={**os.environ, **variables})

    blocked = recompute_with("o3", PROGRESSOR_BLOCK="repeated-movements")
    assert blocked.returncode != 0
    assert "exercise type 'repeated-movement' is blocked" in blocked.stderr
    # A block list that names the plugin by its module still works.
    by_module = recompute_with("o4", PROGRESSOR_BLOCK="progressor_repeated_movements")
    assert by_module.returncode != 0
    assert "exercise type 'repeated-movement' is blocked" in by_module.stderr
    # Not allowed by PROGRESSOR_PLUGINS: not loaded, and the program says what it misses.
    refused = recompute_with("o2", PROGRESSOR_PLUGINS="red-flags")
    assert refused.returncode != 0 and "unknown exercise type 'repeated-movement'" in refused.stderr


def test_recompute_sends_each_new_alert_once_and_retries_those_that_failed(
    tmp_path: Path,
) -> None:
    store = tmp_path / "clinic.db"
    env = _env(store)
    assert run("init", env=env).returncode == 0
    for patient in ("anna", "ben"):
        run("enroll", patient, "--program", SEED, "--start", START.isoformat(), env=env)
    rows = [{**r, "patient": p} for p in ("anna", "ben") for r in full_week()]
    rows.append({"patient": "ben", "date": START.isoformat(), "pain": 8, "context": "flare"})
    assert run("import", str(_log(tmp_path, "week1.jsonl", rows)), env=env).returncode == 0

    # A channel that cannot deliver (the red-flags plugin's file channel, aimed at a folder):
    # the alert is printed in full, the run exits 4, and the alert stays due for that channel.
    folder = tmp_path / "not-a-file"
    folder.mkdir()
    failing = run("recompute", "--week", "2026-01-12", "--alerts", f"file:{folder}", env=env)
    assert failing.returncode == 4, failing.stderr
    assert "alert NOT delivered via file:" in failing.stderr and '"patient":"ben"' in failing.stderr
    assert f"alerts sent via file:{folder}: 0" in failing.stdout

    sent = run("recompute", "--week", "2026-01-12", "--alerts", "stderr", env=env)
    assert sent.returncode == 0, sent.stderr
    assert "0 patients computed" in sent.stdout  # nothing new to compute: the alert still goes
    assert sent.stdout.count("alerts sent via stderr: 1") == 1
    assert json.loads(sent.stderr.splitlines()[-1])["alert"]["patient"] == "ben"
    again = run("recompute", "--week", "2026-01-12", "--alerts", "stderr", env=env)
    assert "alerts sent via stderr: 0" in again.stdout and '"alert"' not in again.stderr

    inbox = tmp_path / "alerts.jsonl"
    fixed = run("recompute", "--week", "2026-01-12", "--alerts", f"file:{inbox}", env=env)
    assert fixed.returncode == 0 and f"alerts sent via file:{inbox}: 1" in fixed.stdout
    assert [json.loads(line)["patient"] for line in inbox.read_text().splitlines()] == ["ben"]

    typo = run("recompute", "--alerts", "stdrr", env=env)
    assert typo.returncode == 1 and "did you mean 'stderr'" in typo.stderr
    dataset = run("recompute", "--dataset", str(tmp_path), "--out", "x", "--alerts", "stderr")
    assert dataset.returncode == 1 and "--alerts goes with the store" in dataset.stderr


def _alerts_in(done: Any) -> list[dict[str, Any]]:
    return [json.loads(line)["alert"] for line in done.stderr.splitlines() if '"alert"' in line]


def test_a_flare_under_an_id_enrolled_nowhere_is_alerted_until_its_line_is_settled(
    tmp_path: Path,
) -> None:
    """A line whose pains reach no patient's safety rules (an id enrolled nowhere, nor one but
    for case or spaces; no patient at all) waits in the quarantine: recompute sends an alert
    for it on the clinic's channels, urgent when the rules would raise one on that id's lines
    (a pain of 9, also in a line with no readable day), not when they would not (a pain of 2),
    once a channel; none once the patient is enrolled and the line imported again (settled),
    a line read only in part too. A dataset raises the same alert."""
    store = tmp_path / "clinic.db"
    env = _env(store)
    run("init", env=env)
    run("enroll", "anna", "--program", SEED, "--start", START.isoformat(), env=env)
    rows: list[Any] = [{**r, "patient": "anna"} for r in full_week()]
    rows.append({"patient": "bem", "date": START.isoformat(), "pain": 9, "context": "flare"})
    rows.append({"patient": "zed", "date": START.isoformat(), "pain": 2})
    rows.append({"patient": "dan", "date": "05/01/2026", "pain": 9})  # (no readable day)
    rows.append({"date": START.isoformat(), "pain": 8})  # (no patient)
    rows.append({"patient": "cy", "date": START.isoformat(), "pain": "9/10"})  # (read in part)
    log = _log(tmp_path, "week1.jsonl", rows)
    bem_line = len(full_week()) + 1
    imported = run("import", str(log), env=env)
    assert imported.returncode == 3 and "it holds pain up to 9/10" in imported.stderr

    sent = run("recompute", "--week", "2026-01-12", "--alerts", "stderr", env=env)
    assert sent.returncode == 0, sent.stderr
    alerts = _alerts_in(sent)
    assert [(a["patient"], a["week"], a["rule"], a["urgent"]) for a in alerts] == [
        ("bem", 0, "enrollment", True),  # (in the quarantine's order)
        ("zed", 0, "enrollment", False),
        ("dan", 0, "enrollment", True),
        ("", 0, "enrollment", True),
        ("cy", 0, "enrollment", True),
    ]
    assert alerts[0]["message"] == (
        f"not enrolled: a line for 'bem' ({log}:{bem_line}, quarantine entry 1) holds pain up "
        "to 9/10, a flare or symptom flag, and it reaches no patient's safety rules: enroll the "
        "patient and import the line again, or fix it (quarantine reimport), and review the "
        "quarantine"
    )
    assert alerts[3]["message"].startswith("not enrolled: a line without a readable patient id")
    again = run("recompute", "--week", "2026-01-12", "--alerts", "stderr", env=env)
    assert "alerts sent via stderr: 0" in again.stdout and '"alert"' not in again.stderr
    inbox = tmp_path / "alerts.jsonl"
    other = run("recompute", "--week", "2026-01-12", "--alerts", f"file:{inbox}", env=env)
    assert f"alerts sent via file:{inbox}: 5" in other.stdout  # (each channel gets them)

    # bem and cy enrolled after all: the same file again stores their lines (what can be read
    # of cy's) and settles them: their own rules alert now. zed's record comes as CSV from
    # another export: stored for zed, it settles zed's line too.
    for patient in ("bem", "cy"):
        run("enroll", patient, "--program", SEED, "--start", START.isoformat(), env=env)
    run("import", str(log), env=env)
    run("enroll", "zed", "--program", SEED, "--start", START.isoformat(), env=env)
    other_export = tmp_path / "export.csv"
    other_export.write_text(f"date,pain,patient\n{START.isoformat()},2,zed\n", encoding="utf-8")
    assert run("import", str(other_export), env=env).returncode == 0
    settled = run("recompute", "--week", "2026-01-12", "--alerts", "stderr", env=env)
    assert [(a["patient"], a["week"]) for a in _alerts_in(settled)] == [("bem", 1), ("cy", 1)]
    fresh = run(
        "recompute", "--week", "2026-01-12", "--alerts", "file:" + str(inbox) + "2", env=env
    )
    assert "sent via file:" in fresh.stdout
    sent_later = [json.loads(line) for line in Path(f"{inbox}2").read_text().splitlines()]
    assert sorted(a["patient"] for a in sent_later) == ["", "bem", "cy", "dan"]  # (a new channel)


def test_a_discharged_patients_new_records_are_alerted_until_re_enrolment_or_a_void(
    tmp_path: Path,
) -> None:
    """A discharged patient is never computed again, so a record stored for them that no
    computation read reaches no safety rule: recompute sends an alert for each that holds a
    pain or a flag, urgent when their program's rules would raise one on them (a pain of 9),
    not when they would not (a pain of 2), once a channel, until the patient is re-enrolled
    (their records are then computed) or the record is voided. Records computed before the
    discharge raise none; an enrolled patient's records are computed as ever."""
    store = tmp_path / "clinic.db"
    env = _env(store)
    run("init", env=env)
    for patient in ("anna", "ben", "cleo"):
        run("enroll", patient, "--program", SEED, "--start", START.isoformat(), env=env)
    week1 = [{**r, "patient": p} for p in ("anna", "ben", "cleo") for r in full_week()]
    assert run("import", str(_log(tmp_path, "week1.jsonl", week1)), env=env).returncode == 0
    assert run("recompute", "--week", "2026-01-12", env=env).returncode == 0
    for patient in ("anna", "cleo"):
        done = run("discharge", patient, "--note", "goals met", env=env)
        assert done.returncode == 0, done.stderr
    computed = run("recompute", "--week", "2026-01-12", "--alerts", "stderr", env=env)
    assert computed.returncode == 0 and _alerts_in(computed) == []  # (all computed before)

    # They keep using the app: anna a flare (one record dated before her discharge, imported
    # after it), cleo a low pain; ben, still enrolled, a low pain too.
    later = [
        {"patient": "anna", "date": "2026-01-13", "pain": 9, "context": "flare"},
        {"patient": "cleo", "date": "2026-01-14", "pain": 2},
        {"patient": "ben", "date": "2026-01-14", "pain": 2},
    ]
    log = _log(tmp_path, "week2.jsonl", later)
    assert run("import", str(log), env=env).returncode == 0
    sent = run("recompute", "--week", "2026-01-19", "--alerts", "stderr", env=env)
    assert sent.returncode == 0, sent.stderr
    alerts = _alerts_in(sent)
    assert [(a["patient"], a["week"], a["rule"], a["urgent"]) for a in alerts] == [
        ("anna", 0, "discharged", True),
        ("cleo", 0, "discharged", False),
    ]
    anna, cleo = (a["message"] for a in alerts)
    assert anna == (
        f"discharged: patient 'anna' is discharged, and their record p1 of 2026-01-13 ({log}:1)"
        " holds pain up to 9/10, a flare or symptom flag; it reaches no safety rules (a "
        "discharged patient is never recomputed): re-enrol the patient (progressor reenroll) "
        "to compute it, or void the record (progressor void anna --record p1) if it was "
        "logged by mistake"
    )
    assert "record p2 of 2026-01-14" in cleo and "pain up to 2/10" in cleo
    again = run("recompute", "--week", "2026-01-19", "--alerts", "stderr", env=env)
    assert "alerts sent via stderr: 0" in again.stdout and '"alert"' not in again.stderr
    # The review queue lists them too (a clinic may work from it, not from a channel).
    queued = run("review", "--flag", "discharged", env=env)
    assert queued.returncode == 0, queued.stderr
    assert "anna" in queued.stdout and "cleo" in queued.stdout and "ben" not in queued.stdout

    # cleo's record is voided; anna is re-enrolled: her flare is computed, as her own.
    voided = run("void", "cleo", "--record", "p2", "--why", "her sister's phone", env=env)
    assert voided.returncode == 0, voided.stderr
    back = run(
        "reenroll", "anna", "--program", SEED, "--start", "2026-01-19", "--note", "back", env=env
    )
    assert back.returncode == 0, back.stderr
    inbox = tmp_path / "alerts.jsonl"
    ended = run("recompute", "--week", "2026-01-20", "--alerts", f"file:{inbox}", env=env)
    assert ended.returncode == 0, ended.stderr
    sent_later = [json.loads(line) for line in inbox.read_text().splitlines()]
    assert not [a for a in sent_later if a["rule"] == "discharged"]
    assert "discharged" not in run("review", env=env).stdout
    assert [(a["patient"], a["week"], a["rule"]) for a in sent_later if a["week"] > 0] == [
        ("anna", 1, "pain-flare")  # (the new week 1's: a flare before its start still counts)
    ]


def test_no_alert_is_lost_to_a_missed_run_and_a_flare_under_way_is_sent_at_once(
    tmp_path: Path,
) -> None:
    store = tmp_path / "clinic.db"
    env = _env(store)
    run("init", env=env)
    for patient in ("anna", "ben", "cleo"):
        run("enroll", patient, "--program", SEED, "--start", START.isoformat(), env=env)
    week = dt.timedelta(days=7)
    rows = [{**r, "patient": p} for p in ("anna", "ben", "cleo") for r in full_week()]
    rows += [{**r, "patient": "anna"} for r in full_week(START + week)]
    rows.append({"patient": "ben", "date": (START + week).isoformat(), "pain": 9})  # week 2
    rows.append({"patient": "anna", "date": (START + 2 * week).isoformat(), "pain": 8})  # week 3
    # cleo: a flare on the first day of week 4, which has not ended on the day of the run.
    rows.append({"patient": "cleo", "date": (START + 3 * week).isoformat(), "pain": 9})
    assert run("import", str(_log(tmp_path, "log.jsonl", rows)), env=env).returncode == 0

    # One run after three weeks (the weekly runs of weeks 2 and 3 were missed).
    day = (START + 3 * week + dt.timedelta(days=1)).isoformat()
    sent = run("recompute", "--week", day, "--alerts", "stderr", env=env)
    assert sent.returncode == 0, sent.stderr
    alerts = [json.loads(line)["alert"] for line in sent.stderr.splitlines() if '"alert"' in line]
    assert sorted((a["patient"], a["week"]) for a in alerts) == [
        ("anna", 3),
        ("ben", 2),
        ("cleo", 4),  # the week under way: sent now, not when it ends
    ]
    # cleo waits in the review queue from today, not from when the week ends.
    assert "alert in week 4, under way (pain-flare): pain 9/10" in run("review", env=env).stdout
    # When cleo's week 4 has ended, her flare is judged: the same alert, not sent again.
    later = (START + 4 * week).isoformat()
    again = run("recompute", "--week", later, "--alerts", "stderr", env=env)
    assert again.returncode == 0 and "alerts sent via stderr: 0" in again.stdout
    cleo = json.loads(run("show", "cleo", "--format", "json", env=env).stdout)
    assert cleo["status"] == "paused" and [a["week"] for a in cleo["alerts"]] == [4]
    # Still paused a week later: the review queue says what paused anna, not only that.
    queue = run("review", env=env).stdout
    assert "alert of week 3 (pain-flare): pain 8/10" in queue, queue


def test_a_flare_in_the_first_week_is_alerted_at_once_not_when_the_week_ends(
    tmp_path: Path,
) -> None:
    store = tmp_path / "clinic.db"
    env = _env(store)
    run("init", env=env)
    for patient in ("dora", "eli"):
        run("enroll", patient, "--program", SEED, "--start", START.isoformat(), env=env)
    # dora reports pain 9/10 on her second day; eli logs nothing. Nobody's week has ended.
    flare = {"patient": "dora", "date": (START + dt.timedelta(days=1)).isoformat(), "pain": 9}
    assert run("import", str(_log(tmp_path, "log.jsonl", [flare])), env=env).returncode == 0
    day = (START + dt.timedelta(days=2)).isoformat()
    sent = run("recompute", "--week", day, "--alerts", "stderr", env=env)
    assert sent.returncode == 0, sent.stderr
    assert "(1 due, 0 up to date, 1 not started)" in sent.stdout  # eli: nothing to compute
    alerts = [json.loads(line)["alert"] for line in sent.stderr.splitlines() if '"alert"' in line]
    assert [(a["patient"], a["week"], a["rule"]) for a in alerts] == [("dora", 1, "pain-flare")]
    assert "alert in week 1, under way (pain-flare): pain 9/10" in run("review", env=env).stdout
    # `show` gives week 1 as prescribed (nothing decided yet) with the alert already raised.
    shown = run("show", "dora", "--format", "json", env=env)
    assert shown.returncode == 0, shown.stderr
    dora = json.loads(shown.stdout)
    assert dora["week"] == 1 and {e["action"] for e in dora["exercises"].values()} == {"start"}
    assert [(a["week"], a["rule"]) for a in dora["alerts"]] == [(1, "pain-flare")]
    # Nothing new the next day: nothing computed, nothing sent again.
    again = run("recompute", "--week", day, "--alerts", "stderr", env=env)
    assert "(0 due, 1 up to date, 1 not started)" in again.stdout  # dora computed, eli not
    assert "alerts sent via stderr: 0" in again.stdout
    # The clinician phoned dora: acknowledged, the alert under way leaves the queue.
    seen = run("acknowledge", "dora", "--note", "phoned: resting, will log", env=env)
    assert seen.returncode == 0, seen.stderr
    assert "dora" not in run("review", env=env).stdout
    # When the week ends, the flare is judged: the program pauses (back in the queue: a
    # pause needs a resume, whatever was acknowledged); the alert is the same row.
    ended = run("recompute", "--week", (START + dt.timedelta(days=7)).isoformat(), env=env)
    assert ended.returncode == 0, ended.stderr
    dora = json.loads(run("show", "dora", "--format", "json", env=env).stdout)
    assert dora["status"] == "paused" and [a["week"] for a in dora["alerts"]] == [1]
    assert "dora  week 2  paused" in run("review", env=env).stdout


def test_a_clinician_acknowledges_flags_without_changing_anything(tmp_path: Path) -> None:
    store = tmp_path / "clinic.db"
    env = _env(store)
    run("init", env=env)
    for patient in ("fay", "gus"):
        run("enroll", patient, "--program", SEED, "--start", START.isoformat(), env=env)
    rows = [{**r, "patient": p} for p in ("fay", "gus") for r in full_week()]
    # fay: on Wednesday the bridge hurt more during than before (new pain, once): regress, flag.
    rows[5] = {**rows[5], "pain_during": 4}
    assert (rows[5]["patient"], rows[5]["exercise"], rows[5]["date"]) == (
        "fay",
        "bridge",
        "2026-01-07",
    )
    assert run("import", str(_log(tmp_path, "log.jsonl", rows)), env=env).returncode == 0
    assert run("recompute", "--week", "2026-01-12", env=env).returncode == 0
    queue = run("review", env=env).stdout
    assert "fay  week 2  active" in queue and "pain rose 2 above" in queue and "gus" not in queue

    nothing = run("acknowledge", "gus", "--note", "looked", env=env)
    assert nothing.returncode == 1 and "no flags or alerts in week 2: nothing to acknowledge" in (
        nothing.stderr
    )
    done = run("acknowledge", "fay", "--note", "called: a stiff morning, carry on", env=env)
    assert done.returncode == 0, done.stderr
    assert "fay: flags of week 2 acknowledged by dr-lee" in done.stdout
    assert "fay" not in run("review", env=env).stdout
    # Recorded in the audit trail; the prescription is what the engine made.
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT kind, who, week FROM clinician_actions").fetchall() == [
            ("acknowledge", "dr-lee", 2)
        ]
    before = json.loads(run("show", "fay", "--format", "json", env=env).stdout)
    assert run("recompute", "--week", "2026-01-12", env=env).returncode == 0
    assert json.loads(run("show", "fay", "--format", "json", env=env).stdout) == before


def test_a_dataset_line_that_is_not_utf8_is_reported_at_its_line_and_its_pain_counts(
    tmp_path: Path,
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    made = run(
        "synth", "--patients", "5", "--weeks", "1", "--start", "2026-01-05", "--out", str(data)
    )
    assert made.returncode == 0, made.stderr
    patient = json.loads((data / "enrollments" / "part-00000.jsonl").read_text().split("\n")[0])
    record = {"date": "2026-01-08", "pain": 8, "note": "caf\xe9", "patient": patient["patient"]}
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    with (data / "records" / "part-00000.jsonl").open("ab") as handle:
        handle.write(line.encode("latin-1"))  # (a cp1252 export: é is one byte, 0xe9)
    done = run("recompute", "--dataset", str(data), "--out", str(out), "--week", "2026-01-12")
    assert done.returncode == 3, done.stderr  # (a problem to read: set aside, exit 3)
    assert "Traceback" not in done.stderr
    problem = (out / "set_aside" / "part-00000.jsonl").read_text()
    assert "not UTF-8 text (byte 0xe9 at column 42)" in problem and "line " in problem
    rows = (out / "prescriptions" / "part-00000.jsonl").read_text().splitlines()
    row = next(r for r in rows if f'"patient":"{patient["patient"]}"' in r)
    assert '"status":"paused"' in row  # the pain of 8 reached pain-flare


def test_a_dataset_path_with_no_dataset_is_an_error_not_an_empty_run(tmp_path: Path) -> None:
    for missing in (tmp_path / "nonexist", tmp_path):  # (a folder, but no enrollments/ in it)
        done = run("recompute", "--dataset", str(missing), "--out", str(tmp_path / "o"))
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert "no dataset here (no enrollments/ folder)" in done.stderr
