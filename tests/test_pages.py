"""The clinician pages in a real headless Chromium (Debian's, driven by playwright), over a real
uvicorn server on 127.0.0.1 and a synthetic clinic: log in, the queue, a paused patient resumed
with a note, the CSRF refusal, what a readonly user sees, the quarantine.

PROGRESSOR_SCREENSHOTS=docs/images saves the screenshots the README shows."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import progressor
from progressor.core.models import Enrollment
from progressor.serve.app import create_app
from progressor.serve.pages.sessions import COOKIE
from progressor.serve.settings import ServeSettings
from progressor.serve.tokens import create_token
from progressor.store.batch import recompute
from progressor.store.database import Store
from progressor.synth import synthesize_into_store
from tests.conftest import PROGRAMS, START
from tests.handouts import INTERNAL, needs

WEEKS = 4
AS_OF = START + dt.timedelta(days=7 * WEEKS)
NAMES = {"service": "clinic-app", "clinician": "dr-lee", "readonly": "dashboard"}
BAD_LINE = '{"date": "2026-01-06", "exercise": "bridge", "reps": "five", "pain_during": 9}'


def _playwright() -> Any:
    needs("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        message = "playwright is not installed (pip install -e '.[test]')"
        if os.environ.get("PROGRESSOR_REQUIRE_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright


@dataclass
class Clinic:
    url: str
    store: Path
    tokens: dict[str, str]
    tokens_file: Path
    bad_line_of: str  # the patient whose file held BAD_LINE (the quarantine's one line)


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    """30 synthetic patients on two programs, four weeks computed, one bad line quarantined."""
    folder = tmp_path_factory.mktemp("pages")
    store = folder / "clinic.db"
    engine = progressor.Engine()
    texts = [(PROGRAMS / n).read_text(encoding="utf-8") for n in ("low-back-pain.toml",)]
    texts.append((PROGRAMS / "achilles-tendinopathy.toml").read_text(encoding="utf-8"))
    programs = [(engine.compile(progressor.parse_program(t)), t) for t in texts]
    with Store.init(store) as opened:
        synthesize_into_store(opened, programs, 30, WEEKS, seed=3, start=START)
    recompute(store, as_of=AS_OF)
    with Store.open(store) as opened:
        patient = opened.review_page(status="flagged").items[0].patient
        opened.import_records([BAD_LINE], "phone-app.jsonl", "jsonl", patient=patient)
    tokens = folder / "tokens.json"
    secrets = {role: create_token(tokens, role, name)[0] for role, name in NAMES.items()}
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings = folder / "progressor.toml"  # (the clinic the handouts name)
    settings.write_text(
        '[clinic]\nname = "Riverside Physiotherapy"\ncontact = "01632 960 123"\n',
        encoding="utf-8",
    )
    patched = pytest.MonkeyPatch()
    patched.setenv("PROGRESSOR_SETTINGS", str(settings))
    app = create_app(ServeSettings(tokens=tokens, store=store))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield Clinic(f"http://127.0.0.1:{sock.getsockname()[1]}", store, secrets, tokens, patient)
    server.should_exit = True
    thread.join(10)
    patched.undo()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with _playwright()() as playwright:
        chromium = playwright.chromium.launch(
            # (the system's chromium, never a downloaded one; no sandbox: CI runs as root)
            executable_path=shutil.which("chromium"),
            headless=True,
            args=["--no-sandbox"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    yield context.new_page()
    context.close()


def _login(page: Any, clinic: Clinic, role: str, after: str = "/clinic/") -> None:
    page.goto(clinic.url + after)
    assert "/clinic/login" in page.url  # (not logged in yet: sent to the login page)
    page.fill("input[name=token]", clinic.tokens[role])
    page.click("button[type=submit]")
    page.wait_for_load_state()


def _paused(clinic: Clinic, index: int = 0) -> str:
    with Store.open(clinic.store, readonly=True) as store:
        return store.review_page(status="paused").items[index].patient


def _screenshot(page: Any, name: str, height: int | None = None, element: str = "") -> None:
    """Under PROGRESSOR_SCREENSHOTS, the page (its top `height` pixels), or one element."""
    folder = os.environ.get("PROGRESSOR_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = str(Path(folder) / name)
    if element:
        page.locator(element).screenshot(path=path)
        return
    width = page.viewport_size["width"]
    clip = None if height is None else {"x": 0, "y": 0, "width": width, "height": height}
    page.screenshot(path=path, full_page=True, clip=clip)


def _filter(page: Any) -> None:
    """Submit the filters form and wait for the page it loads: a click only starts the
    navigation, and a list read at once may be the page between the two (none)."""
    with page.expect_navigation():
        page.click("form.filters button")


def test_a_clinician_resumes_a_paused_patient_who_then_leaves_the_queue(
    page: Any, clinic: Clinic
) -> None:
    patient = _paused(clinic)
    _login(page, clinic, "clinician")
    assert page.url == clinic.url + "/clinic/"
    rows = page.locator("#queue tr")
    assert "paused" in rows.nth(1).inner_text()  # (paused patients first)
    _screenshot(page, "review-queue.png")
    page.select_option("select[name=status]", "paused")
    _filter(page)
    page.click(f"#queue a:text-is('{patient}')")
    assert page.url.endswith(f"/clinic/patients/{patient}")
    assert page.locator(".chart svg").count() == 1
    assert page.locator("table.decisions").count() >= WEEKS - 1
    assert page.locator("#records tr").count() > 1
    _screenshot(page, "patient-page.png", height=2100)
    _screenshot(page, "chart.png", element=".chart")
    page.fill("#resume textarea[name=note]", "phoned: the flare settled")
    page.click("#resume button")
    page.locator("#done").wait_for()  # (waits for the page the post was sent to)
    assert "dr-lee" in page.locator("#actions").inner_text()
    assert "phoned: the flare settled" in page.locator("#actions").inner_text()
    page.goto(clinic.url + "/clinic/?status=paused")
    assert page.locator(f"#queue a:text-is('{patient}')").count() == 0
    with Store.open(clinic.store, readonly=True) as store:
        action = store.actions(patient)[-1]
    assert (action.kind, action.who, action.note) == (
        "resume",
        "dr-lee",
        "phoned: the flare settled",
    )


def test_a_form_posted_without_its_csrf_token_is_refused(page: Any, clinic: Clinic) -> None:
    patient = _paused(clinic)
    _login(page, clinic, "clinician", f"/clinic/patients/{patient}")
    with Store.open(clinic.store, readonly=True) as store:
        before = len(store.actions(patient))
    paths = [f"/clinic/patients/{patient}/{act}" for act in ("resume", "discharge", "void")]
    paths += [f"/clinic/patients/{patient}/reenroll", "/clinic/quarantine/1/reimport"]
    for path in paths:
        for form in ({"note": "no token"}, {"note": "a wrong one", "csrf": "0" * 64}):
            answer = page.request.post(clinic.url + path, form=form, max_redirects=0)
            assert answer.status == 403
            assert "CSRF" in answer.text() and "nothing was recorded" in answer.text()
    with Store.open(clinic.store, readonly=True) as store:
        assert len(store.actions(patient)) == before


def test_a_readonly_user_sees_the_pages_but_no_forms_and_cannot_post(
    page: Any, clinic: Clinic
) -> None:
    patient = _paused(clinic)
    _login(page, clinic, "readonly", f"/clinic/patients/{patient}")
    assert page.url.endswith(f"/clinic/patients/{patient}")  # (back where it was sent from)
    assert page.locator(".chart svg").count() == 1
    forms = "form#resume, form#acknowledge, form.override, form#discharge, form#void, form#reenroll"
    assert page.locator(forms).count() == 0
    assert page.locator("#records tr").count() > 1  # (the records, with their ids, all the same)
    page.goto(clinic.url + "/clinic/quarantine")
    assert page.locator("#quarantine").count() == 1 and page.locator("form.reimport").count() == 0
    page.goto(clinic.url + f"/clinic/patients/{patient}")
    csrf = page.locator("header input[name=csrf]").get_attribute("value")
    answer = page.request.post(
        f"{clinic.url}/clinic/patients/{patient}/resume",
        form={"note": "not mine to lift", "csrf": csrf},
        max_redirects=0,
    )
    assert answer.status == 403 and "may read these pages but not act" in answer.text()


def test_the_session_cookie_is_signed_httponly_strict_and_holds_no_token(
    page: Any, clinic: Clinic
) -> None:
    _login(page, clinic, "clinician")
    [cookie] = [c for c in page.context.cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert clinic.tokens["clinician"] not in cookie["value"]
    page.context.add_cookies([{**cookie, "value": cookie["value"][:-2] + "00"}])  # forged
    page.goto(clinic.url + "/clinic/")
    assert "/clinic/login" in page.url


def test_revoking_a_token_ends_its_sessions(page: Any, clinic: Clinic) -> None:
    token, _ = create_token(clinic.tokens_file, "clinician", "dr-locum")
    _login(page, clinic, "clinician")  # (as dr-lee: the page to log in from)
    page.click("header button")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    assert "dr-locum" in page.inner_text("header")
    data = json.loads(clinic.tokens_file.read_text(encoding="utf-8"))
    data["tokens"] = [t for t in data["tokens"] if t["name"] != "dr-locum"]
    clinic.tokens_file.write_text(json.dumps(data), encoding="utf-8")
    page.goto(clinic.url + "/clinic/")
    assert "/clinic/login" in page.url


def test_unknown_and_service_tokens_do_not_log_in(page: Any, clinic: Clinic) -> None:
    page.goto(clinic.url + "/clinic/login")
    page.fill("input[name=token]", "prg_not-a-token")
    page.click("button[type=submit]")
    assert "not known" in page.locator(".problem").inner_text()
    page.fill("input[name=token]", clinic.tokens["service"])
    page.click("button[type=submit]")
    assert "cannot log in here" in page.locator(".problem").inner_text()


def test_logging_out_ends_the_session(page: Any, clinic: Clinic) -> None:
    _login(page, clinic, "readonly")
    page.click("header button")
    assert "/clinic/login" in page.url
    page.goto(clinic.url + "/clinic/quarantine")
    assert "/clinic/login" in page.url


def test_the_quarantine_lists_the_lines_set_aside(page: Any, clinic: Clinic) -> None:
    _login(page, clinic, "readonly", "/clinic/quarantine")
    text = page.locator("#quarantine").inner_text()
    assert "phone-app.jsonl:1" in text and '"five"' in text


def test_a_bad_filter_and_an_unknown_patient_are_pages_that_say_so(
    page: Any, clinic: Clinic
) -> None:
    _login(page, clinic, "readonly")
    answer = page.goto(clinic.url + "/clinic/?status=pased")
    assert answer.status == 422 and "did you mean 'paused'" in page.inner_text("main")
    answer = page.goto(clinic.url + "/clinic/?offset=-3")
    assert answer.status == 422 and "offset '-3' is not a whole number" in page.inner_text("main")
    answer = page.goto(clinic.url + "/clinic/patients/nobody")
    assert answer.status == 404 and "is not enrolled" in page.inner_text("main")


def _flagged(clinic: Clinic, index: int) -> str:
    """A flagged patient (not paused) with nothing waiting for a recompute."""
    with Store.open(clinic.store, readonly=True) as store:
        ready = [i for i in store.review_page(status="flagged").items if not i.pending]
    return ready[index].patient


def test_a_clinician_overrides_a_dose_and_a_dose_over_the_ceiling_is_refused(
    page: Any, clinic: Clinic
) -> None:
    patient = _flagged(clinic, 0)
    _login(page, clinic, "clinician", f"/clinic/patients/{patient}")
    form = page.locator("form.override").first
    exercise = form.locator("input[name=exercise]").get_attribute("value")
    with Store.open(clinic.store, readonly=True) as store:
        ceiling = store.program_of(patient).exercise(exercise).ceiling.values()
    name, top = next(iter(ceiling.items()))
    form.locator(f"input[name='dose.{name}']").fill(f"{top + 1:g}")
    form.locator("textarea[name=note]").fill("more, she asked")
    form.locator("button").click()
    assert "above the ceiling" in page.inner_text("main")
    page.go_back()
    page.reload()
    form = page.locator("form.override").first
    form.locator("textarea[name=note]").fill("the same again, on purpose")
    form.locator("button").click()
    page.locator("#done").wait_for()  # (waits for the page the post was sent to)
    with Store.open(clinic.store, readonly=True) as store:
        action = store.actions(patient)[-1]
        dose = store.prescriptions(patient)[-1].exercises[exercise].dose
    assert (action.kind, action.exercise, action.who) == ("override", exercise, "dr-lee")
    assert action.dose == dose and getattr(action.dose, name) <= top


def test_a_clinician_acknowledges_the_flags_and_the_patient_leaves_the_queue(
    page: Any, clinic: Clinic
) -> None:
    patient = _flagged(clinic, 1)
    _login(page, clinic, "clinician", f"/clinic/patients/{patient}")
    page.fill("#acknowledge textarea[name=note]", "seen: on to the next phase at review")
    page.click("#acknowledge button")
    page.locator("#done").wait_for()  # (waits for the page the post was sent to)
    page.goto(clinic.url + "/clinic/?status=flagged&limit=500")
    assert page.locator(f"#queue a:text-is('{patient}')").count() == 0
    with Store.open(clinic.store, readonly=True) as store:
        assert store.actions(patient)[-1].kind == "acknowledge"


def test_the_queue_filters_and_pages_as_the_store_lists_it(page: Any, clinic: Clinic) -> None:
    _login(page, clinic, "readonly")
    shown: list[str] = []
    page.goto(clinic.url + "/clinic/?limit=5")
    while True:
        shown += page.locator("#queue tr td:first-child").all_inner_texts()
        following = page.locator("#next-page")
        if following.count() == 0:
            break
        following.click()
    with Store.open(clinic.store, readonly=True) as store:
        queue = store.review_page()
        flagged = store.review_page(
            status="flagged", program="achilles-tendinopathy", flag="linear"
        )
    assert shown == [item.patient for item in queue.items] and len(shown) > 5
    page.goto(clinic.url + "/clinic/")
    page.select_option("select[name=status]", "flagged")
    page.fill("input[name=program]", "achilles-tendinopathy")
    page.fill("input[name=flag]", "linear")
    _filter(page)
    got = page.locator("#queue tr td:first-child").all_inner_texts()
    assert got == [item.patient for item in flagged.items] != []


def test_a_newly_enrolled_patient_has_week_1_and_its_handout_at_once(
    page: Any, clinic: Clinic
) -> None:
    answer = httpx.post(
        clinic.url + "/v1/patients",
        json={"patient": "new-one", "program": "low-back-pain", "start": "2026-02-02"},
        headers={"Authorization": f"Bearer {clinic.tokens['service']}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    _login(page, clinic, "clinician", "/clinic/patients/new-one")
    # (the week's last day, a Sunday, as the handout says it: not the next Monday)
    assert "Week 1 (2026-02-02 to 2026-02-08) is under way" in page.inner_text("main")
    page.click('#handout a:text-is("Print the patient\'s handout")')
    assert "Week 1:" in page.inner_text("body")


def test_a_patient_not_computed_yet_has_a_page_that_says_so(page: Any, clinic: Clinic) -> None:
    with Store.open(clinic.store) as store:  # (enrolled without an engine: no week 1)
        program = store.program_of(_settled(clinic))
        store.enroll(Enrollment(patient="bare-one", program=program.id, start=AS_OF), program)
    _login(page, clinic, "clinician", "/clinic/patients/bare-one")
    assert "Nothing computed yet" in page.inner_text("main")
    assert page.locator("form.override, .chart svg, #handout").count() == 0
    answer = page.goto(clinic.url + "/clinic/patients/bare-one/handout")
    assert answer.status == 404 and "nothing computed yet" in page.inner_text("main")


def _settled(clinic: Clinic, program: str = "low-back-pain") -> str:
    """An active patient of `program`, computed to week WEEKS + 1, not in the review queue."""
    with Store.open(clinic.store, readonly=True) as store:
        waiting = {item.patient for item in store.review_queue()}
        entries = store.patients(status="active", program=program)
    return next(e.patient for e in entries if e.patient not in waiting and e.week == WEEKS + 1)


def test_the_patient_page_prints_the_patients_handout_as_html_and_as_pdf(
    page: Any, clinic: Clinic
) -> None:
    patient = _settled(clinic)
    _login(page, clinic, "readonly", f"/clinic/patients/{patient}")
    page.click('#handout a:text-is("Print the patient\'s handout")')
    address = f"{clinic.url}/clinic/patients/{patient}/handout"
    assert page.url == address
    with Store.open(clinic.store, readonly=True) as store:
        program = store.program_of(patient)
        week = store.prescriptions(patient)[-1].week
    text = page.inner_text("body")
    assert program.title in text and f"Week {week}:" in text and "When to stop" in text
    assert "Riverside Physiotherapy · 01632 960 123" in text
    assert all(exercise.name in text for exercise in program.exercises)
    assert [word for word in INTERNAL if word in text] == []
    page.set_viewport_size({"width": 820, "height": 1160})  # (about an A4 page)
    _screenshot(page, "handout.png", height=1160)
    pdf = page.request.get(f"{address}?format=pdf")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")
    assert f'filename="handout-{patient}-week-{week}.pdf"' in pdf.headers["content-disposition"]
    answer = page.goto(f"{address}?format=docx")
    assert answer.status == 422 and "one of html, pdf" in page.inner_text("main")


def test_the_patients_list_searches_filters_and_links_to_each_patient(
    page: Any, clinic: Clinic
) -> None:
    _login(page, clinic, "readonly", "/clinic/patients")
    with Store.open(clinic.store, readonly=True) as store:
        everyone = store.patients()
        paused = store.patients(status="paused", program="low-back-pain")
    shown = page.locator("#patients tr td:first-child").all_inner_texts()
    assert shown == [e.patient for e in everyone][: len(shown)] and len(shown) > 10
    page.select_option("select[name=status]", "paused")
    page.fill("input[name=program]", "low-back-pain")
    _filter(page)
    shown = page.locator("#patients tr td:first-child").all_inner_texts()
    assert shown == [e.patient for e in paused] != []
    page.goto(clinic.url + "/clinic/patients")
    page.fill("input[name=q]", everyone[3].patient.upper())  # (a search ignores case)
    _filter(page)
    page.click(f"#patients a:text-is('{everyone[3].patient}')")
    assert page.url.endswith(f"/clinic/patients/{everyone[3].patient}")
    answer = page.goto(clinic.url + "/clinic/patients?status=dischargd")
    assert answer.status == 422 and "did you mean 'discharged'" in page.inner_text("main")


def test_a_discharged_patient_leaves_the_queue_and_is_listed_as_discharged(
    page: Any, clinic: Clinic
) -> None:
    patient = _flagged(clinic, 0)
    _login(page, clinic, "clinician", f"/clinic/patients/{patient}")
    page.fill("#discharge textarea[name=note]", "goals met: discharged at the 6-week review")
    page.click("#discharge button")
    page.locator("#done").wait_for()
    assert page.locator("#discharged").is_visible() and page.locator("#discharge").count() == 0
    page.goto(clinic.url + "/clinic/?limit=500")
    assert page.locator(f"#queue a:text-is('{patient}')").count() == 0
    page.goto(clinic.url + "/clinic/patients?status=discharged")
    assert page.locator("#patients tr td:first-child").all_inner_texts() == [patient]
    with Store.open(clinic.store, readonly=True) as store:
        assert store.is_discharged(patient)


def test_a_voided_record_is_marked_void_and_kept(page: Any, clinic: Clinic) -> None:
    patient = _settled(clinic, "achilles-tendinopathy")
    _login(page, clinic, "clinician", f"/clinic/patients/{patient}")
    record = page.locator("#void select[name=record] option").first.get_attribute("value")
    page.select_option("#void select[name=record]", record)
    page.click("#void button")  # (no reason: the browser asks for one, nothing is posted)
    assert "done" not in page.url
    page.fill("#void textarea[name=note]", "logged for the wrong day")
    page.click("#void button")
    page.locator("#done").wait_for()
    row = page.locator(f"#record-{record}")
    assert "void" in row.get_attribute("class") and f"{record} void" in row.inner_text()
    with Store.open(clinic.store, readonly=True) as store:
        [voided] = [r for r in store.records(patient) if r.id == record]
    assert voided.voided
    csrf = page.locator("#void input[name=csrf]").get_attribute("value")
    answer = page.request.post(
        f"{clinic.url}/clinic/patients/{patient}/void",
        form={"record": record, "note": "", "csrf": csrf},
        max_redirects=0,
    )
    assert answer.status == 422 and "A note is needed" in answer.text()


def test_a_patient_is_re_enrolled_on_another_program(page: Any, clinic: Clinic) -> None:
    patient = _settled(clinic)
    _login(page, clinic, "clinician", f"/clinic/patients/{patient}")
    with Store.open(clinic.store, readonly=True) as store:
        target = next(p for p in store.programs() if p[0] != "low-back-pain")
    page.select_option("#reenroll select[name=program]", "@".join(target))
    page.fill("#reenroll input[name=start]", AS_OF.isoformat())
    page.fill("#reenroll textarea[name=note]", "moved to the tendon program after the scan")
    page.click("#reenroll button")
    page.locator("#done").wait_for()
    with Store.open(clinic.store, readonly=True) as store:
        program = store.program_of(patient)
    assert (program.id, program.version) == target
    assert f"{patient}: {program.title}" in page.inner_text("h1")
    assert f"Week 1 ({AS_OF.isoformat()} to " in page.inner_text("main")


def test_a_fixed_quarantined_line_is_reimported_and_marked_fixed(page: Any, clinic: Clinic) -> None:
    with Store.open(clinic.store, readonly=True) as store:
        [line] = [q for q in store.quarantined() if q.state == "waiting"]
    # (imported as one patient's file, the line did not name them: the fix must)
    fixed = json.dumps({**json.loads(line.text), "reps": [5], "patient": clinic.bad_line_of})
    _login(page, clinic, "clinician", "/clinic/quarantine")
    form = page.locator(f"#line-{line.id} form.reimport")
    form.locator("textarea[name=line]").fill(line.text)  # (unfixed: still set aside)
    form.locator("textarea[name=note]").fill("the app sent words")
    form.locator("button").click()
    assert "Not fixed" in page.inner_text("main") and "still waits" in page.inner_text("main")
    page.goto(clinic.url + "/clinic/quarantine")
    form = page.locator(f"#line-{line.id} form.reimport")
    form.locator("textarea[name=line]").fill(fixed)
    form.locator("textarea[name=note]").fill("five is 5: confirmed with the patient")
    form.locator("button").click()
    page.locator("#done").wait_for()
    row = page.locator(f"#line-{line.id}")
    assert "fixed" in row.locator("td.state").inner_text() and row.locator("form").count() == 0
    with Store.open(clinic.store, readonly=True) as store:
        assert [q.state for q in store.quarantined() if q.id == line.id] == ["fixed"]
        assert any(r.source.endswith("fixed") for r in store.records(clinic.bad_line_of))


def test_without_chromium_the_pdf_handout_is_a_page_saying_so_and_the_html_still_works(
    page: Any, clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient = _settled(clinic)
    address = f"{clinic.url}/clinic/patients/{patient}/handout"
    _login(page, clinic, "clinician", f"/clinic/patients/{patient}")
    monkeypatch.setenv("PROGRESSOR_CHROMIUM", "no-such-chromium")  # (the server's process)
    answer = page.goto(f"{address}?format=pdf")
    said = page.inner_text("main")
    assert answer.status == 503 and "no-such-chromium: no such executable" in said
    assert page.goto(address).status == 200 and "When to stop" in page.inner_text("body")
