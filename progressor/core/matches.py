"""From what plugins return to the step's output models, checked once and never trusted blindly.

A strategy's proposal and a rule's findings become `Match`es; the step then turns them into
RuleMatch, Flag and Alert models. Values of exact built-in types are taken as they are
(`_fast.trusted`); anything else is validated, and a bad value is that plugin's failure
(`ComponentFailure`, which the engine turns into the fail-safe).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from progressor.core._fast import OPTIONAL_TEXT, plain_values, trusted
from progressor.core.components import Finding
from progressor.core.models import (
    Action,
    Alert,
    Dose,
    Flag,
    Prescription,
    RuleMatch,
    Scalar,
)


@dataclass(frozen=True)
class Bound:
    """A component with its validated parameters and the plugin that supplied it."""

    name: str
    plugin: str
    component: Any
    params: BaseModel

    @classmethod
    def of(cls, name: str, plugin: str, component: Any, params: BaseModel) -> Bound:
        # The names go into output models unvalidated (see `trusted`): a str subclass becomes
        # the plain str that validation would give, once, here.
        return cls(str.__str__(name), str.__str__(plugin), component, params)


class Match:
    """A proposal (from a safety rule or the strategy) before it becomes a RuleMatch.

    A class with slots, not a NamedTuple: the step reads its fields a few dozen times a week,
    and CPython 3.11 reads a slot at the speed of a local (a NamedTuple's field goes through
    a descriptor call each time)."""

    __slots__ = ("action", "bound", "exercise", "finding", "reason", "values")

    def __init__(
        self,
        bound: Bound,
        action: Action | None,
        reason: str,
        exercise: str | None,
        values: Mapping[str, Scalar],
        finding: Finding | None,
    ) -> None:
        self.bound, self.action, self.reason = bound, action, reason
        self.exercise, self.values, self.finding = exercise, values, finding

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Match({fields})"


#: Each action as the exact str that validation as `Action` gives.
ACTIONS: dict[str, Action] = {
    "progress": "progress",
    "hold": "hold",
    "regress": "regress",
    "pause": "pause",
}


def rule_matches(matches: Sequence[Match], applied: Match | None) -> tuple[RuleMatch, ...]:
    return tuple([rule_match(m, m is applied) for m in matches])


def rule_match(m: Match, applied: bool) -> RuleMatch:
    # `action` was checked against SEVERITY when the match was made; an exact str is kept.
    if (
        type(m.reason) is str
        and type(m.action) in OPTIONAL_TEXT
        and type(m.exercise) in OPTIONAL_TEXT
        and plain_values(m.values)
    ):
        return trusted(
            RuleMatch,
            {
                "rule": m.bound.name,
                "plugin": m.bound.plugin,
                "action": m.action,
                "reason": m.reason,
                "exercise": m.exercise,
                "values": dict(m.values),  # a copy, as validation makes: the plugin keeps its own
                "applied": applied,
            },
        )
    return built(
        m.bound,
        RuleMatch,
        rule=m.bound.name,
        plugin=m.bound.plugin,
        action=m.action,
        reason=m.reason,
        exercise=m.exercise,
        values=m.values,
        applied=applied,
    )


M = TypeVar("M", bound=BaseModel)


def built(bound: Bound, model: type[M], **values: Any) -> M:
    """A model from what a plugin returned; invalid values are that plugin's failure."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise ComponentFailure(bound, exc) from exc


def raised(
    prescription: Prescription, found: Sequence[Match], *, lenient: bool = False
) -> tuple[list[Flag], list[Alert]]:
    """The flags and alerts these findings raise. Off the normal path (`lenient`), an
    invalid one is skipped: it cannot fail a patient who is already being held."""
    flags, alerts = [], []
    for m in found:
        finding = m.finding
        if finding is None:
            continue
        # The rule's text and exercise, when of exact types, need no validation (as above).
        plain = type(m.reason) is str and type(m.exercise) in OPTIONAL_TEXT
        try:
            if finding.flag:
                flag = dict(
                    code=finding.flag,
                    rule=m.bound.name,
                    plugin=m.bound.plugin,
                    message=m.reason,
                    exercise=m.exercise,
                )
                if plain and type(finding.flag) is str:
                    flags.append(trusted(Flag, flag))
                else:
                    flags.append(built(m.bound, Flag, **flag))
            if finding.alert:
                # An alert about one exercise names it: a rule that pauses three exercises
                # raises three alerts, each telling the clinician which one (and each kept).
                alert = dict(
                    patient=prescription.patient,
                    week=prescription.week,
                    rule=m.bound.name,
                    plugin=m.bound.plugin,
                    message=f"{m.exercise}: {m.reason}" if m.exercise else m.reason,
                    urgent=finding.urgent,
                )
                if plain and type(finding.urgent) is bool:
                    alerts.append(trusted(Alert, alert))
                else:
                    alerts.append(built(m.bound, Alert, **alert))
        except ComponentFailure:
            if not lenient:
                raise
    return flags, alerts


def pauses_program(found: Sequence[Match]) -> bool:
    """Whether these findings pause the whole program (a pause for no one exercise): the
    patient's status is then "paused" until a clinician resumes it."""
    # (A loop, not any(): a generator costs more, and the step asks whenever a rule finds.)
    for m in found:  # noqa: SIM110
        if m.action == "pause" and m.exercise is None:
            return True
    return False


class ComponentFailure(Exception):
    def __init__(self, bound: Bound, error: BaseException) -> None:
        super().__init__(f"{bound.name}: {error!r}")
        self.bound, self.error = bound, error


def call(bound: Bound, method: str, *args: Any) -> Any:
    """Call a plugin's component; anything it raises names the plugin. (The step's hot calls,
    a rule's evaluate and a strategy's propose, do the same inline.)"""
    try:
        return getattr(bound.component, method)(*args)
    except Exception as exc:
        raise ComponentFailure(bound, exc) from exc


_OPENING = {
    "progress": "Progress",
    "hold": "Hold",
    "regress": "Step back",
    "pause": "Pause",
}


def sentence(action: Action, reason: str, dose: Dose) -> str:
    """The decision as one sentence a clinician and a patient can read."""
    if action == "pause":
        return f"Pause: {reason}. Stop this exercise until your physiotherapist calls."
    return f"{_OPENING[action]}: {reason}. Next week: {dose.describe()}."
