"""CDS Hooks 2.0 (progressor.serve.cds): a client that follows the spec's request and response
JSON, against a real server."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import progressor
from progressor.serve.cds import ENROLLMENT_EXTENSION, MAX_SUMMARY, SERVICE_ID
from progressor.store.database import Store
from tests.conftest import PROGRAMS, full_week
from tests.serving import Served, serving
from tests.test_fhir import bundle

SEED = PROGRAMS / "low-back-pain.toml"
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: Week 1 has ended, week 2 is under way: the cards speak of week 1 and of today.
START = dt.date.today() - dt.timedelta(days=8)
FLARE_DAY = START + dt.timedelta(days=1)
#: The seed with the stretch already at its ceiling: a met week makes it ready for more.
AT_TOP = (
    SEED.read_text(encoding="utf-8")
    .replace('id = "low-back-pain"', 'id = "at-top"')
    .replace("ceiling = { reps = 10, hold_s = 30 }", "ceiling = { reps = 10, hold_s = 5 }")
    .replace('field = "hold_s", step = 5, max = 30', 'field = "hold_s", step = 5, max = 5')
)


@pytest.fixture(scope="module")
def stateless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("cds")
    programs = directory / "programs"
    programs.mkdir()
    (programs / "low-back-pain.toml").write_text(SEED.read_text(encoding="utf-8"))
    (programs / "at-top.toml").write_text(AT_TOP, encoding="utf-8")
    with serving(directory, programs=programs) as served:
        yield served


def hook_request(patient: str = "anna", **more: Any) -> dict[str, Any]:
    """A patient-view request as the CDS Hooks 2.0 specification writes it."""
    return {
        "hookInstance": str(uuid.uuid4()),
        "hook": "patient-view",
        "fhirServer": "https://ehr.example.org/fhir",
        "context": {"userId": "Practitioner/123", "patientId": patient},
        **more,
    }


def _enrolled(program: str = "low-back-pain") -> dict[str, Any]:
    return {ENROLLMENT_EXTENSION: {"program": program, "start": START.isoformat()}}


def _prefetch(records: list[dict[str, Any]]) -> dict[str, Any]:
    pains = [r for r in records if "pain" in r]
    sessions = [r for r in records if "pain" not in r]
    return {"painObservations": bundle(pains), "sessionObservations": bundle(sessions)}


def _cards(served: Served, body: dict[str, Any]) -> list[dict[str, Any]]:
    answer = served.post(f"/cds-services/{SERVICE_ID}", body)
    assert answer.status_code == 200, answer.text
    cards: list[dict[str, Any]] = answer.json()["cards"]
    for card in cards:  # (the spec's required fields)
        assert len(card["summary"]) <= MAX_SUMMARY
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"] == "progressor"
        uuid.UUID(card["uuid"])
    return cards


def _week(**dose: Any) -> list[dict[str, Any]]:
    return [{**r, "patient": "anna"} for r in full_week(START, **dose)]


def test_discovery_lists_the_patient_view_service(stateless: Served) -> None:
    answer = stateless.get("/cds-services", role="readonly")
    assert answer.status_code == 200
    [service] = answer.json()["services"]
    assert (service["hook"], service["id"]) == ("patient-view", SERVICE_ID)
    assert service["title"] and service["description"]
    assert "{{context.patientId}}" in service["prefetch"]["painObservations"]
    assert "http://loinc.org|72514-3" in service["prefetch"]["painObservations"]
    assert stateless.get("/cds-services", role=None).status_code == 401


def test_a_flare_is_a_critical_card_naming_the_pain_and_the_day(stateless: Served) -> None:
    flare = {"date": FLARE_DAY.isoformat(), "pain": 8, "patient": "anna"}
    body = hook_request(prefetch=_prefetch([*_week(), flare]), extension=_enrolled())
    [card] = _cards(stateless, body)
    day = DAYS[FLARE_DAY.weekday()]
    assert card["summary"] == f"Pain 8/10 on {day}: exercises stopped, call the patient"
    assert card["indicator"] == "critical"
    assert FLARE_DAY.isoformat() in card["detail"]


def test_a_flare_today_is_critical_before_the_week_ends(stateless: Served) -> None:
    today = {"date": dt.date.today().isoformat(), "pain": 9, "patient": "anna"}
    body = hook_request(prefetch=_prefetch([*_week(), today]), extension=_enrolled())
    cards = _cards(stateless, body)
    assert cards[0]["indicator"] == "critical"
    assert cards[0]["summary"].startswith("Pain 9/10 on ")


def test_new_pain_is_a_warning_card(stateless: Served) -> None:
    records = _week()
    records[0] = {**records[0], "pain_during": 5}
    body = hook_request(prefetch=_prefetch(records), extension=_enrolled())
    [card] = _cards(stateless, body)
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("Review 1 flag(s): ")


def test_a_met_week_at_the_ceiling_is_ready_for_the_next_phase(stateless: Served) -> None:
    body = hook_request(prefetch=_prefetch(_week()), extension=_enrolled("at-top"))
    [card] = _cards(stateless, body)
    assert (card["indicator"], card["summary"]) == (
        "info",
        "Ready for the next phase: Single knee to chest stretch",
    )


def test_an_unreadable_observation_is_a_warning_and_its_pain_still_counts(
    stateless: Served,
) -> None:
    flare = {"date": FLARE_DAY.isoformat(), "pain": 8, "patient": "anna"}
    prefetch = _prefetch([*_week(), flare])
    quantity = prefetch["painObservations"]["entry"][0]["resource"]["valueQuantity"]
    quantity["code"] = quantity["unit"] = "mm"  # (a unit no 0-10 score has)
    cards = _cards(stateless, hook_request(prefetch=prefetch, extension=_enrolled()))
    assert [c["indicator"] for c in cards] == ["critical", "warning"]
    assert "valueQuantity.unit" in cards[1]["detail"]


def test_another_patients_observation_is_not_used_but_shown(stateless: Served) -> None:
    flare = {"date": FLARE_DAY.isoformat(), "pain": 8, "patient": "ben"}
    body = hook_request(prefetch=_prefetch([*_week(), flare]), extension=_enrolled())
    [card] = _cards(stateless, body)
    assert card["indicator"] == "warning"
    assert "an Observation of 'ben': not used" in card["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hook": "order-select"}, "hook"),
        ({"context": {"userId": "Practitioner/1"}}, "context.patientId"),
        ({"hookInstance": None}, "hookInstance"),
        ({"extension": None}, f"extension.{ENROLLMENT_EXTENSION}"),
        ({"extension": {ENROLLMENT_EXTENSION: {"program": "x"}}}, None),
        (
            {"extension": {ENROLLMENT_EXTENSION: {"program": "x", "start": "2026-01-05"}}},
            f"extension.{ENROLLMENT_EXTENSION}.program",
        ),
        (
            {"extension": {ENROLLMENT_EXTENSION: {"program": "at-top", "start": "1900-01-01"}}},
            f"extension.{ENROLLMENT_EXTENSION}.start",
        ),
    ],
)
def test_an_invalid_request_is_a_400_problem(
    stateless: Served, change: dict[str, Any], field: str | None
) -> None:
    body = {**hook_request(extension=_enrolled()), **change}
    answer = stateless.post(f"/cds-services/{SERVICE_ID}", body)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert answer.json()["problems"][0]["field"] == field


def test_a_readonly_token_may_not_send_observations(stateless: Served) -> None:
    body = hook_request(prefetch=_prefetch(_week()), extension=_enrolled())
    answer = stateless.post(f"/cds-services/{SERVICE_ID}", body, role="readonly")
    assert answer.status_code == 403


def test_with_a_store_the_cards_come_from_the_patients_records(tmp_path: Path) -> None:
    path = tmp_path / "clinic.db"
    program = progressor.load_program(SEED)
    flare = {"date": FLARE_DAY.isoformat(), "kind": "pain", "pain": 8, "patient": "anna"}
    with Store.init(path) as store:
        store.add_program(program, SEED.read_text(encoding="utf-8"))
        store.enroll(
            progressor.Enrollment(patient="anna", program=program.id, start=START), program
        )
        lines = [json.dumps(r) for r in [*_week(), flare]]
        store.import_records(lines, "diary.jsonl", "jsonl")
    with serving(tmp_path, store=path) as served:
        [card] = _cards(served, hook_request())  # (no prefetch, no extension: the store's)
        assert card["summary"].startswith("Pain 8/10 on ")
        answer = served.post(f"/cds-services/{SERVICE_ID}", hook_request("nobody"))
        assert answer.status_code == 404
