"""`progressor serve --store`: the store's endpoints on a real server on 127.0.0.1, over a
synthetic clinic: enroll, records, results, the review queue page by page, clinician actions."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
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
from progressor.serve.app import create_app
from progressor.serve.settings import ServeSettings
from progressor.serve.tokens import create_token
from progressor.store.batch import recompute
from progressor.store.database import Store
from progressor.store.queue import item_json
from progressor.synth import synthesize_into_store
from tests.conftest import PROGRAMS, START, full_week

WEEKS = 4
AS_OF = START + dt.timedelta(days=7 * WEEKS)
NAMES = {"service": "clinic-app", "clinician": "dr-lee", "readonly": "dashboard"}


@dataclass
class Clinic:
    url: str
    store: Path
    tokens: dict[str, str]

    def _headers(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}

    def get(self, path: str, role: str | None = "readonly", **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers=self._headers(role), timeout=30, **kw)

    def post(self, path: str, body: Any = None, role: str | None = "clinician") -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers=self._headers(role), timeout=30)

    def send(self, path: str, text: str, media: str, role: str = "service") -> httpx.Response:
        headers = {**self._headers(role), "Content-Type": media}
        return httpx.post(self.url + path, content=text.encode(), headers=headers, timeout=30)


def _programs() -> list[tuple[progressor.CompiledProgram, str]]:
    engine = progressor.Engine()
    texts = [(PROGRAMS / n).read_text(encoding="utf-8") for n in ("low-back-pain.toml",)]
    texts.append((PROGRAMS / "achilles-tendinopathy.toml").read_text(encoding="utf-8"))
    return [(engine.compile(progressor.parse_program(t)), t) for t in texts]


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    """A synthetic clinic (40 patients, two programs, four weeks computed) served on a free port."""
    folder = tmp_path_factory.mktemp("clinic")
    store = folder / "clinic.db"
    with Store.init(store) as opened:
        synthesize_into_store(opened, _programs(), 40, WEEKS, seed=3, start=START)
    recompute(store, as_of=AS_OF)
    tokens = folder / "tokens.json"
    secrets = {role: create_token(tokens, role, name)[0] for role, name in NAMES.items()}
    settings = ServeSettings(tokens=tokens, store=store, max_records=100)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield Clinic(f"http://127.0.0.1:{sock.getsockname()[1]}", store, secrets)
    server.should_exit = True
    thread.join(10)


def _queue(clinic: Clinic, query: str = "") -> list[dict[str, Any]]:
    """Every item of the queue, following the next links."""
    items: list[dict[str, Any]] = []
    path: str | None = "/v1/review?limit=4" + query
    while path is not None:
        page = clinic.get(path).json()
        items.extend(page["items"])
        path = page["next"]
    return items


def _problem(answer: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    assert problem["type"] == f"urn:progressor:problem:{slug}"
    return problem


# -- the review queue ----------------------------------------------------------------------------


def test_the_queue_pages_through_what_the_store_lists(clinic: Clinic) -> None:
    first = clinic.get("/v1/review?limit=4").json()
    with Store.open(clinic.store, readonly=True) as store:
        queue = store.review_queue()
    assert first["total"] == len(queue) > 4 and len(first["items"]) == 4
    assert first["next"] == "/v1/review?offset=4&limit=4"
    # The same items, with the same fields, as `progressor review --json` gives.
    assert _queue(clinic) == [item_json(i) for i in queue]


def test_the_queue_filters_as_the_command_line_does(clinic: Clinic) -> None:
    paused = _queue(clinic, "&status=paused")
    assert paused and all(i["paused"] for i in paused)
    one = _queue(clinic, "&status=flagged")[0]
    program, flag = one["program"], one["flags"][0]
    with Store.open(clinic.store, readonly=True) as store:
        page = store.review_page(status="flagged", program=program, flag=flag)
    got = _queue(clinic, f"&status=flagged&program={program}&flag={flag}")
    assert got == [item_json(i) for i in page.items] != []


def test_a_bad_filter_is_a_located_problem(clinic: Clinic) -> None:
    problem = _problem(clinic.get("/v1/review?status=pased"), 422, "invalid-request")
    assert problem["problems"][0]["field"] == "query.status"
    _problem(clinic.get("/v1/review?limit=0"), 422, "invalid-request")


# -- clinician actions ---------------------------------------------------------------------------


def test_a_clinician_resumes_as_themselves_and_the_patient_leaves_the_queue(
    clinic: Clinic,
) -> None:
    patient = _queue(clinic, "&status=paused")[0]["patient"]
    note = {"note": "phoned: the flare settled"}
    _problem(clinic.post(f"/v1/patients/{patient}/resume", note, role="readonly"), 403, "forbidden")
    _problem(clinic.post(f"/v1/patients/{patient}/resume", note, role="service"), 403, "forbidden")
    _problem(clinic.post(f"/v1/patients/{patient}/resume", note, role=None), 401, "unauthorized")
    forged = clinic.post(f"/v1/patients/{patient}/resume", {**note, "who": "dr-someone-else"})
    assert _problem(forged, 422, "invalid-request")["problems"][0]["field"] == "who"
    answer = clinic.post(f"/v1/patients/{patient}/resume", note)
    assert answer.status_code == 201, answer.text
    [action] = answer.json()
    assert (action["kind"], action["who"], action["note"]) == ("resume", "dr-lee", note["note"])
    assert patient not in {i["patient"] for i in _queue(clinic)}
    again = _problem(clinic.post(f"/v1/patients/{patient}/resume", note), 409, "conflict")
    assert "already recorded" in again["detail"]
    [stored] = clinic.get(f"/v1/patients/{patient}/actions").json()
    assert stored == action


def test_an_acknowledgement_settles_a_flagged_patient(clinic: Clinic) -> None:
    flagged = [i for i in _queue(clinic, "&status=flagged") if i["week"] > 0]
    patient = flagged[-1]["patient"]
    answer = clinic.post(f"/v1/patients/{patient}/acknowledge", {"note": "called: fine"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["who"] == "dr-lee"
    assert patient not in {i["patient"] for i in _queue(clinic)}


def test_acting_on_a_patient_with_nothing_to_settle_is_a_conflict(clinic: Clinic) -> None:
    calm = _calm_patient(clinic)
    problem = _problem(clinic.post(f"/v1/patients/{calm}/resume", {"note": "x"}), 409, "conflict")
    assert "nothing to resume" in problem["detail"]


def test_an_override_is_checked_against_the_program(clinic: Clinic) -> None:
    calm = _calm_patient(clinic)
    dose = {"sets": 1, "reps": 4, "hold_s": 5}
    body = {"exercise": "bridge", "dose": dose, "note": "sore after gardening"}
    answer = clinic.post(f"/v1/patients/{calm}/override", body)
    assert answer.status_code == 201, answer.text
    recorded = answer.json()
    assert ({k: v for k, v in recorded["dose"].items() if v is not None}, recorded["who"]) == (
        dose,
        "dr-lee",
    )
    high = {**body, "dose": {**dose, "reps": 400}}
    assert (
        "ceiling"
        in _problem(clinic.post(f"/v1/patients/{calm}/override", high), 422, "refused")["detail"]
    )
    typo = {**body, "exercise": "brige"}
    assert (
        "no exercise 'brige'"
        in _problem(clinic.post(f"/v1/patients/{calm}/override", typo), 422, "refused")["detail"]
    )


def _calm_patient(clinic: Clinic) -> str:
    """A low-back-pain patient not in the queue, with no alert."""
    waiting = {i["patient"] for i in _queue(clinic)}
    with Store.open(clinic.store, readonly=True) as store:
        return next(
            p
            for p in (f"p{n:04d}" for n in range(2, 41, 2))  # (even numbers: the seed program)
            if p not in waiting and not store.alerts(p) and not store.actions(p)
        )


# -- enroll, records, results --------------------------------------------------------------------


def test_a_start_at_the_end_of_the_calendar_is_refused_at_its_field(clinic: Clinic) -> None:
    enrollment = {"patient": "zoe", "program": "low-back-pain", "start": "9999-12-31"}
    answer = clinic.post("/v1/patients", enrollment, role="service")
    _problem(answer, 422, "invalid-request")  # (it was a 500: the Enrollment refused it)
    assert [p["field"] for p in answer.json()["problems"]] == ["start"]


def test_a_body_that_is_not_text_is_bad_json_on_every_endpoint(clinic: Clinic) -> None:
    headers = {"Authorization": f"Bearer {clinic.tokens['clinician']}"}
    for path in ("/v1/patients", "/v1/patients/anna/resume", "/v1/fhir/careplan"):
        answer = httpx.post(
            clinic.url + path,
            content=b'{"patient": "\xff\xfe"}',
            headers={**headers, "Content-Type": "application/json"},
        )
        _problem(answer, 400, "bad-json")  # (not FastAPI's "there-was-an-error-parsing-the-body")


def test_enroll_post_records_recompute_and_read_the_results(clinic: Clinic) -> None:
    enrollment = {"patient": "zoe", "program": "low-back-pain", "start": str(START)}
    added = clinic.post("/v1/patients", enrollment, role="service")
    assert added.status_code == 201, added.text
    assert added.json() == {**enrollment, "version": "1.0.0", "added": True}
    assert clinic.post("/v1/patients", enrollment, role="service").json()["added"] is False
    other = {**enrollment, "start": "2026-02-02"}
    _problem(clinic.post("/v1/patients", other, role="service"), 409, "conflict")
    _problem(clinic.post("/v1/patients", enrollment, role="readonly"), 403, "forbidden")

    bad = {"date": "2026-01-07", "exercise": "bridge", "reps": "five", "pain_during": 9}
    someone = {"date": "2026-01-07", "kind": "pain", "pain": 1, "patient": "p0001"}
    records = [*full_week(), bad, someone]
    answer = clinic.post("/v1/patients/zoe/records", records, role="service")
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert (got["added"], got["duplicates"]) == (len(full_week()) + 1, 0)  # (bad's pain kept)
    assert [s["at"] for s in got["set_aside"]] == ["records[9]", "records[10]"]
    assert "sent for patient 'zoe'" in got["set_aside"][1]["reason"]
    again = clinic.post("/v1/patients/zoe/records", records, role="service").json()
    assert again["added"] == 0 and again["duplicates"] == len(full_week()) + 1

    # Week 1 is stored at enrolment (its first prescription, before any record counts).
    first = clinic.get("/v1/patients/zoe/prescription").json()
    assert (first["week"], first["status"]) == (1, "active")
    recompute(clinic.store, as_of=START + dt.timedelta(days=7), patients=["zoe"])
    with Store.open(clinic.store, readonly=True) as store:
        stored = store.prescriptions("zoe")
        decided = store.decisions("zoe", 1)
    newest = clinic.get("/v1/patients/zoe/prescription").json()
    assert newest == json.loads(stored[-1].model_dump_json())
    assert newest["status"] == "paused"  # the pain of 9 kept of the set-aside record
    assert clinic.get("/v1/patients/zoe/prescription?week=1").json()["week"] == 1
    _problem(clinic.get("/v1/patients/zoe/prescription?week=9"), 404, "no-such-week")
    assert [p["week"] for p in clinic.get("/v1/patients/zoe/history").json()] == [1, 2]
    week1 = clinic.get("/v1/patients/zoe/decisions?week=1").json()
    assert week1 == [{"week": 1, "decision": json.loads(d.model_dump_json())} for _, d in decided]
    assert "zoe" in {i["patient"] for i in _queue(clinic, "&status=paused")}


def test_records_may_be_jsonl_or_csv(clinic: Clinic) -> None:
    enrollment = {"patient": "yan", "program": "low-back-pain", "start": str(START)}
    assert clinic.post("/v1/patients", enrollment, role="service").status_code == 201
    week = full_week(START + dt.timedelta(days=7))
    jsonl = "\n".join(json.dumps(r) for r in week[:3]) + '\n{"date": "2026-01-13",\n'
    answer = clinic.send("/v1/patients/yan/records", jsonl, "application/x-ndjson")
    got = answer.json()
    assert got["added"] == 3 and [s["at"] for s in got["set_aside"]] == ["records:4"]
    out = io.StringIO()
    writer = csv.DictWriter(out, ["date", "exercise", "reps", "hold_s", "pain_before"])
    writer.writeheader()
    writer.writerow(
        {**{k: week[3][k] for k in ("date", "exercise", "hold_s")}, "reps": 5, "pain_before": 2}
    )
    answer = clinic.send("/v1/patients/yan/records", out.getvalue(), "text/csv; charset=utf-8")
    assert answer.status_code == 200 and answer.json()["added"] == 1, answer.text


def test_a_records_body_is_bounded_and_typed(clinic: Clinic) -> None:
    many = full_week() * 12  # 108 records, over the fixture's 100
    _problem(
        clinic.post("/v1/patients/p0001/records", many, role="service"), 413, "too-many-records"
    )
    answer = clinic.send("/v1/patients/p0001/records", "x", "application/xml")
    _problem(answer, 415, "unsupported-media-type")
    answer = clinic.send("/v1/patients/p0001/records", "[", "application/json")
    _problem(answer, 400, "bad-json")


def test_an_unknown_patient_is_404_with_a_close_one(clinic: Clinic) -> None:
    for answer in (
        clinic.get("/v1/patients/p0O12/prescription"),
        clinic.get("/v1/patients/p0O12/decisions"),
        clinic.post("/v1/patients/p0O12/records", [], role="service"),
        clinic.post("/v1/patients/p0O12/acknowledge", {"note": "x"}),
    ):
        problem = _problem(answer, 404, "unknown-patient")
        assert problem["problems"] == [
            {
                "message": "patient 'p0O12' is not enrolled",
                "field": "patient",
                "suggestion": "did you mean 'p0012'?",
            }
        ]


def test_readonly_reads_and_nobody_without_a_token(clinic: Clinic) -> None:
    assert clinic.get("/v1/patients/p0002/history").status_code == 200
    _problem(clinic.get("/v1/review", role=None), 401, "unauthorized")
    assert clinic.get("/v1/review", role="service").status_code == 200


def test_the_openapi_document_lists_the_store_endpoints(clinic: Clinic) -> None:
    paths = set(httpx.get(clinic.url + "/openapi.json").json()["paths"])
    assert {
        "/v1/review",
        "/v1/patients",
        "/v1/patients/{patient}/records",
        "/v1/patients/{patient}/prescription",
        "/v1/patients/{patient}/resume",
    } <= paths


def test_without_a_store_the_store_endpoints_answer_503(tmp_path: Path) -> None:
    token, _ = create_token(tmp_path / "t.json", "readonly")
    app = create_app(ServeSettings(tokens=tmp_path / "t.json"))

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/v1/review", headers={"Authorization": f"Bearer {token}"})

    problem = _problem(asyncio.run(get()), 503, "no-store")
    assert "--store" in problem["detail"]
