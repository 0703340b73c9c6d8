"""A program as a FHIR R4 PlanDefinition, next week's prescription as a CarePlan.

fhir.resources' R4B models (FHIR 4.3, the R4 line: the same CarePlan, PlanDefinition and
ActivityDefinition as 4.0.1 for what is written here) validate every resource built.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.plandefinition import PlanDefinition

from progressor.core.models import (
    INT_FIELDS,
    Decision,
    Dose,
    Exercise,
    ExerciseState,
    Program,
    StepResult,
)
from progressor.fhir.codes import (
    DOSE_EXTENSION,
    EXERCISE_SYSTEM,
    FIELD_UNITS,
    PATIENT_SYSTEM,
    PLAN_URL,
    UCUM,
)

#: What a paused exercise's activity says (the same words as a paused prescription's).
PAUSED_WORDS = "Stopped until your physiotherapist calls"


def plan_definition(program: Program) -> PlanDefinition:
    """`program` as a PlanDefinition: one action per exercise, each defined by an
    ActivityDefinition contained in the plan (`#<exercise id>`)."""
    return PlanDefinition.model_validate(
        {
            "resourceType": "PlanDefinition",
            "id": program.id,
            "url": f"{PLAN_URL}/{program.id}",
            "version": program.version,
            "title": program.title,
            "status": "active",
            "description": program.description.strip() or None,
            "purpose": program.condition or None,
            "contained": [_activity_definition(e) for e in program.exercises],
            "action": [
                {
                    "title": e.name,
                    "description": e.dose.describe(),
                    "code": [_exercise_code(e)],
                    "definitionCanonical": f"#{e.id}",
                }
                for e in program.exercises
            ],
        }
    )


def _activity_definition(exercise: Exercise) -> dict[str, Any]:
    return {
        "resourceType": "ActivityDefinition",
        "id": exercise.id,
        "name": exercise.id.replace("-", "_"),
        "title": exercise.name,
        "status": "active",
        "kind": "ServiceRequest",
        "code": _exercise_code(exercise),
        "description": _words(exercise, exercise.dose),
        "usage": f"{exercise.type} exercise, progression: {exercise.progression.strategy}",
        "extension": [dose_extension(exercise.dose)],
        "dosage": [{"text": exercise.dose.describe(), "patientInstruction": _steps(exercise)}],
        **_quantity(exercise.dose),
    }


def care_plan(program: Program, result: StepResult) -> CarePlan:
    """Next week's prescription in `result` as a CarePlan: active, or on hold while the
    program is paused; one activity per exercise with its dose in words and field by field."""
    prescription = result.prescription
    decisions = {d.exercise: d for d in result.decisions}
    last_day = prescription.last_day
    notes = [f.message for f in prescription.flags] + [a.message for a in result.alerts]
    return CarePlan.model_validate(
        {
            "resourceType": "CarePlan",
            "status": "active" if prescription.status == "active" else "on-hold",
            "intent": "plan",
            "title": f"{program.title}: week {prescription.week}",
            "instantiatesCanonical": [f"{PLAN_URL}/{program.id}|{prescription.program_version}"],
            "subject": {
                "identifier": {"system": PATIENT_SYSTEM, "value": prescription.patient},
                "display": prescription.patient,
            },
            "period": {"start": prescription.start.isoformat(), "end": last_day.isoformat()},
            "activity": [
                _activity(e, prescription.exercises[e.id], decisions.get(e.id))
                for e in program.exercises
            ],
            "note": [{"text": text} for text in notes] or None,
        }
    )


def _activity(
    exercise: Exercise, state: ExerciseState, decision: Decision | None
) -> dict[str, Any]:
    paused = state.status == "paused"
    detail: dict[str, Any] = {
        "kind": "ServiceRequest",
        "code": _exercise_code(exercise),
        "status": "on-hold" if paused else "in-progress",
        "description": _words(exercise, state.dose),
        "extension": [dose_extension(state.dose)],
        **_quantity(state.dose),
    }
    if paused:
        why = f": {decision.reason}" if decision is not None else ""
        detail["statusReason"] = {"text": f"{PAUSED_WORDS}{why}"}
    activity: dict[str, Any] = {"detail": detail}
    if decision is not None and not paused:
        activity["progress"] = [{"text": decision.reason}]
    return activity


def _exercise_code(exercise: Exercise) -> dict[str, Any]:
    coding = {"system": EXERCISE_SYSTEM, "code": exercise.id, "display": exercise.name}
    return {"coding": [coding], "text": exercise.name}


def _steps(exercise: Exercise) -> str:
    return " ".join(exercise.instructions)


def _words(exercise: Exercise, dose: Dose) -> str:
    """The dose in plain words, then the instructions: what a patient reads."""
    words = f"{exercise.name}: {dose.describe()}."
    return f"{words} {_steps(exercise)}" if exercise.instructions else words


def _quantity(dose: Dose) -> dict[str, Any]:
    # FHIR's one place for "how much" of an activity: the repetitions of one set.
    if dose.reps is None:
        return {}
    return {"quantity": {"value": dose.reps, "unit": "repetitions", "system": UCUM, "code": "1"}}


def dose_extension(dose: Dose) -> dict[str, Any]:
    """The dose field by field (a complex extension; docs/fhir.md): what FHIR has no
    element for (sets, hold, side, variant) is not lost."""
    parts: list[dict[str, Any]] = []
    for name, value in dose.values().items():
        unit = FIELD_UNITS.get(name)
        if unit is None:
            parts.append({"url": name, "valueInteger": int(value)})
        else:
            number = int(value) if name in INT_FIELDS else value
            quantity = {"value": number, "unit": unit, "system": UCUM, "code": unit}
            parts.append({"url": name, "valueQuantity": quantity})
    for name in ("side", "variant"):
        text = getattr(dose, name)
        if text is not None:
            parts.append({"url": name, "valueString": text})
    return {"url": DOSE_EXTENSION, "extension": parts}
