"""FHIR R4 out (PlanDefinition, CarePlan) and in (a Bundle of Observations)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.plandefinition import PlanDefinition

import progressor
from progressor.fhir import FhirError, care_plan, plan_definition, read_bundle
from progressor.fhir.codes import (
    EXERCISE_SYSTEM,
    LOINC,
    OUTCOME_SYSTEM,
    PAIN_SEVERITY,
    UCUM,
)
from progressor.reading import read_log
from tests.conftest import PROGRAMS, START, full_week
from tests.test_cli import SEED, run

UNITS = {"hold_s": "s", "duration_s": "s", "load_kg": "kg"}


def _component(code: str, value: Any) -> dict[str, Any]:
    part: dict[str, Any] = {"code": {"coding": [{"system": OUTCOME_SYSTEM, "code": code}]}}
    if isinstance(value, bool):
        part["valueBoolean"] = value
    elif code in UNITS:
        unit = UNITS[code]
        part["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    else:
        part["valueInteger"] = value
    return part


def observation(record: dict[str, Any]) -> dict[str, Any]:
    """The Observation docs/fhir.md maps to `record` (a pain report or an outcome)."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "effectiveDateTime": record["date"],
    }
    if "patient" in record:
        resource["subject"] = {"reference": f"Patient/{record['patient']}"}
    if "pain" in record:
        resource["code"] = {"coding": [{"system": LOINC, "code": PAIN_SEVERITY}]}
        score = {"value": record["pain"], "unit": "{score}", "system": UCUM, "code": "{score}"}
        resource["valueQuantity"] = score
        return resource
    resource["code"] = {"coding": [{"system": EXERCISE_SYSTEM, "code": record["exercise"]}]}
    parts = []
    for key, value in record.items():
        if key in ("date", "exercise", "patient"):
            continue
        for item in value if isinstance(value, list) else [value]:
            parts.append(_component(key, item))
    resource["component"] = parts
    return resource


def bundle(records: list[dict[str, Any]]) -> dict[str, Any]:
    entries = [{"resource": observation(r)} for r in records]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _seed() -> progressor.CompiledProgram:
    return progressor.Engine().compile(progressor.load_program(PROGRAMS / "low-back-pain.toml"))


def _week(records: list[dict[str, Any]]) -> progressor.StepResult:
    compiled = _seed()
    enrollment = progressor.Enrollment(patient="anna", program=compiled.program.id, start=START)
    imported = read_bundle(json.dumps(bundle(records)), "b.json")
    return compiled.replay(enrollment, imported.log.records)[-1]


# -- export -----------------------------------------------------------------------------------


def test_the_seed_program_is_a_plan_definition_that_round_trips() -> None:
    program = progressor.load_program(PROGRAMS / "low-back-pain.toml")
    plan = plan_definition(program)
    text = plan.model_dump_json()
    assert PlanDefinition.model_validate_json(text) == plan
    doc = json.loads(text)
    assert (doc["url"].endswith("/low-back-pain"), doc["version"]) == (True, "1.0.0")
    defined = {a["id"]: a for a in doc["contained"]}
    assert list(defined) == ["pelvic-tilt", "knee-to-chest", "bridge"]
    assert [a["definitionCanonical"] for a in doc["action"]] == [f"#{i}" for i in defined]
    bridge = defined["bridge"]
    assert bridge["resourceType"] == "ActivityDefinition"
    assert bridge["dosage"][0]["text"] == "1 x 5 reps, hold 5 s"
    assert bridge["quantity"]["value"] == 5
    assert bridge["code"]["coding"][0] == {
        "system": EXERCISE_SYSTEM,
        "code": "bridge",
        "display": "Bridge",
    }
    fields = {e["url"]: e for e in bridge["extension"][0]["extension"]}
    assert fields["hold_s"]["valueQuantity"]["code"] == "s"
    assert fields["sets"]["valueInteger"] == 1
    assert "Lie on your back" in bridge["description"]


