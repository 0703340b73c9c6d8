"""progressor.serve.direct: POST /v1/step's usual request answered without FastAPI's
dependency walk, every other request by FastAPI's handler, with the same answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi.routing import APIRoute

import progressor
from progressor.serve import compute
from progressor.serve.app import create_app
from progressor.serve.direct import _plain_shape
from progressor.serve.settings import ServeSettings
from progressor.serve.tokens import create_token
from tests.conftest import PROGRAMS, START, full_week

JSON = "application/json"
#: The same media type, said so that FastAPI's handler answers (progressor.serve.direct
#: takes the usual `application/json` only).
JSON_UTF8 = "application/json; charset=utf-8"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, str], Any]:
    """An app in process, a token of each role, and the seed program's first week."""
    tokens = tmp_path_factory.mktemp("direct") / "tokens.json"
    secrets = {role: create_token(tokens, role)[0] for role in ("service", "readonly")}
    app = create_app(ServeSettings(tokens=tokens))
    compiled = progressor.Engine().compile(progressor.load_program(PROGRAMS / "low-back-pain.toml"))
    enrollment = progressor.Enrollment(patient="p", program=compiled.program.id, start=START)
    return app, secrets, json.loads(compiled.first_week(enrollment).model_dump_json())


def _post(app: Any, body: str, headers: dict[str, str], path: str = "/v1/step") -> httpx.Response:
    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(path, content=body, headers=headers)

    return asyncio.run(post())


def _headers(token: str | None, media_type: str) -> dict[str, str]:
    bearer = {"Authorization": f"Bearer {token}"} if token else {}
    return {**bearer, "Content-Type": media_type}


def _week_body(first: Any) -> str:
    records: list[Any] = full_week()
    records.append({"date": str(START), "kind": "pain", "pain": "8/10"})  # (set aside, kept)
    return json.dumps({"prescription": first, "records": records})


def test_the_usual_step_skips_fastapis_dependency_walk(
    served: tuple[Any, dict[str, str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, tokens, first = served
    walks: list[object] = []
    walk = fastapi.routing.solve_dependencies

    async def counted(**kw: Any) -> Any:
        walks.append(kw["dependant"].call)
        return await walk(**kw)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    answer = _post(app, _week_body(first), _headers(tokens["service"], JSON))
    assert answer.status_code == 200
    assert walks == []
    fallback = _post(app, _week_body(first), _headers(tokens["service"], JSON_UTF8))
    assert fallback.status_code == 200
    assert len(walks) == 1  # (another content type: FastAPI's handler)


def test_the_direct_answer_is_fastapis_byte_for_byte(
    served: tuple[Any, dict[str, str], Any],
) -> None:
    app, tokens, first = served
    direct = _post(app, _week_body(first), _headers(tokens["service"], JSON))
    general = _post(app, _week_body(first), _headers(tokens["service"], JSON_UTF8))
    assert direct.status_code == general.status_code == 200
    assert direct.content == general.content
    assert direct.headers["content-type"] == general.headers["content-type"]
    assert direct.json()["prescription"]["status"] == "paused"  # (the set-aside 8/10 counted)
    assert direct.json()["set_aside"][0]["at"] == "records[9]"


@pytest.mark.parametrize(
    ("body", "role", "status"),
    [
        ('{"prescription": {"week": 0}, "records": []}', "service", 422),  # (not valid)
        ('{"records": [1,]}', "service", 400),  # (not JSON)
        ('{"records": [1,]}', None, 401),  # (the token comes before the body is read)
        ('{"records": []}', None, 401),
        ('{"records": []}', "readonly", 403),  # (the role comes before the body's validity)
        ("[]", "service", 422),
        ('{"prescription": 1, "records": [], "records": []}', "service", 400),
    ],
)
def test_every_other_request_gets_fastapis_answer(
    served: tuple[Any, dict[str, str], Any], body: str, role: str | None, status: int
) -> None:
    app, tokens, _ = served
    token = tokens[role] if role else None
    direct = _post(app, body, _headers(token, JSON))
    general = _post(app, body, _headers(token, JSON_UTF8))
    assert direct.status_code == general.status_code == status
    assert direct.json() == general.json()


def test_a_dependency_overridden_goes_to_fastapis_handler(
    served: tuple[Any, dict[str, str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _, first = served
    [check] = [d.call for d in _route("/v1/step").dependant.dependencies]
    monkeypatch.setitem(app.dependency_overrides, check, lambda: None)
    answer = _post(app, _week_body(first), _headers(None, JSON))  # (no token: the override)
    assert answer.status_code == 200


def test_only_an_async_route_of_the_plain_shape_is_answered_directly() -> None:
    assert _plain_shape(_route("/v1/step"))
    assert not _plain_shape(_route("/v1/replay"))  # (a plain def: FastAPI's threadpool)


def _route(path: str) -> APIRoute:
    [route] = [r for r in compute.router.routes if isinstance(r, APIRoute) and r.path == path]
    return route


def test_the_openapi_document_still_describes_the_step(
    served: tuple[Any, dict[str, str], Any],
) -> None:
    app, _, _ = served
    operation = app.openapi()["paths"]["/v1/step"]["post"]
    assert operation["requestBody"]["content"][JSON]["schema"]["$ref"].endswith("StepRequest")
    assert operation["responses"]["200"]["content"][JSON]["schema"]["$ref"].endswith("StepResponse")
    assert "422" in operation["responses"] and "401" in operation["responses"]
