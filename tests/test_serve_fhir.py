"""FHIR over HTTP (progressor.serve.fhir) on a real server: a Bundle in, FHIR resources out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.plandefinition import PlanDefinition

import progressor
from progressor.fhir import care_plan, plan_definition
from progressor.store.database import Store
from tests.conftest import PROGRAMS, START, full_week
from tests.serving import Served, serving
from tests.test_fhir import bundle

SEED = PROGRAMS / "low-back-pain.toml"
FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def stateless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("fhir")) as served:
        yield served


def test_more_observations_than_the_limit_are_refused(tmp_path: Path) -> None:
    with serving(tmp_path, max_records=3) as served:
        answer = _send(served, [_pain("2026-01-06", 3)] * 4)
        assert (answer.status_code, answer.json()["type"]) == (
            413,
            "urn:progressor:problem:too-many-records",
        )
        assert _send(served, [_pain("2026-01-06", 3)] * 3).status_code == 200


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[Served]:
    path = tmp_path / "clinic.db"
    program = progressor.load_program(SEED)
    with Store.init(path) as store:
        store.add_program(program, SEED.read_text(encoding="utf-8"))
        store.enroll(
            progressor.Enrollment(patient="anna", program=program.id, start=START), program
        )
    with serving(tmp_path, store=path) as served:
        yield served


def _send(served: Served, records: list[dict[str, Any]], role: str = "service") -> Any:
    body = json.dumps(bundle(records))
    headers = {**served.headers(role), "Content-Type": FHIR_JSON}
    return httpx.post(served.url + "/v1/fhir/import", content=body, headers=headers, timeout=30)


def _pain(day: str, pain: float, patient: str = "anna") -> dict[str, Any]:
    return {"date": day, "pain": pain, "patient": patient}


def test_a_bundle_is_read_into_records(stateless: Served) -> None:
    answer = _send(stateless, [_pain("2026-01-06", 3), *full_week()[:2]])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["records"][0]["pain"] == 3 and body["records"][0]["patient"] == "anna"
    assert len(body["records"]) == 3 and body["set_aside"] == [] and body["stored"] is None


def test_a_bad_unit_or_range_is_set_aside_at_its_element(stateless: Served) -> None:
    entries = bundle([_pain("2026-01-06", 42), _pain("2026-01-07", 4)])
    entries["entry"][1]["resource"]["valueQuantity"]["code"] = "kg"
    headers = {**stateless.headers("service"), "Content-Type": FHIR_JSON}
    answer = httpx.post(stateless.url + "/v1/fhir/import", json=entries, headers=headers)
    assert answer.status_code == 200, answer.text
    aside = answer.json()["set_aside"]
    assert [a["at"] for a in aside] == [
        "Bundle.entry[0].resource.valueQuantity.value",
        "Bundle.entry[1].resource.valueQuantity.unit",
    ]
    assert "'kg'" in aside[1]["reason"]


def test_a_bundle_fhir_refuses_is_a_located_problem(stateless: Served) -> None:
    broken = bundle([_pain("2026-01-06", 3)])
    broken["entry"][0]["resource"]["valueQuantity"]["value"] = "three"
    answer = _raw(stateless, json.dumps(broken))
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "urn:progressor:problem:invalid-bundle"
    assert problem["problems"][0]["field"] == "Bundle.entry[0].resource.valueQuantity.value"
    assert _raw(stateless, "{not json").status_code == 400


def _raw(served: Served, text: str) -> Any:
    headers = {**served.headers("service"), "Content-Type": FHIR_JSON}
    return httpx.post(served.url + "/v1/fhir/import", content=text, headers=headers)


def test_a_readonly_token_reads_a_program_but_sends_no_records(stateless: Served) -> None:
    assert _send(stateless, [_pain("2026-01-06", 3)], role="readonly").status_code == 403
    answer = stateless.get("/v1/fhir/PlanDefinition/low-back-pain/1.0.0", role="readonly")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == FHIR_JSON
    plan = PlanDefinition.model_validate_json(answer.text)
    assert plan == plan_definition(progressor.load_program(SEED))
    assert (
        stateless.get("/v1/fhir/PlanDefinition/low-back-pain/1.0.0", role=None).status_code == 401
    )


def test_an_unknown_program_version_is_404(stateless: Served) -> None:
    answer = stateless.get("/v1/fhir/PlanDefinition/low-back-pain/9.9")
    assert answer.status_code == 404
    assert answer.json()["problems"][0]["field"] == "version"


def test_a_step_answer_is_a_care_plan(stateless: Served, seed: progressor.CompiledProgram) -> None:
    enrollment = progressor.Enrollment(patient="anna", program="low-back-pain", start=START)
    first = json.loads(seed.first_week(enrollment).model_dump_json())
    records = [*full_week(), {"date": "2026-01-07", "kind": "pain", "pain": 8}]
    step = stateless.post("/v1/step", {"prescription": first, "records": records})
    answer = stateless.post("/v1/fhir/careplan", step.json())
    assert answer.status_code == 200, answer.text
    plan = CarePlan.model_validate_json(answer.text)
    assert plan.status == "on-hold"
    result = progressor.StepResult.model_validate(
        {k: v for k, v in step.json().items() if k != "set_aside"}
    )
    assert plan == care_plan(seed.program, result)


def test_a_care_plan_of_another_program_is_refused(
    stateless: Served, seed: progressor.CompiledProgram
) -> None:
    enrollment = progressor.Enrollment(patient="anna", program="low-back-pain", start=START)
    first = json.loads(seed.first_week(enrollment).model_dump_json())
    del first["exercises"]["bridge"]
    answer = stateless.post("/v1/fhir/careplan", {"prescription": first})
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["field"] == "prescription.exercises"


def test_a_stored_care_plan_needs_a_store(stateless: Served) -> None:
    answer = stateless.get("/v1/fhir/CarePlan/anna")
    assert (answer.status_code, answer.json()["type"]) == (404, "urn:progressor:problem:no-store")


def test_with_a_store_a_bundle_is_imported_and_its_flare_is_in_the_care_plan(
    stored: Served,
) -> None:
    records = [{**r, "patient": "anna"} for r in full_week()]
    answer = _send(stored, [*records, _pain("2026-01-06", 8), _pain("2026-01-06", 2, "zoe")])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["stored"] == {"added": 10, "duplicates": 0, "quarantined": 1, "patients": 1}
    assert [a["at"] for a in body["set_aside"]] == ["Bundle.entry[10].resource"]
    assert "not enrolled" in body["set_aside"][0]["reason"]
    again = _send(stored, records)
    assert again.json()["stored"]["duplicates"] == len(records)
    # No recompute ran: the CarePlan is folded now from what the store holds.
    plan = stored.get("/v1/fhir/CarePlan/anna", role="readonly")
    assert plan.status_code == 200, plan.text
    resource = CarePlan.model_validate_json(plan.text)
    assert resource.status == "on-hold"
    reasons = [a.detail.statusReason.text for a in resource.activity or []]
    assert all("paused until a clinician resumes it" in (r or "") for r in reasons)
    assert stored.get("/v1/fhir/CarePlan/nobody").status_code == 404