def test_a_prescription_is_a_care_plan_that_round_trips() -> None:
    result = _week(full_week())
    plan = care_plan(_seed().program, result)
    text = plan.model_dump_json()
    assert CarePlan.model_validate_json(text) == plan
    doc = json.loads(text)
    assert (doc["status"], doc["intent"]) == ("active", "plan")
    assert doc["subject"]["identifier"]["value"] == "anna"
    assert doc["period"] == {"start": "2026-01-12", "end": "2026-01-18"}
    bridge = doc["activity"][2]["detail"]
    assert bridge["status"] == "in-progress" and bridge["quantity"]["value"] == 6
    assert bridge["description"].startswith("Bridge: 1 x 6 reps, hold 5 s. Lie on your back")
    side = {e["url"]: e for e in doc["activity"][1]["detail"]["extension"][0]["extension"]}
    assert side["side"]["valueString"] == "each"
    assert doc["activity"][2]["progress"][0]["text"]  # the decision's reason


def test_a_paused_prescription_is_on_hold_and_says_stopped_until_the_physio_calls() -> None:
    week = [*full_week(), {"date": "2026-01-07", "pain": 8}]
    result = _week(week)
    doc = json.loads(care_plan(_seed().program, result).model_dump_json())
    assert doc["status"] == "on-hold"
    for activity in doc["activity"]:
        detail = activity["detail"]
        assert detail["status"] == "on-hold"
        assert detail["statusReason"]["text"].startswith("Stopped until your physiotherapist calls")
    assert any("8" in note["text"] for note in doc["note"])


# -- import -----------------------------------------------------------------------------------


def test_a_bundle_gives_the_records_of_the_same_jsonl() -> None:
    records = [
        *full_week(),
        {"date": "2026-01-06", "pain": 3, "patient": "anna"},
        {"date": "2026-01-08", "exercise": "bridge", "reps": [5, 4], "hold_s": 4.5,
         "pain_before": 1, "pain_after": 2, "skipped": False, "adverse_event": False},
    ]  # fmt: skip
    imported = read_bundle(json.dumps(bundle(records)), "b.json")
    expected = read_log([json.dumps(r) for r in records], "log.jsonl", "jsonl")
    assert imported.log.records == expected.records and len(expected.records) == 11
    assert imported.set_aside == ()


def test_a_date_time_counts_on_its_day_as_written() -> None:
    late = {"date": "2026-01-06T23:30:00+02:00", "pain": 3}
    [report] = read_bundle(json.dumps(bundle([late])), "b.json").log.records
    assert report.date == dt.date(2026, 1, 6)


def test_pain_8_in_a_bundle_pauses_and_alerts() -> None:
    result = _week([*full_week(), {"date": "2026-01-07", "pain": 8}])
    assert result.prescription.status == "paused"
    assert [a.rule for a in result.alerts] == ["pain-flare"]


def test_a_pain_of_42_is_set_aside_located_and_kept_as_10_which_pauses() -> None:
    records = [*full_week(), {"date": "2026-01-07", "pain": 42}]
    imported = read_bundle(json.dumps(bundle(records)), "b.json")
    [aside] = imported.set_aside
    assert str(aside).startswith("b.json: Bundle.entry[9].resource.valueQuantity.value: pain:")
    assert max(getattr(r, "pain", 0) for r in imported.log.records) == 10
    assert _week(records).prescription.status == "paused"


def _first_aside(doc: dict[str, Any]) -> str:
    [aside] = read_bundle(json.dumps(doc), "b.json").set_aside
    return str(aside)


def test_a_wrong_unit_is_located_and_its_pain_still_counts() -> None:
    doc = bundle([{"date": "2026-01-07", "pain": 6}])
    doc["entry"][0]["resource"]["valueQuantity"].update(unit="mm", code="mm")
    assert "Bundle.entry[0].resource.valueQuantity.unit: unit 'mm' for pain" in _first_aside(doc)
    [kept] = read_bundle(json.dumps(doc), "b.json").log.records
    assert kept.pain == 6  # a false alarm is acceptable, a hidden flare is not


