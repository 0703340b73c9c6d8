"""`progressor serve`: a real server on 127.0.0.1, called over the socket with httpx."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

import progressor
from progressor.reading import read_log
from progressor.serve.app import create_app
from progressor.serve.limits import Limits
from progressor.serve.settings import ServeSettings
from progressor.serve.tokens import ROLES, create_token, digest
from progressor.store.batch import recompute
from progressor.store.database import Store
from tests.conftest import PROGRAMS, START, full_week
from tests.test_cli import run

SEED = PROGRAMS / "low-back-pain.toml"
MAX_BODY = 200_000
MAX_RECORDS = 60


@dataclass
class Service:
    url: str
    tokens: dict[str, str]
    log: list[str]

    def post(self, path: str, body: Any = None, role: str | None = "service", **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=30, **kw)


class _Lines(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tokens = tmp_path_factory.mktemp("serve") / "tokens.json"
    secrets = {role: create_token(tokens, role)[0] for role in ROLES}
    settings = ServeSettings(tokens=tokens, max_body=MAX_BODY, max_records=MAX_RECORDS)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    lines: list[str] = []
    handler = _Lines(lines)
    logging.getLogger("progressor.serve.access").addHandler(handler)
    logging.getLogger("progressor.serve.access").setLevel(logging.INFO)
    while not server.started:
        time.sleep(0.01)
    yield Service(f"http://127.0.0.1:{sock.getsockname()[1]}", secrets, lines)
    logging.getLogger("progressor.serve.access").removeHandler(handler)
    server.should_exit = True
    thread.join(10)


def _enrollment() -> progressor.Enrollment:
    return progressor.Enrollment(patient="p1", program="low-back-pain", start=START)


def _plain(model: Any) -> Any:
    return json.loads(model.model_dump_json())


def _first(seed: progressor.CompiledProgram) -> Any:
    return _plain(seed.first_week(_enrollment()))


def _python_step(seed: progressor.CompiledProgram, lines: list[str]) -> progressor.StepResult:
    log = read_log(lines, "records", "jsonl", today=dt.date.today())
    return seed.step(seed.first_week(_enrollment()), log.records)


# -- the stateless compute endpoints ---------------------------------------------------------


def test_step_answers_as_the_python_api(service: Service, seed: progressor.CompiledProgram) -> None:
    records = full_week()
    answer = service.post("/v1/step", {"prescription": _first(seed), "records": records})
    assert answer.status_code == 200, answer.text
    expected = _python_step(seed, [json.dumps(r) for r in records])
    body = answer.json()
    assert body["prescription"] == _plain(expected.prescription)
    assert body["decisions"] == [_plain(d) for d in expected.decisions]
    assert body["decisions"][0]["matches"]  # (every decision with its matched rules)
    assert body["alerts"] == [] and body["set_aside"] == []
    assert body["prescription"]["week"] == 2


def test_step_reads_jsonl_text_and_inline_toml(
    service: Service, seed: progressor.CompiledProgram
) -> None:
    text = "\n".join(json.dumps(r) for r in full_week()) + "\n"
    program = {"toml": SEED.read_text(encoding="utf-8")}
    body = {"program": program, "prescription": _first(seed), "records": text}
    answer = service.post("/v1/step", body)
    assert answer.status_code == 200, answer.text
    expected = _python_step(seed, text.split("\n"))
    assert answer.json()["prescription"] == _plain(expected.prescription)


def test_a_flare_pauses_and_alerts(service: Service, seed: progressor.CompiledProgram) -> None:
    records = [*full_week(), {"date": "2026-01-07", "kind": "pain", "pain": 8}]
    body = service.post("/v1/step", {"prescription": _first(seed), "records": records}).json()
    assert body["prescription"]["status"] == "paused"
    assert {a["rule"] for a in body["alerts"]} == {"pain-flare"}
    assert all(d["action"] == "pause" for d in body["decisions"])


def test_a_bad_record_is_set_aside_at_its_index_and_its_pain_still_pauses(
    service: Service, seed: progressor.CompiledProgram
) -> None:
    bad = {"date": "2026-01-07", "exercise": "bridge", "reps": "five", "pain_during": 9}
    records = [*full_week()[:3], bad, *full_week()[3:]]
    body = service.post("/v1/step", {"prescription": _first(seed), "records": records}).json()
    assert [s["at"] for s in body["set_aside"]] == ["records[3]"]
    assert body["set_aside"][0]["record"] == 3 and "reps" in body["set_aside"][0]["reason"]
    assert body["prescription"]["status"] == "paused"


def test_a_broken_jsonl_line_is_set_aside_at_its_line_and_its_pain_still_pauses(
    service: Service, seed: progressor.CompiledProgram
) -> None:
    lines = [json.dumps(r) for r in full_week()]
    lines.insert(1, '{"date": "2026-01-06", "kind": "pain", "pain": 9,')
    body = {"prescription": _first(seed), "records": "\n".join(lines)}
    answer = service.post("/v1/step", body).json()
    assert [(s["at"], s["line"]) for s in answer["set_aside"]] == [("records:2", 2)]
    assert answer["prescription"]["status"] == "paused"


def test_a_pain_given_twice_counts_at_its_worst(
    service: Service, seed: progressor.CompiledProgram
) -> None:
    # A JSON parser keeps the last of a repeated key; the reader must see both (9 wins).
    twice = '{"date": "2026-01-07", "kind": "pain", "pain": 9, "pain": 1}'
    body = json.dumps({"prescription": _first(seed), "records": []})
    body = body.replace('"records": []', f'"records": [{twice}]')
    answer = httpx.post(
        service.url + "/v1/step",
        content=body,
        headers={
            "Authorization": f"Bearer {service.tokens['service']}",
            "Content-Type": "application/json",
        },
    ).json()
    assert answer["prescription"]["status"] == "paused"
    assert answer["set_aside"][0]["at"] == "records[0]"


def test_replay_answers_as_the_python_api(
    service: Service, seed: progressor.CompiledProgram
) -> None:
    records = [*full_week(), *full_week(START + dt.timedelta(days=7))]
    records.append({"date": "2026-01-20", "kind": "pain", "pain": 8})  # (week 3, under way)
    as_of = START + dt.timedelta(days=15)
    body = {"enrollment": _plain(_enrollment()), "records": records, "as_of": str(as_of)}
    answer = service.post("/v1/replay", body)
    assert answer.status_code == 200, answer.text
    log = read_log([json.dumps(r) for r in records], "records", "jsonl", today=dt.date.today())
    timeline = progressor.fold(seed, _enrollment(), log.records, as_of=as_of)
    got = answer.json()
    assert [w["prescription"] for w in got["weeks"]] == [
        _plain(r.prescription) for r in timeline.results
    ]
    assert [w["decisions"] for w in got["weeks"]] == [
        [_plain(d) for d in r.decisions] for r in timeline.results
    ]
    assert got["current"] == _plain(timeline.current)
    assert got["early_alerts"] == [_plain(a) for a in timeline.early_alerts] != []
    assert got["waiting"] == 1


def test_an_unknown_program_names_the_known_ones(service: Service) -> None:
    enrollment = {**_plain(_enrollment()), "program": "low-back-pian"}
    answer = service.post("/v1/replay", {"enrollment": enrollment, "as_of": "2026-01-12"})
    assert answer.status_code == 422
    assert "did you mean 'low-back-pain'?" in answer.json()["detail"]


# -- problems ----------------------------------------------------------------------------------


def test_a_bad_program_is_a_problem_with_its_line_and_key(
    service: Service, seed: progressor.CompiledProgram
) -> None:
    text = SEED.read_text(encoding="utf-8").replace('"double"', '"dubble"', 1)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if '"dubble"' in t)
    body = {"program": {"toml": text}, "prescription": _first(seed), "records": []}
    answer = service.post("/v1/step", body)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "urn:progressor:problem:invalid-program"
    assert problem["problems"] == [
        {
            "message": "unknown strategy 'dubble'",
            "field": "program.toml",
            "key": "exercises[0].progression.strategy",
            "line": line,
            "suggestion": "did you mean 'double'?",
        }
    ]


def test_a_toml_syntax_error_names_its_line(
    service: Service, seed: progressor.CompiledProgram
) -> None:
    body = {"program": {"toml": 'id = "x"\nversion = \n'}, "prescription": _first(seed)}
    problem = service.post("/v1/step", body).json()
    assert problem["status"] == 422 and problem["problems"][0]["line"] == 2


def test_an_invalid_request_locates_each_field(service: Service) -> None:
    answer = service.post("/v1/step", {"prescription": {"week": 0}, "records": []})
    assert answer.status_code == 422
    fields = {p["field"] for p in answer.json()["problems"]}
    assert {"prescription.week", "prescription.patient"} <= fields


def test_a_start_at_the_end_of_the_calendar_is_a_located_problem(
    service: Service, seed: progressor.CompiledProgram
) -> None:
    first = _plain(seed.first_week(_enrollment()))
    answer = service.post(
        "/v1/step", {"prescription": {**first, "start": "9999-12-31"}, "records": []}
    )
    assert answer.status_code == 422  # (week 1's end overflowed a date: a 500)
    assert [p["field"] for p in answer.json()["problems"]] == ["prescription.start"]


def test_a_program_given_two_ways_is_a_located_problem(
    service: Service, seed: progressor.CompiledProgram
) -> None:
    body = {"program": {"id": "low-back-pain", "toml": "x"}, "prescription": _first(seed)}
    [problem] = service.post("/v1/step", body).json()["problems"]
    assert problem == {
        "field": "program",
        "message": "give the program's id (and version), or its toml, not both",
    }


def test_bad_json_is_a_400_problem(service: Service) -> None:
    headers = {"Authorization": f"Bearer {service.tokens['service']}"}
    answer = httpx.post(
        service.url + "/v1/step",
        content=b'{"prescription": ',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["type"] == "urn:progressor:problem:bad-json"


def test_an_unexpected_error_is_a_500_problem_without_internals(tmp_path: Path) -> None:
    app = create_app(ServeSettings(tokens=tmp_path / "tokens.json"))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    answer = _in_process(app, "/boom")
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert "secret" not in answer.text and "Traceback" not in answer.text


def test_a_request_that_takes_too_long_is_a_503_problem() -> None:
    async def never(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.Event().wait()

    answer = _in_process(Limits(never, max_body=100, timeout_s=0.05), "/")
    assert answer.status_code == 503
    assert answer.json()["type"] == "urn:progressor:problem:timeout"


def _in_process(app: Any, path: str) -> httpx.Response:
    """A GET of `app` without a server (for what a real server cannot be made to do)."""

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(get())


# -- security ----------------------------------------------------------------------------------


def test_no_token_or_an_unknown_one_is_401(service: Service) -> None:
    for headers in ({}, {"Authorization": "Bearer prg_nope"}, {"Authorization": "Basic x"}):
        answer = httpx.post(service.url + "/v1/step", json={}, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.json()["type"] == "urn:progressor:problem:unauthorized"


def test_readonly_may_not_compute(service: Service, seed: progressor.CompiledProgram) -> None:
    body = {"prescription": _first(seed), "records": []}
    assert service.post("/v1/step", body, role="readonly").status_code == 403
    assert service.post("/v1/step", body, role="clinician").status_code == 200


def test_a_body_over_the_limit_is_413(service: Service) -> None:
    answer = service.post("/v1/step", {"records": "x" * MAX_BODY})
    assert answer.status_code == 413
    assert answer.json()["type"] == "urn:progressor:problem:too-large"


def test_a_streamed_body_over_the_limit_is_413(service: Service) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"records": "'
        yield b"x" * MAX_BODY
        yield b'"}'

    headers = {"Authorization": f"Bearer {service.tokens['service']}"}
    answer = httpx.post(service.url + "/v1/step", content=chunks(), headers=headers)
    assert answer.status_code == 413


def test_more_records_than_the_limit_is_413(
    service: Service, seed: progressor.CompiledProgram
) -> None:
    records = full_week() * 7  # 63 records
    answer = service.post("/v1/step", {"prescription": _first(seed), "records": records})
    assert answer.status_code == 413
    assert answer.json()["type"] == "urn:progressor:problem:too-many-records"


def test_health_and_readiness_need_no_token(service: Service) -> None:
    assert httpx.get(service.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(service.url + "/readyz").json()
    assert ready["status"] == "ready" and ready["programs"] >= 4


def test_not_ready_when_the_store_cannot_be_opened(tmp_path: Path) -> None:
    settings = ServeSettings(tokens=tmp_path / "t.json", store=tmp_path / "missing.db")
    answer = _in_process(create_app(settings), "/readyz")
    assert answer.status_code == 503
    assert "missing.db" not in answer.text


def test_the_openapi_document_lists_the_endpoints(service: Service) -> None:
    document = httpx.get(service.url + "/openapi.json").json()
    assert {"/v1/step", "/v1/replay", "/healthz", "/readyz"} <= set(document["paths"])
    assert httpx.get(service.url + "/docs").status_code == 200


def test_the_access_log_has_no_pain_values(
    service: Service, seed: progressor.CompiledProgram
) -> None:
    records = [{"date": "2026-01-07", "kind": "pain", "pain": 8, "note": "private words"}]
    service.post("/v1/step", {"prescription": _first(seed), "records": records})
    deadline = time.monotonic() + 5
    while not any(json.loads(e)["path"] == "/v1/step" for e in service.log):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    entries = [json.loads(line) for line in service.log]
    assert set(entries[-1]) == {"time", "method", "path", "status", "duration_ms", "token", "role"}
    assert any(e["token"] == "service-1" and e["role"] == "service" for e in entries)
    text = "\n".join(service.log)
    assert "pain" not in text and "private" not in text and ": 8," not in text


# -- tokens ------------------------------------------------------------------------------------


def test_token_create_prints_the_token_once_and_keeps_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    done = run("token", "create", "--role", "clinician", "--name", "dr-a", "--tokens", str(path))
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("prg_") and secret not in path.read_text(encoding="utf-8")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    [entry] = json.loads(path.read_text(encoding="utf-8"))["tokens"]
    assert entry["sha256"] == digest(secret)
    assert (entry["name"], entry["role"]) == ("dr-a", "clinician") and entry["created"]
    again = run("token", "create", "--role", "service", "--name", "dr-a", "--tokens", str(path))
    assert again.returncode == 1 and "exists already" in again.stderr


def test_serve_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    done = run("serve", "--tokens", str(tmp_path / "none.json"), "--port", "0")
    assert done.returncode == 1
    assert "progressor token create" in done.stderr


def test_serve_refuses_a_bad_program(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('id = "x"\nversion = \n', encoding="utf-8")
    create_token(tmp_path / "t.json", "service")
    done = run("serve", "--programs", str(tmp_path), "--tokens", str(tmp_path / "t.json"))
    assert done.returncode == 1
    assert "bad.toml:2" in done.stderr


def test_an_app_is_a_fastapi_app(tmp_path: Path) -> None:
    assert isinstance(create_app(ServeSettings(tokens=tmp_path / "t.json")), FastAPI)


# -- docs/serve.md: every curl example, against `progressor serve` -----------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "serve.md"
_BLOCK = re.compile(r"```(sh|json)\n(.*?)```", re.S)


def _examples() -> list[tuple[str, Any]]:
    """Each ```sh block that runs curl, with the ```json block after it (what it shows)."""
    blocks = _BLOCK.findall(DOC.read_text(encoding="utf-8"))
    return [
        (code, json.loads(blocks[i + 1][1]))
        for i, (kind, code) in enumerate(blocks)
        if kind == "sh" and code.lstrip().startswith("curl")
    ]


def _shown_in(shown: Any, answer: Any, where: str = "answer") -> None:
    """What the docs show (abridged) is in the answer: keys, list items from the first, values."""
    if isinstance(shown, dict):
        assert isinstance(answer, dict), where
        for key, value in shown.items():
            assert key in answer, f"{where}: no {key!r}"
            _shown_in(value, answer[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert isinstance(answer, list) and len(answer) >= len(shown), where
        if not shown:
            assert answer == [], where
        for i, item in enumerate(shown):
            _shown_in(item, answer[i], f"{where}[{i}]")
    else:
        assert shown == answer, f"{where}: {answer!r}, not {shown!r} as the docs say"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, str]]]:
    """`progressor serve` through the real entry point, on a free port."""
    tokens = tmp_path_factory.mktemp("served") / "tokens.json"
    secrets = {role: create_token(tokens, role)[0] for role in ("service", "readonly")}
    secrets["clinician"] = create_token(tokens, "clinician", "dr-lee")[0]
    store = _docs_clinic(tokens.with_name("clinic.db"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = Path(sys.executable).with_name("progressor")
    server = subprocess.Popen(
        [str(script), "serve", "--tokens", str(tokens), "--port", str(port), "--store", store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[1]
            assert time.monotonic() < deadline, "progressor serve did not start"
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield port, secrets
    finally:
        server.terminate()
        server.communicate(timeout=30)


def _docs_clinic(path: Path) -> str:
    """The store of the docs' examples: anna steady and ben with a pain of 8 in week 2, both
    from 2026-01-05, computed as of 2026-01-19 (ben waits in the review queue, paused)."""
    text = SEED.read_text(encoding="utf-8")
    program = progressor.parse_program(text)
    with Store.init(path) as store:
        store.add_program(program, text)
        for patient in ("anna", "ben"):
            enrollment = progressor.Enrollment(patient=patient, program=program.id, start=START)
            store.enroll(enrollment, program)
        weeks = [*full_week(), *full_week(START + dt.timedelta(days=7))]
        rows = [{**r, "patient": p} for p in ("anna", "ben") for r in weeks]
        rows.append({"patient": "ben", "date": "2026-01-14", "kind": "pain", "pain": 8})
        store.import_records([json.dumps(r) for r in rows], "clinic.jsonl", today=dt.date.today())
    recompute(path, as_of=dt.date(2026, 1, 19))
    return str(path)


def test_the_docs_have_curl_examples() -> None:
    assert len(_examples()) >= 7


@pytest.mark.parametrize("number", range(len(_examples())))
def test_the_docs_curl_example_runs(number: int, served: tuple[int, dict[str, str]]) -> None:
    code, shown = _examples()[number]
    port, secrets = served
    env = {
        **os.environ,
        "TOKEN": secrets["service"],
        "READONLY_TOKEN": secrets["readonly"],
        "CLINICIAN_TOKEN": secrets["clinician"],
    }
    done = subprocess.run(
        ["sh", "-c", code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    _shown_in(shown, json.loads(done.stdout))


@pytest.mark.parametrize(
    ("body", "slug"),
    [(b'{"records": "\xff\xfe"}', "bad-encoding"), (b"[" * 100_000 + b"]" * 100_000, "bad-json")],
)
def test_a_body_that_cannot_be_read_is_its_own_problem(
    service: Service, body: bytes, slug: str
) -> None:
    # (FastAPI's body parsing makes any error a bare 400 "There was an error parsing the body")
    headers = {"Authorization": f"Bearer {service.tokens['service']}"}
    for path in ("/v1/step", "/v1/replay"):
        answer = httpx.post(
            service.url + path,
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert answer.status_code == 400
        assert answer.json()["type"] == f"urn:progressor:problem:{slug}"


def test_without_a_token_a_bad_body_is_not_read(service: Service) -> None:
    answer = httpx.post(
        service.url + "/v1/step",
        content=b'{"prescription": ',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 401  # (not 400: nothing is parsed for a caller without one)
