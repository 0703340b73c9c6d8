"""The handout's plain words: a dose, a change and the stop rules, said to the patient.

Nothing here names a rule id, a strategy or a field: the patient reads sentences made from
the program's own text (names, instructions, description) and a fixed mapping of decisions
to sentences. A rule this module does not know (a clinic's plugin) gets the sentence of its
action, never its id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from pydantic import BaseModel

from progressor.builtins.safety import NewPainParams, PainFlareParams, PainMonitoringParams
from progressor.core.models import Dose, Exercise, Program


def _count(n: float, one: str, many: str) -> str:
    return f"{n:g} {one if n == 1 else many}"


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _seconds(s: int) -> str:
    if s >= 120 and s % 60 == 0:
        return _count(s // 60, "minute", "minutes")
    return _count(s, "second", "seconds")


def side_word(exercise: Exercise) -> str:
    """'leg' or 'arm' when the exercise's instructions speak of legs or arms, else 'side'."""
    text = " ".join(exercise.instructions).lower()
    for word in ("leg", "arm", "foot", "hand"):
        if re.search(rf"\b{word}s?\b", text):
            return word
    return "side"


def dose_in_words(dose: Dose, exercise: Exercise) -> str:
    """'5 times, hold each for 5 seconds, each leg': the dose as the patient says it."""
    parts = []
    if dose.variant:
        parts.append(dose.variant.replace("-", " ").capitalize())
    if dose.reps is not None:
        rounds = dose.sets if dose.sets is not None and dose.sets > 1 else None
        parts.append(_times(dose.reps) + (f", {rounds} rounds" if rounds else ""))
    if dose.hold_s is not None:
        each = " each" if dose.reps is not None else ""
        parts.append(f"hold{each} for {_seconds(dose.hold_s)}")
    if dose.duration_s is not None:
        bouts = dose.sets if dose.reps is None and dose.sets is not None and dose.sets > 1 else 1
        parts.append(
            f"for {_seconds(dose.duration_s)}" + (f", {_times(bouts)}" if bouts > 1 else "")
        )
    if dose.load_kg is not None:
        parts.append(f"with {dose.load_kg:g} kg")
    if dose.distance_m is not None:
        parts.append(f"{dose.distance_m:g} metres")
    if dose.side == "each":
        parts.append(f"each {side_word(exercise)}")
    return ", ".join(parts)


#: What a decision means to the patient, by the rule that chose it (built-in rules), then
#: by its action alone (every other rule, a clinic's plugins' included).
_BY_RULE: Mapping[tuple[str, str], str] = {
    ("pause", "pain-flare"): (
        "Your pain was high, or something unusual happened, so your program is paused. "
        "Please do not do these exercises until your physiotherapist has spoken with you."
    ),
    ("hold", "pain-flare"): (
        "You told us about a flare of pain, so we keep the same amount until your "
        "physiotherapist has looked at it."
    ),
    ("pause", "awaiting-clinician"): (
        "Your program stays paused until your physiotherapist has spoken with you."
    ),
    ("hold", "fail-safe"): (
        "We could not work out last week in full, so we keep the same amount while your "
        "physiotherapist looks at it."
    ),
    ("pause", "new-pain"): (
        "This exercise brought on new pain more than once last week, so please stop it for "
        "now. Your physiotherapist will be in touch."
    ),
    ("regress", "new-pain"): (
        "This exercise brought on new pain last week, so it is a little easier this week."
    ),
    ("regress", "pain-monitoring"): (
        "Your pain during this exercise was higher than it should be, so it is a little "
        "easier this week."
    ),
    ("hold", "pain-monitoring"): (
        "Your pain was a little higher last week, so we keep the same amount for now."
    ),
    ("hold", "adherence"): (
        "Fewer sessions were logged last week than planned, so we keep the same amount."
    ),
    ("regress", "adherence"): (
        "No sessions were logged for a while, so we start again a step back."
    ),
    ("hold", "missing-data"): (
        "Some sessions were logged without pain scores, so we keep the same amount. "
        "Please note your pain before, during and after each exercise."
    ),
}
_BY_ACTION: Mapping[str, str] = {
    "start": "This is your starting amount.",
    "progress": "You did the full amount in enough sessions, so it goes up a little this week.",
    "hold": "Keep going with the same amount until you can do it fully in enough sessions.",
    "regress": "This exercise is a little easier this week.",
    "pause": ("Please stop this exercise for now. Your physiotherapist will be in touch."),
    "resume": "Your physiotherapist has restarted this exercise after the pause.",
}


def change_in_words(action: str, rule: str) -> str:
    """Why an exercise is what it is this week, in the patient's words."""
    return _BY_RULE.get((action, rule)) or _BY_ACTION.get(action) or _BY_ACTION["hold"]


def _params(program: Program, rule: str, model: type[BaseModel]) -> BaseModel | None:
    """The rule's parameters as the program sets them (its defaults where it sets none);
    None when the program does not use the rule. (The engine has checked them at compile.)"""
    if rule not in program.safety:
        return None
    return model.model_validate(program.safety[rule])


def stop_rules(program: Program) -> Iterator[str]:
    """When to stop, from the program's safety rules and their thresholds."""
    new_pain = _params(program, "new-pain", NewPainParams)
    if isinstance(new_pain, NewPainParams):
        if new_pain.tolerance == 0:
            yield (
                "If, while exercising, you feel any pain beyond the pain you had before "
                "starting, stop at once."
            )
        else:
            yield (
                "If, while exercising, your pain rises more than "
                f"{_count(new_pain.tolerance, 'point', 'points')} above the pain you had "
                "before starting, stop at once."
            )
    monitoring = _params(program, "pain-monitoring", PainMonitoringParams)
    if isinstance(monitoring, PainMonitoringParams):
        yield (
            f"Some pain while exercising is all right, up to {monitoring.max_during:g} out of "
            "10. If it goes higher, stop that exercise."
        )
    # pain-flare is essential: it applies to every program, set in it or not.
    flare = PainFlareParams.model_validate(program.safety.get("pain-flare", {}))
    yield (
        f"If your pain reaches {flare.pause_at:g} out of 10, or anything unusual happens "
        "(a fall, a new numbness or weakness), stop all the exercises and call the clinic."
    )