def test_a_wrong_code_is_located() -> None:
    doc = bundle([{"date": "2026-01-07", "pain": 9}])
    doc["entry"][0]["resource"]["code"]["coding"][0]["code"] = "29463-7"
    message = _first_aside(doc)
    assert "Bundle.entry[0].resource.code: code http://loinc.org|29463-7 is neither" in message
    [kept] = read_bundle(json.dumps(doc), "b.json").log.records
    assert kept.pain == 9


def test_a_wrong_component_code_is_located() -> None:
    doc = bundle(full_week()[:1])
    doc["entry"][0]["resource"]["component"][0]["code"]["coding"][0]["code"] = "repz"
    assert "Bundle.entry[0].resource.component[0].code: 'repz' is no session component" in (
        _first_aside(doc)
    )


def test_an_out_of_range_component_is_located_at_its_element() -> None:
    doc = bundle([{"date": "2026-01-07", "exercise": "bridge", "reps": [5], "pain_during": 11}])
    message = _first_aside(doc)
    assert "Bundle.entry[0].resource.component[1].valueInteger: pain_during:" in message


def test_a_negative_count_is_located_at_its_element() -> None:
    doc = bundle([{"date": "2026-01-07", "exercise": "bridge", "reps": [5, -1], "pain_before": 1}])
    assert "Bundle.entry[0].resource.component[1].valueInteger: reps.1:" in _first_aside(doc)


def test_a_bundle_fhir_refuses_is_a_located_error() -> None:
    doc = bundle([{"date": "2026-01-07", "pain": 3}])
    doc["entry"][0]["resource"]["valueQuantity"]["value"] = "three"
    with pytest.raises(FhirError, match=r"b.json: Bundle.entry\[0\].resource.valueQuantity.value"):
        read_bundle(json.dumps(doc), "b.json")
    with pytest.raises(FhirError, match="not JSON"):
        read_bundle("{", "b.json")
    with pytest.raises(FhirError, match="not a FHIR Bundle"):
        read_bundle('{"resourceType": "Patient"}', "b.json")


# -- command line -----------------------------------------------------------------------------


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_cli_export_writes_a_plan_definition_and_a_care_plan(tmp_path: Path) -> None:
    done = run("fhir", "export", SEED)
    assert done.returncode == 0, done.stderr
    assert PlanDefinition.model_validate_json(done.stdout).id == "low-back-pain"
    log = tmp_path / "anna.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in full_week()) + "\n", encoding="utf-8")
    out = tmp_path / "plan.json"
    done = run("fhir", "export", SEED, "--log", str(log), "--out", str(out))
    assert done.returncode == 0 and done.stdout == "", done.stderr
    plan = CarePlan.model_validate_json(out.read_text(encoding="utf-8"))
    assert plan.status == "active"


def test_cli_import_writes_records_next_reads_and_pauses(tmp_path: Path) -> None:
    records = [*full_week(), {"date": "2026-01-07", "pain": 8}]
    source = _write(tmp_path / "bundle.json", bundle(records))
    out = tmp_path / "records.jsonl"
    done = run("fhir", "import", str(source), "--out", str(out))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    after = run("next", SEED, "--log", str(out), "--format", "json", "--as-of", "2026-01-12")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["status"] == "paused"


def test_cli_import_reports_set_asides_with_their_entry(tmp_path: Path) -> None:
    source = _write(tmp_path / "bundle.json", bundle([{"date": "2026-01-07", "pain": 42}]))
    done = run("fhir", "import", str(source))
    assert done.returncode == 3
    assert f"set aside: {source}: Bundle.entry[0].resource.valueQuantity.value: pain:" in (
        done.stderr
    )
    assert json.loads(done.stdout)["pain"] == 10


def test_cli_import_refuses_a_bad_bundle_without_a_traceback(tmp_path: Path) -> None:
    doc = bundle([{"date": "2026-01-07", "pain": 3}])
    del doc["entry"][0]["resource"]["status"]  # (FHIR requires it; fhir.resources checks)
    done = run("fhir", "import", str(_write(tmp_path / "bundle.json", doc)))
    assert done.returncode == 1
    assert "Bundle.entry[0].resource.status" in done.stderr and "Traceback" not in done.stderr
