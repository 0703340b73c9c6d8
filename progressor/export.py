"""Next week's prescription as a document: TOML (tomli-w) or JSON, byte-for-byte stable."""

from __future__ import annotations

import json
from typing import Any

import tomli_w

from progressor.core.models import Decision, ExerciseState, Program, StepResult


def prescription_document(program: Program, result: StepResult) -> dict[str, Any]:
    """A plain document of next week: doses, statuses, decisions, flags and alerts."""
    prescription = result.prescription
    decisions = {d.exercise: d for d in result.decisions}
    exercises = {}
    for exercise in program.exercises:
        state = prescription.exercises[exercise.id]
        decision = decisions.get(exercise.id)
        action, rule, reason = decided(decision, state)
        exercises[exercise.id] = {
            "name": exercise.name,
            "status": state.status,
            "dose": state.dose.model_dump(exclude_none=True),
            "action": action,
            "rule": rule,
            "reason": reason,
            "instructions": list(exercise.instructions),
        }
    doc: dict[str, Any] = {
        "patient": prescription.patient,
        "program": prescription.program,
        "program_version": prescription.program_version,
        "week": prescription.week,
        "start": prescription.start,
        "status": prescription.status,
        "exercises": exercises,
        "flags": [f.model_dump(exclude_none=True) for f in prescription.flags],
        "alerts": [a.model_dump(exclude_none=True) for a in result.alerts],
    }
    return doc


def decided(decision: Decision | None, state: ExerciseState) -> tuple[str, str, str]:
    """The action, rule and reason the document gives for one exercise."""
    if decision is None:  # week 1 (no week has ended): the starting dose, nothing decided yet
        reason = "the starting dose: nothing is decided until the first week has ended"
        return "start", "program", reason
    if decision.action == "pause" and state.status == "active":
        # Only a clinician's resume makes a paused exercise active (CompiledProgram.resume):
        # the week reads as resumed, not as "stop until your physiotherapist calls".
        reason = (
            f"Resumed: your physiotherapist resumed this exercise after the pause "
            f"({decision.rule}). Next week: {state.dose.describe()}."
        )
        return "resume", "clinician-resume", reason
    return decision.action, decision.rule, decision.reason


def to_toml(document: dict[str, Any]) -> str:
    return tomli_w.dumps(document)


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"
