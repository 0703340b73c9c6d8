"""A patient's history from the store, week by week: `progressor show PATIENT --history`.

Each week: the prescription in force (status, each exercise's dose and status), the
decision its records led to (the action, the rule, why), its flags, and the records logged
in it with their ids (`o12`, `p3`: what `progressor void` takes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import click

from progressor.cli.common import fail
from progressor.core.models import Decision, Prescription
from progressor.core.timeline import week_of
from progressor.errors import ProgressorError
from progressor.store.clinic import StoredRecord
from progressor.store.database import Store


def show_history(store: Store, patient: str, as_json: bool) -> None:
    """Print `patient`'s history, as text or JSON (a list of weeks)."""
    try:
        weeks = history(store, patient)
    except ProgressorError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(weeks, indent=2, ensure_ascii=False))
        return
    if not weeks:
        click.echo(f"{patient}: nothing computed yet; run progressor recompute")
    for line in history_text(weeks):
        click.echo(line)


def week_in(patient: str, prescriptions: Sequence[Prescription], week: int) -> Prescription:
    """The prescription of `week`, or a clear error naming the weeks there are."""
    for prescription in prescriptions:
        if prescription.week == week:
            return prescription
    fail(f"{patient}: no week {week} computed (weeks 1 to {len(prescriptions)})")


def history(store: Store, patient: str) -> list[dict[str, Any]]:
    """Every computed week of `patient`, week 1 first, as JSON-ready values."""
    start = store.enrollment(patient).start
    decided: dict[int, dict[str, Decision]] = {}
    for week, decision in store.decisions(patient):
        decided.setdefault(week, {})[decision.exercise] = decision
    logged: dict[int, list[StoredRecord]] = {}
    for record in store.records(patient):
        if record.date >= start:  # (earlier ones belong to an earlier enrollment)
            logged.setdefault(week_of(start, record.date), []).append(record)
    return [
        _week(p, decided.get(p.week, {}), logged.get(p.week, ()))
        for p in store.prescriptions(patient)
    ]


def _week(
    prescription: Prescription, decisions: dict[str, Decision], records: Sequence[StoredRecord]
) -> dict[str, Any]:
    exercises = {}
    for name, state in prescription.exercises.items():
        decision = decisions.get(name)
        exercises[name] = {
            "dose": state.dose.model_dump(mode="json", exclude_none=True),
            "status": state.status,
            "decision": None
            if decision is None
            else {"action": decision.action, "rule": decision.rule, "reason": decision.reason},
        }
    return {
        "week": prescription.week,
        "start": prescription.start.isoformat(),
        "status": prescription.status,
        "judged": bool(decisions),
        "flags": [{"code": f.code, "message": f.message} for f in prescription.flags],
        "exercises": exercises,
        "records": [
            {
                "id": r.id,
                "date": r.date.isoformat(),
                "exercise": r.exercise,
                "voided": r.voided,
                "record": json.loads(r.record),
            }
            for r in records
        ],
    }


def history_text(weeks: Sequence[dict[str, Any]]) -> Iterator[str]:
    """The history as lines: one block per week."""
    for week in weeks:
        yield f"week {week['week']} (from {week['start']}): {week['status']}"
        for name, item in week["exercises"].items():
            dose = ", ".join(f"{k} {v}" for k, v in item["dose"].items())
            paused = " (paused)" if item["status"] == "paused" else ""
            yield f"  {name}: {dose}{paused}{_then(item['decision'], week['judged'])}"
        for flag in week["flags"]:
            yield f"  flag {flag['code']}: {flag['message']}"
        for record in week["records"]:
            what = record["exercise"] or "pain report"
            voided = " (voided)" if record["voided"] else ""
            yield f"  record {record['id']}: {record['date']} {what}{voided}"


def _then(decision: dict[str, str] | None, judged: bool) -> str:
    """What the week's records led to for one exercise (nothing yet while it is under way)."""
    if decision is not None:
        return f" -> {decision['action']} ({decision['rule']}): {decision['reason']}"
    return "" if judged else " -> not judged yet (the week is under way)"
