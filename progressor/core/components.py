"""What a plugin registers: exercise types, progression strategies and safety rules.

Each component is an object with a `name` and, where it takes parameters, a pydantic
`Params` model. Parameters are validated once, when an engine compiles a program; the
methods below then only evaluate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from progressor.core._fast import dict_setter, one_pass_method
from progressor.core.models import (
    Action,
    Alert,
    Dose,
    Exercise,
    Outcome,
    Program,
    Scalar,
    StepResult,
)
from progressor.core.week import ExerciseWeek, WeekView


class NoParams(BaseModel):
    """For components that take no parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ExerciseType(ABC):
    """A kind of exercise: which dose fields it uses and when a session met the dose."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    required: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def session_met(self, dose: Dose, outcomes: Sequence[Outcome]) -> bool:
        """Whether one session's outcomes (scored, not skipped) reached the full dose."""

    def each_met(self, dose: Dose, outcomes: Sequence[Outcome]) -> list[bool]:
        """For the usual week, one outcome a day: whether each outcome (scored, not skipped),
        a session on its own, reached the full dose. It must answer as `session_met` would
        for that outcome alone; the default asks it. Override it to answer in one pass."""
        session_met = self.session_met
        met = [session_met(dose, (o,)) for o in outcomes]
        for answer in met:  # (worded as the day-by-day path words it)
            if answer is not True and answer is not False:
                raise TypeError(f"session_met gave {answer!r}, not True or False")
        return met


def each_met_of(exercise_type: ExerciseType) -> Callable[[Dose, Sequence[Outcome]], list[bool]]:
    """The `each_met` that answers as the type's `session_met` does: its own, unless
    `session_met` was overridden below the class that gave `each_met` (a subclass of Hold
    that only changes `session_met`) or on the instance. Then the default, which asks
    `session_met` of each outcome."""
    return one_pass_method(exercise_type, "each_met", "session_met", ExerciseType.each_met)


@dataclass(frozen=True, init=False)
class Proposal:
    """A strategy's proposal for one exercise.

    `dose` is the dose to use if the proposal's action is applied. `memory` is the
    strategy's memory for next week whatever action is applied; `progress_memory`, when
    given, replaces it if a progression is applied. A progression that leaves the dose
    unchanged means "at the top" (a hold with a ready-for-next-phase flag), unless it
    carries a `progress_memory`: then the strategy moved on in its own state.
    `setback_memory`, when given, replaces `memory` if a step back or a pause is applied
    (by a safety rule, say): a streak towards the next increase should not survive a week
    that hurt.
    """

    action: Action
    reason: str
    dose: Dose
    values: Mapping[str, Scalar] = field(default_factory=dict)
    memory: dict[str, Scalar] | None = None
    progress_memory: dict[str, Scalar] | None = None
    setback_memory: dict[str, Scalar] | None = None

    def __init__(
        self,
        action: Action,
        reason: str,
        dose: Dose,
        values: Mapping[str, Scalar] | None = None,
        memory: dict[str, Scalar] | None = None,
        progress_memory: dict[str, Scalar] | None = None,
        setback_memory: dict[str, Scalar] | None = None,
    ) -> None:
        # What a frozen dataclass's own __init__ sets, in one go: it sets each field through
        # object.__setattr__, which costs twice as much for the proposals of every step.
        _set_proposal_fields(
            self,
            {
                "action": action,
                "reason": reason,
                "dose": dose,
                "values": {} if values is None else values,
                "memory": memory,
                "progress_memory": progress_memory,
                "setback_memory": setback_memory,
            },
        )


_set_proposal_fields = dict_setter(Proposal)


class Strategy(ABC):
    """A progression strategy: proposes progress, hold or regress from one exercise's week."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams

    def check(self, dose: Dose, params: BaseModel) -> Iterable[str]:
        """Problems with using these parameters on this starting dose (at load time)."""
        return ()

    def check_exercise(self, exercise: Exercise, params: BaseModel) -> Iterable[str]:
        """Problems with using these parameters on this exercise: its starting dose, floor
        and ceiling (at load time). The default asks `check` of the starting dose."""
        return self.check(exercise.dose, params)

    @abstractmethod
    def propose(self, week: ExerciseWeek, params: BaseModel) -> Proposal:
        """What to do next week, judged from this week's sessions."""

    @abstractmethod
    def regress(self, exercise: Exercise, dose: Dose, params: BaseModel) -> Dose:
        """One step back along this strategy's own ladder (the engine applies the floor)."""


@dataclass(frozen=True, init=False)
class Finding:
    """What a safety rule saw. `exercise=None` applies to every exercise of the program.

    `action=None` is a note: it is kept in the decision but proposes no change.
    """

    action: Action | None
    reason: str
    exercise: str | None = None
    values: Mapping[str, Scalar] = field(default_factory=dict)
    flag: str | None = None
    alert: bool = False
    urgent: bool = False

    def __init__(
        self,
        action: Action | None,
        reason: str,
        exercise: str | None = None,
        values: Mapping[str, Scalar] | None = None,
        flag: str | None = None,
        alert: bool = False,
        urgent: bool = False,
    ) -> None:
        _set_finding_fields(  # in one go, as Proposal does
            self,
            {
                "action": action,
                "reason": reason,
                "exercise": exercise,
                "values": {} if values is None else values,
                "flag": flag,
                "alert": alert,
                "urgent": urgent,
            },
        )


_set_finding_fields = dict_setter(Finding)


class SafetyRule(ABC):
    """A rule that may hold, regress or pause exercises, flag the patient or raise an alert."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    essential: ClassVar[bool] = False
    Params: ClassVar[type[BaseModel]] = NoParams

    @abstractmethod
    def evaluate(self, week: WeekView, params: BaseModel) -> Iterable[Finding]:
        """Every finding for this patient's week; nothing when the rule does not match."""


class AlertChannel(ABC):
    """Delivers clinician alerts somewhere: a webhook, a file, a pager.

    `target` is what follows the channel's name in an alert spec: in ``webhook:https://...``
    the target is the URL. `send` raises on failure; the core retries and then reports.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def check(self, target: str) -> Iterable[str]:
        """Problems with `target` itself (a malformed URL, a missing path), found before any
        alert is sent: a run with a target that can never work is refused, not retried."""
        return ()

    @abstractmethod
    def send(self, alert: Alert, target: str) -> None:
        """Deliver one alert, or raise."""


class Exporter(ABC):
    """Writes next week's prescription in one output format (TOML and JSON are built in)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    suffix: ClassVar[str] = ""

    #: A binary format (a PDF) is written with export_bytes; its export raises.
    binary: ClassVar[bool] = False

    @abstractmethod
    def export(self, program: Program, result: StepResult) -> str:
        """The prescription of `result` as text; the same inputs give the same bytes."""

    def export_bytes(self, program: Program, result: StepResult) -> bytes:
        """The document as the bytes of a file: `export`'s text in UTF-8, unless the format
        is binary and overrides this."""
        return self.export(program, result).encode("utf-8")
