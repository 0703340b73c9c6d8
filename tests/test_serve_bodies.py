"""progressor.serve.bodies: the compute routes' body read once, its records as they were sent;
and POST /v1/step computed on the event loop or, for a bulk of records, in the threadpool."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.concurrency import run_in_threadpool

import progressor
from progressor.serve import compute
from progressor.serve.app import create_app
from progressor.serve.bodies import RawRecord, record_line, records_first
from progressor.serve.settings import ServeSettings
from progressor.serve.tokens import create_token
from tests.conftest import PROGRAMS, START


@pytest.mark.parametrize(
    "text",
    [
        '{"prescription": {"week": 1}, "records": [{"pain": 3}, 4, "x", [1, {"a": null}]]}',
        ' \n{ "records" : [ ] , "as_of" : "2026-01-01" }\n ',
        '{"records": "{\\"pain\\": 3}\\n"}',
        "{}",
    ],
)
def test_a_plain_body_reads_as_json_loads_reads_it(text: str) -> None:
    found = records_first(text)
    assert found is not None
    assert {k: _loaded(v) for k, v in found.items()} == json.loads(text)


def _loaded(value: Any) -> Any:
    if isinstance(value, list):
        assert all(type(item) is RawRecord for item in value)
        return [json.loads(item) for item in value]
    return value


def test_each_record_is_the_text_it_was_sent_as_on_one_line() -> None:
    text = '{"records": [{"pain": 9,\r\n  "pain": 1} ,{"note": "a \\"b\\": c"}]}'
    found = records_first(text)
    assert found is not None
    assert found["records"] == ['{"pain": 9,    "pain": 1}', '{"note": "a \\"b\\": c"}']
    assert [record_line(r) for r in found["records"]] == found["records"]


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"a": 1 "b": 2}',
        "{[1]: 2}",
        '{"a": 1, {"b": 2}: 3}',
        '{"records": [1,]}',
        '{"records": [1 2]}',
        '{"a": 1,}',
        '{"a": 1} {}',
        '{"a": 1',
        "",
    ],
)
def test_a_body_that_is_not_plain_goes_to_the_general_parse(text: str) -> None:
    assert records_first(text) is None


def test_a_key_given_twice_at_the_top_is_bad_json(tmp_path: Path) -> None:
    # (a JSON parser keeps the last: the second list would hide the first one's pain of 9)
    app, token, first = _service(tmp_path)
    pain = f'{{"date": "{START}", "kind": "pain", "pain": 9}}'
    body = f'{{"prescription": {first}, "records": [{pain}], "records": []}}'
    answer = asyncio.run(_post(app, "/v1/step", body, token))
    assert answer.status_code == 400
    assert answer.json()["type"] == "urn:progressor:problem:bad-json"
    assert "the key 'records' is given twice" in answer.json()["detail"]


def _service(tmp_path: Path) -> tuple[Any, str, str]:
    """An app in process, a service token, and the seed program's first week as JSON."""
    tokens = tmp_path / "tokens.json"
    token, _ = create_token(tokens, "service")
    app = create_app(ServeSettings(tokens=tokens))
    compiled = progressor.Engine().compile(progressor.load_program(PROGRAMS / "low-back-pain.toml"))
    enrollment = progressor.Enrollment(patient="p", program=compiled.program.id, start=START)
    return app, token, compiled.first_week(enrollment).model_dump_json()


def test_a_record_sent_over_several_lines_keeps_its_pain_given_twice(tmp_path: Path) -> None:
    app, token, first = _service(tmp_path)
    twice = f'{{"date": "{START}",\n "kind": "pain",\n "pain": 9,\n "pain": 1}}'
    body = f'{{"prescription": {first},\n "records": [\n{twice}\n]}}'
    answer = asyncio.run(_post(app, "/v1/step", body, token)).json()
    assert answer["prescription"]["status"] == "paused"
    assert answer["set_aside"][0]["at"] == "records[0]"


async def _post(app: Any, path: str, body: str, token: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        return await client.post(path, content=body, headers=headers)


def test_a_bulk_of_records_is_stepped_in_the_threadpool_with_the_same_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, token, first = _service(tmp_path)
    pains = [{"date": str(START), "kind": "pain", "pain": 2}] * (compute.INLINE_RECORDS + 1)
    pains.append({"date": str(START), "kind": "pain", "pain": "9/10"})
    body = f'{{"prescription": {first}, "records": {json.dumps(pains)}}}'
    handed: list[object] = []
    to_thread = run_in_threadpool

    async def counted(*args: Any) -> Any:
        handed.append(args[0])
        return await to_thread(*args)

    monkeypatch.setattr(compute, "run_in_threadpool", counted)
    threaded = asyncio.run(_post(app, "/v1/step", body, token))
    monkeypatch.setattr(compute, "INLINE_RECORDS", len(pains))
    inline = asyncio.run(_post(app, "/v1/step", body, token))
    assert len(handed) == 1  # (the bulk went to the threadpool, the same body inline did not)
    assert threaded.status_code == inline.status_code == 200
    assert threaded.json() == inline.json()
    assert threaded.json()["prescription"]["status"] == "paused"
