"""The strategy ``force-progression``: more force at end range, one stage per met week.

Stages (the dose's `variant`), by default: the patient moves to end range on their own
(``patient-generated``), then adds their own overpressure at end range
(``patient-overpressure``), then holds the end range (``sustained``), where the hold grows
by `hold_step` seconds a met week up to `hold_max`. A step back is one stage back, never
below the first; leaving the sustained stage drops the hold.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field, model_validator

from progressor import Dose, Exercise, ExerciseWeek, Proposal, Strategy, did_you_mean

STAGES = ("patient-generated", "patient-overpressure", "sustained")


class ForceProgressionParams(BaseModel):
    """The force stages in order, and how the hold of the last (sustained) stage grows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: tuple[str, ...] = Field(default=STAGES, min_length=1)
    #: The last stage holds end range: it starts at hold_start and grows by hold_step.
    sustained: bool = True
    hold_start: int = Field(default=10, ge=1)
    hold_step: int = Field(default=5, ge=1)
    hold_max: int = Field(default=30, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> ForceProgressionParams:
        if any(not stage.strip() for stage in self.stages):
            raise ValueError("a stage needs a name")
        if len(set(self.stages)) != len(self.stages):
            raise ValueError("each stage may appear only once")
        if self.hold_start > self.hold_max:
            raise ValueError(f"hold_start {self.hold_start} is above hold_max {self.hold_max}")
        return self

    def is_sustained(self, index: int) -> bool:
        return self.sustained and index == len(self.stages) - 1


def stage_of(dose: Dose, params: ForceProgressionParams) -> int:
    """The index of the dose's stage; an unknown stage is an error (it never progresses)."""
    if dose.variant in params.stages:
        return params.stages.index(dose.variant)
    raise ValueError(
        f"variant {dose.variant!r} is not a force-progression stage ({', '.join(params.stages)})"
    )


def at_stage(exercise: Exercise, dose: Dose, params: ForceProgressionParams, index: int) -> Dose:
    """`dose` moved to stage `index`: a sustained stage starts its hold, others have none."""
    hold: int | None = None
    if params.is_sustained(index):
        hold = params.hold_start
        if exercise.ceiling.hold_s is not None:
            hold = min(hold, exercise.ceiling.hold_s)
    return Dose(**{**dose.__dict__, "variant": params.stages[index], "hold_s": hold})


class ForceProgression(Strategy):
    name = "force-progression"
    description = (
        "force progressions for repeated movements: patient-generated -> patient overpressure "
        "-> sustained hold (raised by hold_step up to hold_max), one stage per met week; a "
        "step back is one stage back"
    )
    Params = ForceProgressionParams

    def check(self, dose: Dose, params: BaseModel) -> Iterator[str]:
        assert isinstance(params, ForceProgressionParams)
        stages = ", ".join(params.stages)
        if dose.variant not in params.stages:
            suggestion = did_you_mean(dose.variant or "", params.stages)
            hint = f" ({suggestion})" if suggestion else ""
            yield f"the starting variant must be a stage: {stages}; got {dose.variant!r}{hint}"
            return
        index = params.stages.index(dose.variant)
        if params.is_sustained(index):
            if dose.hold_s is None:
                yield f"the sustained stage {dose.variant!r} needs hold_s in the starting dose"
            elif dose.hold_s > params.hold_max:
                yield f"the starting hold_s {dose.hold_s} is above hold_max {params.hold_max}"
        elif dose.hold_s is not None:
            yield (
                f"hold_s belongs to the sustained stage only; stage {dose.variant!r} has none "
                "(a step back to it would drop the hold)"
            )

    def propose(self, week: ExerciseWeek, params: BaseModel) -> Proposal:
        assert isinstance(params, ForceProgressionParams)
        dose, index = week.dose, stage_of(week.dose, params)
        values = {
            "stage": dose.variant,
            "met_sessions": week.met_sessions,
            "sessions_required": week.sessions_required,
        }
        if not week.met:
            reason = (
                f"the full dose was done in {week.met_sessions} of the "
                f"{week.sessions_required} scored days needed"
            )
            return Proposal("hold", reason, dose, values)
        met = f"the full dose was done on {week.met_sessions} scored days"
        if index + 1 < len(params.stages):
            following = at_stage(week.exercise, dose, params, index + 1)
            change = f"force {dose.variant} -> {following.variant}"
            if following.hold_s is not None:
                change += f", holding {following.hold_s} s"
            return Proposal("progress", f"{met}; {change}", following, values)
        if not params.is_sustained(index):
            return Proposal("progress", f"{met}; {dose.variant} is the last stage", dose, values)
        return self._longer_hold(week, params, met, values)

    def _longer_hold(
        self,
        week: ExerciseWeek,
        params: ForceProgressionParams,
        met: str,
        values: dict[str, str | int | None],
    ) -> Proposal:
        dose, current = week.dose, week.dose.hold_s or 0
        top = params.hold_max
        if week.exercise.ceiling.hold_s is not None:
            top = min(top, week.exercise.ceiling.hold_s)
        raised = min(current + params.hold_step, top)
        if raised <= current:  # an unchanged dose: the engine makes it a ready-for-next-phase hold
            return Proposal(
                "progress", f"{met}; the hold is at its top ({current} s)", dose, values
            )
        change = f"hold_s {current} -> {raised}"
        return Proposal("progress", f"{met}; {change}", dose.with_value("hold_s", raised), values)

    def regress(self, exercise: Exercise, dose: Dose, params: BaseModel) -> Dose:
        assert isinstance(params, ForceProgressionParams)
        index = stage_of(dose, params)
        if index == 0:
            return dose  # never below the first stage: the engine reports "already at the floor"
        return at_stage(exercise, dose, params, index - 1)
