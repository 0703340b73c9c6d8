"""The patient's handout: plain words, HTML and PDF, from `next` and from the store."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

import progressor
from progressor.core.models import Dose
from progressor.handout import Clinic, handout_html
from progressor.handout.settings import clinic_from_env, read_clinic
from progressor.handout.words import change_in_words, dose_in_words, stop_rules
from tests.conftest import PROGRAMS, START, full_week
from tests.handouts import INTERNAL, clinic, needs
from tests.test_cli import SEED, WriteLog, run


def test_a_dose_in_the_patients_words(seed: progressor.CompiledProgram) -> None:
    program = seed.program
    tilt, knee = program.exercise("pelvic-tilt"), program.exercise("knee-to-chest")
    assert dose_in_words(tilt.dose, tilt) == "5 times, hold each for 5 seconds"
    assert dose_in_words(knee.dose, knee) == "5 times, hold each for 5 seconds, each leg"
    assert dose_in_words(Dose(sets=3, reps=10, load_kg=2.5), tilt) == (
        "10 times, 3 rounds, with 2.5 kg"
    )
    assert dose_in_words(Dose(sets=2, duration_s=30), tilt) == "for 30 seconds, twice"
    assert dose_in_words(Dose(duration_s=900), tilt) == "for 15 minutes"
    assert dose_in_words(Dose(reps=1, hold_s=1, variant="marching-bridge"), tilt) == (
        "Marching bridge, once, hold each for 1 second"
    )


def test_a_change_is_said_without_rule_ids() -> None:
    assert "new pain" in change_in_words("regress", "new-pain")
    # A clinic's rule is unknown here: its action's sentence, never its id.
    unknown = change_in_words("regress", "clinic-knee-rule")
    assert unknown == "This exercise is a little easier this week."
    assert change_in_words("start", "program") == "This is your starting amount."
    # The engine's own decisions: a pause waiting for the clinician, a failing plugin's hold.
    assert "stays paused" in change_in_words("pause", "awaiting-clinician")
    assert "could not work out last week" in change_in_words("hold", "fail-safe")


def test_the_stop_rules_come_from_the_programs_thresholds(
    seed: progressor.CompiledProgram,
) -> None:
    rules = list(stop_rules(seed.program))
    assert rules[0] == (
        "If, while exercising, you feel any pain beyond the pain you had before starting, "
        "stop at once."
    )
    assert "reaches 7 out of 10" in rules[-1] and len(rules) == 2
    achilles = list(stop_rules(progressor.load_program(PROGRAMS / "achilles-tendinopathy.toml")))
    assert achilles[0] == (
        "Some pain while exercising is all right, up to 5 out of 10. If it goes higher, "
        "stop that exercise."
    )
    # pain-flare applies to every program, listed in it or not, at the program's threshold.
    walking = list(stop_rules(progressor.load_program(PROGRAMS / "graded-walking.toml")))
    assert len(walking) == 1 and "reaches 8 out of 10" in walking[0]
    tolerant = seed.program.model_copy(update={"safety": {"new-pain": {"tolerance": 2}}})
    assert list(stop_rules(tolerant)) == [
        "If, while exercising, your pain rises more than 2 points above the pain you had "
        "before starting, stop at once.",
        "If your pain reaches 7 out of 10, or anything unusual happens (a fall, a new "
        "numbness or weakness), stop all the exercises and call the clinic.",
    ]


def test_the_clinic_setting_is_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[clinic]\nname = "Riverside"\ncontact = "01632 960 123"\n', "utf-8")
    assert read_clinic(good) == Clinic("Riverside", "01632 960 123")
    typo = tmp_path / "typo.toml"
    typo.write_text('[clinic]\nnmae = "Riverside"\n', "utf-8")
    with pytest.raises(progressor.ProgressorError, match=r"clinic\.nmae.*did you mean 'name'"):
        read_clinic(typo)
    with pytest.raises(progressor.ProgressorError, match="cannot read the settings"):
        read_clinic(tmp_path / "missing.toml")
    assert clinic_from_env({"PROGRESSOR_SETTINGS": str(good)}).name == "Riverside"


def test_without_a_setting_the_clinic_is_read_from_progressor_toml_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert clinic_from_env({}) == Clinic("your clinic", "")
    Path("progressor.toml").write_text('[clinic]\nname = "Here"\n', "utf-8")
    assert clinic_from_env({}) == Clinic("Here", "")


def test_html_from_next_says_the_week_in_plain_words(tmp_path: Path, write_log: WriteLog) -> None:
    log = write_log(full_week(), "log.jsonl")
    out = tmp_path / "handout.html"
    settings = tmp_path / "settings.toml"
    settings.write_text('[clinic]\nname = "Riverside & Co"\ncontact = "01632 960 123"\n', "utf-8")
    done = run(
        "next", SEED, "--log", str(log), "--as-of", "2026-01-12", "--format", "html",
        "--output", str(out), env={"PROGRESSOR_SETTINGS": str(settings)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    for words in (
        "Pelvic tilt",
        "Single knee to chest stretch",
        "Bridge",
        "Pull one knee gently towards your chest until you feel a stretch.",
        "6 times, hold each for 5 seconds",  # (progressed from 5)
        "Last week: 5 times, hold each for 5 seconds.",
        "you feel any pain beyond the pain you had before starting, stop at once.",
        "Riverside &amp; Co",  # (escaped: the clinic's words are text)
        "01632 960 123",
        "Week 2: Monday 12 January 2026 to Sunday 18 January 2026",
    ):
        assert words in html, words
    for name in INTERNAL:
        assert name not in html, name


def test_a_handout_without_chromium_is_a_clear_error_and_alerts_still_go(
    tmp_path: Path, write_log: WriteLog
) -> None:
    flare = {"date": START.isoformat(), "pain": 9, "context": "flare"}
    log = write_log([*full_week(), flare], "log.jsonl")
    done = run(
        "next", SEED, "--log", str(log), "--as-of", "2026-01-12", "--format", "pdf",
        "--output", str(tmp_path / "h.pdf"), "--alerts", "stderr",
        env={"PROGRESSOR_CHROMIUM": str(tmp_path / "no-such-browser")},
    )  # fmt: skip
    assert done.returncode == 1
    assert "error: PROGRESSOR_CHROMIUM=" in done.stderr and "no such executable" in done.stderr
    assert "Traceback" not in done.stderr
    assert '"rule": "pain-flare"' in done.stderr  # (the flare's alert was sent all the same)


def _pdf_text(pdf: Path) -> str:
    pages = subprocess.run(
        ["pdftoppm", "-png", "-r", "60", str(pdf), str(pdf.with_suffix(""))],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert pages.returncode == 0
    assert sorted(pdf.parent.glob(f"{pdf.stem}-*.png")), "no page"
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True, timeout=60
    )
    return " ".join(text.stdout.decode("utf-8").split())


def test_the_seed_patients_handout_as_pdf(tmp_path: Path) -> None:
    needs("chromium", "pdftoppm", "pdftotext")
    env = clinic(tmp_path)
    pdf = tmp_path / "anna.pdf"
    done = run("handout", "anna", "--output", str(pdf), env=env)
    assert done.returncode == 0, done.stderr
    assert f"anna: week 3's handout written to {pdf}" in done.stdout
    assert pdf.read_bytes().startswith(b"%PDF")
    text = _pdf_text(pdf)
    for words in (
        "Riverside Physiotherapy",
        "01632 960 123",
        "Pelvic tilt",
        "Single knee to chest stretch",
        "Bridge",
        "7 times, hold each for 5 seconds",
        "5 times, hold each for 10 seconds, each leg",
        "Tighten your stomach and lift your pelvis until it is above shoulder level.",
        "If, while exercising, you feel any pain beyond the pain you had before starting, "
        "stop at once.",
        "goes up a little this week",
    ):
        assert words in text, words
    for name in INTERNAL:
        assert name not in text, name
    again = tmp_path / "again.pdf"
    assert run("handout", "anna", "--output", str(again), env=env).returncode == 0
    assert again.read_bytes() == pdf.read_bytes()  # (Chromium's dates are fixed)


def test_a_paused_then_resumed_patients_handout(tmp_path: Path) -> None:
    env = clinic(tmp_path)
    paused = tmp_path / "ben.html"
    done = run("handout", "ben", "--format", "html", "--output", str(paused), env=env)
    assert done.returncode == 0, done.stderr
    html = paused.read_text(encoding="utf-8")
    assert "Your program is paused." in html
    assert html.count("Do not do this exercise for now.") == 3
    assert "Your pain was high, or something unusual happened" in html
    assert "hold each for" not in html  # (no dose to do while paused)

    note = "spoke on the phone: settled"
    assert run("resume", "ben", "--note", note, env=env).returncode == 0
    week3 = START + dt.timedelta(days=14)
    assert run("recompute", "--week", week3.isoformat(), env=env).returncode == 0
    resumed = tmp_path / "ben-resumed.html"
    done = run("handout", "ben", "--format", "html", "--output", str(resumed), env=env)
    assert done.returncode == 0, done.stderr
    html = resumed.read_text(encoding="utf-8")
    assert "Your physiotherapist has restarted your program after the pause." in html
    assert "Your program is paused." not in html
    assert "6 times, hold each for 5 seconds" in html


def test_a_newly_enrolled_patient_gets_the_first_week_handout_at_once(tmp_path: Path) -> None:
    # Enrolment stores week 1, so the patient leaves the clinic with a sheet (issue 14).
    env = {"PROGRESSOR_STORE": str(tmp_path / "s.db")}
    run("init", env=env)
    run("enroll", "cleo", "--program", SEED, "--start", START.isoformat(), env=env)
    sheet = tmp_path / "h.html"
    done = run("handout", "cleo", "--format", "html", "--output", str(sheet), env=env)
    assert done.returncode == 0, done.stderr
    assert "cleo: week 1's handout written" in done.stdout
    html = sheet.read_text(encoding="utf-8")
    assert "5 times, hold each for 5 seconds" in html


def test_handout_of_an_unknown_patient_is_a_clear_error(tmp_path: Path) -> None:
    env = {"PROGRESSOR_STORE": str(tmp_path / "s.db")}
    run("init", env=env)
    done = run("handout", "nobody", "--format", "html", "--output", str(tmp_path / "h"), env=env)
    assert done.returncode == 1
    assert "nobody" in done.stderr and "Traceback" not in done.stderr


def test_the_handout_exporters_are_plugin_exporters(seed: progressor.CompiledProgram) -> None:
    engine = progressor.Engine()
    html, pdf = engine.registries.exporters["html"], engine.registries.exporters["pdf"]
    assert (html.plugin, pdf.plugin) == ("progressor.builtins.handouts",) * 2
    assert pdf.component.binary and not html.component.binary
    enrollment = progressor.Enrollment(patient="p", program=seed.program.id, start=START)
    records = [progressor.Outcome.model_validate(r) for r in full_week()]
    result = seed.step(seed.first_week(enrollment), records)
    page = handout_html(seed.program, result, Clinic("Riverside", "01632 960 123"))
    assert html.component.export_bytes(seed.program, result) != page.encode()  # (its clinic)
    assert "6 times, hold each for 5 seconds" in page and "Riverside" in page


def test_a_flare_logged_in_the_week_under_way_stops_the_handout(
    tmp_path: Path, write_log: WriteLog
) -> None:
    # Week 1 went well (a progression), but on day 2 of week 2 the patient logged pain 9:
    # week 2 is not judged yet, and its sheet must not say "go on".
    flare = {"date": "2026-01-13", "pain": 9, "context": "flare"}
    log = write_log([*full_week(), flare], "log.jsonl")
    out = tmp_path / "handout.html"
    done = run(
        "next", SEED, "--log", str(log), "--as-of", "2026-01-14", "--format", "html",
        "--output", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    assert "You have logged pain, or a problem, this week" in html
    assert '<p class="notice">' in html  # (in red, not the calm box)
    assert html.count("Do not do this exercise for now.") == 3
    assert "6 times, hold each for 5 seconds" not in html
    toml = run("next", SEED, "--log", str(log), "--as-of", "2026-01-14")
    assert 'rule = "pain-flare"' in toml.stdout  # (the document lists it, as show does)
