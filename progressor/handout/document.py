"""What a handout says, before it is laid out: next week for the patient, in plain words."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from progressor.core.models import Program, StepResult
from progressor.export import decided
from progressor.handout.settings import Clinic
from progressor.handout.words import change_in_words, dose_in_words, stop_rules

PAUSED = (
    "Your program is paused. Please do not do these exercises until your physiotherapist "
    "has spoken with you."
)
RESUMED = "Your physiotherapist has restarted your program after the pause."
REVIEW = "Your physiotherapist will look at how last week went."
EARLY = (
    "You have logged pain, or a problem, this week that your physiotherapist needs to know "
    "about. Please do not do these exercises until they have spoken with you."
)


@dataclass(frozen=True)
class HandoutExercise:
    name: str
    instructions: tuple[str, ...]
    dose: str  # in words; empty while the exercise is stopped
    stopped: bool
    change: str  # what changed since last week and why, said to the patient
    last_week: str  # last week's dose in words, when it differs from this week's


@dataclass(frozen=True)
class Handout:
    title: str
    patient: str
    week: int
    first_day: dt.date
    last_day: dt.date
    description: str
    status: str  # "active", "paused" or "resumed"
    urgent: bool  # paused, or an alert raised in the week under way: stop, said in red
    notices: tuple[str, ...]  # the program's state, said plainly, first on the page
    exercises: tuple[HandoutExercise, ...]
    stop_rules: tuple[str, ...]
    clinic: Clinic


def handout_of(program: Program, result: StepResult, clinic: Clinic) -> Handout:
    """The handout of the week `result` prescribes."""
    prescription = result.prescription
    decisions = {d.exercise: d for d in result.decisions}
    # An alert of the prescribed week itself was raised by what is logged of it so far (a
    # flare yesterday): the week is not judged yet, but the sheet must not say "go on".
    early = any(a.week == prescription.week for a in result.alerts)
    exercises = []
    actions = set()
    for exercise in program.exercises:
        state = prescription.exercises[exercise.id]
        # The same reading of a decision as the TOML and JSON documents (a resume included).
        decision = decisions.get(exercise.id)
        action, rule, _ = decided(decision, state)
        actions.add(action)
        stopped = early or state.status == "paused" or prescription.status == "paused"
        exercises.append(
            HandoutExercise(
                name=exercise.name,
                instructions=exercise.instructions,
                dose="" if stopped else dose_in_words(state.dose, exercise),
                stopped=stopped,
                change=change_in_words(action, rule),
                last_week=(
                    dose_in_words(decision.dose_before, exercise)
                    if decision is not None and not decision.dose_before.same(state.dose)
                    else ""
                ),
            )
        )
    status = (
        "paused"
        if prescription.status == "paused"
        else "resumed"
        if "resume" in actions
        else "active"
    )
    notices = {"paused": (PAUSED,), "resumed": (RESUMED,), "active": ()}[status]
    if early and status != "paused":
        notices = (EARLY, *notices)
    elif prescription.flags and status != "paused":
        notices = (*notices, REVIEW)
    return Handout(
        title=program.title,
        patient=prescription.patient,
        week=prescription.week,
        first_day=prescription.start,
        last_day=prescription.last_day,
        description=program.description.strip(),
        status=status,
        urgent=early or status == "paused",
        notices=notices,
        exercises=tuple(exercises),
        stop_rules=tuple(stop_rules(program)),
        clinic=clinic,
    )
