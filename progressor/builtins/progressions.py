"""Built-in progression strategies: linear, double, two-for-two, rpe, ladder and quota.

Strategies propose; the engine decides. A strategy never has to know about pain rules, and
the engine applies floors and ceilings after it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from statistics import median
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from progressor import hookimpl
from progressor.core.components import Proposal, Strategy
from progressor.core.models import Dose, Exercise, Scalar
from progressor.core.rounding import round_half_up, round_whole
from progressor.core.week import ExerciseWeek

NumericField = Literal["sets", "reps", "hold_s", "duration_s", "load_kg", "distance_m"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def value(dose: Dose, name: str) -> float:
    """A numeric dose field that the strategy relies on (checked at load to be set)."""
    current = getattr(dose, name)
    return 0.0 if current is None else float(current)


def cap(exercise: Exercise, name: str, proposed: float, limit: float | None = None) -> float:
    """`proposed`, no higher than the exercise's ceiling or the strategy's own limit."""
    ceiling = getattr(exercise.ceiling, name)
    if ceiling is not None and ceiling < proposed:
        proposed = ceiling
    if limit is not None and limit < proposed:
        proposed = limit
    return proposed


def floor(exercise: Exercise, name: str, proposed: float, limit: float | None = None) -> float:
    """`proposed`, no lower than the exercise's floor or the strategy's own bottom."""
    for bound in (getattr(exercise.floor, name), limit):
        if bound is not None:
            proposed = max(proposed, bound)
    return proposed


def _needs(dose: Dose, *names: str) -> Iterable[str]:
    for name in names:
        if getattr(dose, name) is None:
            yield f"the strategy works on {name!r}, which the starting dose does not set"


def met_values(week: ExerciseWeek) -> dict[str, Scalar]:
    return {"met_sessions": week.met_sessions, "sessions_required": week.sessions_required}


def not_met(week: ExerciseWeek) -> Proposal:
    return Proposal(
        action="hold",
        reason=(
            f"the full dose was done in {week.met_sessions} of the {week.sessions_required} "
            "scored sessions needed"
        ),
        dose=week.dose,
        values=met_values(week),
    )


def met_reason(week: ExerciseWeek) -> str:
    return (
        f"the full dose was done in {week.met_sessions} scored sessions "
        f"({week.sessions_required} needed)"
    )


class LinearParams(_Params):
    field: NumericField
    step: float = Field(gt=0)
    max: float | None = None


class Linear(Strategy):
    name = "linear"
    description = "add `step` to one dose field after a met week, up to `max`"
    Params = LinearParams

    def check(self, dose: Dose, params: BaseModel) -> Iterable[str]:
        assert isinstance(params, LinearParams)
        return _needs(dose, params.field)

    def propose(self, week: ExerciseWeek, params: BaseModel) -> Proposal:
        assert isinstance(params, LinearParams)
        if week.met_sessions < week.sessions_required:  # (week.met, inlined)
            return not_met(week)
        field = params.field
        current = value(week.dose, field)
        target = cap(week.exercise, field, current + params.step, params.max)
        return Proposal(
            "progress",
            f"{met_reason(week)}; {field} {current:g} -> {target:g}",
            week.dose.with_value(field, target),
            met_values(week),
        )

    def column_form(self) -> object:
        """In columns: the proposal reads only the week's counts (progressor.columns)."""
        from progressor.columns.forms import COUNTS_ONLY

        return COUNTS_ONLY

    def regress(self, exercise: Exercise, dose: Dose, params: BaseModel) -> Dose:
        assert isinstance(params, LinearParams)
        lowered = floor(exercise, params.field, value(dose, params.field) - params.step)
        return dose.with_value(params.field, lowered)


class DoubleParams(_Params):
    first: NumericField = "reps"
    first_step: float = Field(default=1, gt=0)
    first_bottom: float | None = None
    first_top: float
    second: NumericField = "hold_s"
    second_step: float = Field(default=1, gt=0)
    second_max: float | None = None

    @model_validator(mode="after")
    def _distinct(self) -> DoubleParams:
        if self.first == self.second:
            raise ValueError("first and second must be different dose fields")
        return self


class Double(Strategy):
    name = "double"
    description = "raise the first field to its top, then raise the second and reset the first"
    Params = DoubleParams

    def check(self, dose: Dose, params: BaseModel) -> Iterable[str]:
        assert isinstance(params, DoubleParams)
        yield from _needs(dose, params.first, params.second)
        if value(dose, params.first) > params.first_top:
            yield f"the starting {params.first} is above first_top ({params.first_top:g})"

    def check_exercise(self, exercise: Exercise, params: BaseModel) -> Iterable[str]:
        assert isinstance(params, DoubleParams)
        yield from self.check(exercise.dose, params)
        ceiling = getattr(exercise.ceiling, params.first)
        if ceiling is not None and params.first_top > ceiling:
            yield (
                f"first_top ({params.first_top:g}) is above the exercise's ceiling of "
                f"{params.first} ({ceiling:g}): {params.first} stops at the ceiling, so "
                f"{params.second} would never be raised"
            )

    def _bottom(self, exercise: Exercise, params: DoubleParams) -> float:
        if params.first_bottom is not None:
            return params.first_bottom
        return value(exercise.dose, params.first)

    def propose(self, week: ExerciseWeek, params: BaseModel) -> Proposal:
        assert isinstance(params, DoubleParams)
        if week.met_sessions < week.sessions_required:  # (week.met, inlined)
            return not_met(week)
        first_field, dose = params.first, week.dose
        first, second = value(dose, first_field), value(dose, params.second)
        if first < params.first_top:
            raised = cap(week.exercise, first_field, first + params.first_step, params.first_top)
            dose = dose.with_value(first_field, raised)
            change = f"{first_field} {first:g} -> {raised:g}"
        else:
            raised = cap(
                week.exercise, params.second, second + params.second_step, params.second_max
            )
            if raised == second:
                dose, change = week.dose, f"{params.second} is at its top ({second:g})"
            else:
                bottom = self._bottom(week.exercise, params)
                dose = week.dose.with_value(params.second, raised).with_value(params.first, bottom)
                change = (
                    f"{params.first} reached its top ({first:g}): {params.second} "
                    f"{second:g} -> {raised:g}, {params.first} back to {bottom:g}"
                )
        return Proposal("progress", f"{met_reason(week)}; {change}", dose, met_values(week))

    def column_form(self) -> object:
        """In columns: the proposal reads only the week's counts (progressor.columns)."""
        from progressor.columns.forms import COUNTS_ONLY

        return COUNTS_ONLY

    def regress(self, exercise: Exercise, dose: Dose, params: BaseModel) -> Dose:
        """One step down the ladder, never raising a field (never back up to first_top):
        `first` down to its bottom; then `second` down to its floor; then `first` below its
        bottom down to its floor. The same dose back means every field is at its floor."""
        assert isinstance(params, DoubleParams)
        first, second = value(dose, params.first), value(dose, params.second)
        first_floor = self._floor(exercise, params.first, params.first_step)
        bottom = max(self._bottom(exercise, params), first_floor)
        if first > bottom:
            return dose.with_value(params.first, max(first - params.first_step, bottom))
        second_floor = self._floor(exercise, params.second, params.second_step)
        if second > second_floor:
            return dose.with_value(params.second, max(second - params.second_step, second_floor))
        if first > first_floor:
            return dose.with_value(params.first, max(first - params.first_step, first_floor))
        return dose

    @staticmethod
    def _floor(exercise: Exercise, name: str, step: float) -> float:
        """A field's floor: the exercise's, or where the program sets none, one step (a step
        back never takes a field to nothing)."""
        low = getattr(exercise.floor, name)
        return step if low is None else float(low)


class TwoForTwoParams(_Params):
    field: NumericField = "load_kg"
    surplus: int = Field(default=2, ge=1)
    sessions: int = Field(default=2, ge=1)
    increase_pct: float = Field(default=5.0, ge=2.0, le=10.0)
    increment: float = Field(default=0.5, gt=0)


#: A week stepped back or paused (by pain, say) starts the count of beating sessions afresh.
_NO_STREAK: dict[str, Scalar] = {"streak": 0}


class TwoForTwo(Strategy):
    name = "two-for-two"
    description = (
        "raise the load when the last set beat the target reps by `surplus` in `sessions` "
        "consecutive sessions (NSCA 2-for-2)"
    )
    Params = TwoForTwoParams

    def check(self, dose: Dose, params: BaseModel) -> Iterable[str]:
        assert isinstance(params, TwoForTwoParams)
        return _needs(dose, params.field, "reps")

    def _step(self, current: float, params: TwoForTwoParams) -> float:
        # +increase_pct %, rounded up to the smallest plate increment, at least one increment.
        raw = current * params.increase_pct / 100
        return max(params.increment, math.ceil(raw / params.increment) * params.increment)

    def propose(self, week: ExerciseWeek, params: BaseModel) -> Proposal:
        assert isinstance(params, TwoForTwoParams)
        target = value(week.dose, "reps") + params.surplus
        streak = int(week.memory.get("streak") or 0)
        best, last_sets = streak, []
        for session in week.sessions:
            if not session.done:
                continue
            last_sets = [o.reps[-1] for o in session.outcomes if o.reps]
            beat = session.met and bool(last_sets) and max(last_sets) >= target
            streak = streak + 1 if beat else 0
            best = max(best, streak)
        values: dict[str, Scalar] = {"target_last_set": target, "streak": streak, "best": best}
        memory: dict[str, Scalar] = {"streak": streak}
        if best < params.sessions:
            reason = (
                f"the last set reached {target:g} reps in {best} consecutive scored sessions "
                f"at the full dose; {params.sessions} needed"
            )
            return Proposal(
                "hold", reason, week.dose, values, memory=memory, setback_memory=_NO_STREAK
            )
        current = value(week.dose, params.field)
        raised = cap(week.exercise, params.field, current + self._step(current, params))
        reason = (
            f"the last set beat the target by {params.surplus}+ reps in {params.sessions} "
            f"consecutive sessions; {params.field} {current:g} -> {raised:g}"
        )
        dose = week.dose.with_value(params.field, raised)
        # At the ceiling the streak is kept: the engine turns this into a ready-for-next-phase hold.
        reset: dict[str, Scalar] | None = {"streak": 0} if raised > current else None
        return Proposal(
            "progress",
            reason,
            dose,
            values,
            memory,
            progress_memory=reset,
            setback_memory=_NO_STREAK,
        )

    def regress(self, exercise: Exercise, dose: Dose, params: BaseModel) -> Dose:
        assert isinstance(params, TwoForTwoParams)
        current = value(dose, params.field)
        lowered = floor(exercise, params.field, current - self._step(current, params), 0.0)
        return dose.with_value(params.field, lowered)


class RpeParams(_Params):
    field: NumericField
    step: float = Field(gt=0)
    target: float = Field(ge=0, le=10)
    margin: float = Field(default=1.0, gt=0)


class Rpe(Strategy):
    name = "rpe"
    description = (
        "autoregulation: progress when the week's median RPE is `margin` below the target, "
        "regress when it is `margin` above"
    )
    Params = RpeParams

    def check(self, dose: Dose, params: BaseModel) -> Iterable[str]:
        assert isinstance(params, RpeParams)
        return _needs(dose, params.field)

    def propose(self, week: ExerciseWeek, params: BaseModel) -> Proposal:
        assert isinstance(params, RpeParams)
        scores = [
            o.rpe
            for s in week.sessions
            if s.scored
            for o in s.outcomes
            if o.rpe is not None and not o.skipped
        ]
        if not scores:
            return Proposal(
                "hold", "no RPE was logged in a scored session", week.dose, met_values(week)
            )
        mid = median(scores)
        values = {**met_values(week), "median_rpe": mid, "target": params.target}
        if mid >= params.target + params.margin:
            dose = self.regress(week.exercise, week.dose, params)
            reason = f"median RPE {mid:g} is {params.margin:g}+ above the target {params.target:g}"
            return Proposal("regress", reason, dose, values)
        if mid > params.target - params.margin:
            reason = f"median RPE {mid:g} is within {params.margin:g} of the target"
            return Proposal("hold", reason, week.dose, values)
        if not week.met:
            return not_met(week)
        current = value(week.dose, params.field)
        raised = cap(week.exercise, params.field, current + params.step)
        reason = (
            f"median RPE {mid:g} is {params.margin:g}+ below the target {params.target:g}; "
            f"{params.field} {current:g} -> {raised:g}"
        )
        return Proposal("progress", reason, week.dose.with_value(params.field, raised), values)

    def regress(self, exercise: Exercise, dose: Dose, params: BaseModel) -> Dose:
        assert isinstance(params, RpeParams)
        lowered = floor(exercise, params.field, value(dose, params.field) - params.step)
        return dose.with_value(params.field, lowered)


class LadderParams(_Params):
    variants: tuple[str, ...] = Field(min_length=2)
    field: NumericField = "reps"
    step: float = Field(default=1, gt=0)
    start: float = Field(gt=0)
    top: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LadderParams:
        if self.start > self.top:
            raise ValueError("start must not be above top")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError("variants must be distinct")
        return self


class Ladder(Strategy):
    name = "ladder"
    description = (
        "an ordered list of variants; when the top dose of one is met, move to the next "
        "variant at its start dose"
    )
    Params = LadderParams

    def check(self, dose: Dose, params: BaseModel) -> Iterable[str]:
        assert isinstance(params, LadderParams)
        yield from _needs(dose, params.field)
        if dose.variant not in params.variants:
            yield f"the starting variant {dose.variant!r} is not one of {list(params.variants)}"

    def propose(self, week: ExerciseWeek, params: BaseModel) -> Proposal:
        assert isinstance(params, LadderParams)
        if not week.met:
            return not_met(week)
        current = value(week.dose, params.field)
        index = params.variants.index(week.dose.variant or "")
        if current < params.top:
            raised = cap(week.exercise, params.field, current + params.step, params.top)
            dose = week.dose.with_value(params.field, raised)
            change = f"{params.field} {current:g} -> {raised:g}"
        elif index + 1 < len(params.variants):
            variant = params.variants[index + 1]
            dose = week.dose.model_copy(update={"variant": variant})
            dose = dose.with_value(params.field, params.start)
            change = f"top of {week.dose.variant!r} met: next variant {variant!r}"
        else:
            dose, change = week.dose, f"the last variant {week.dose.variant!r} is at its top"
        return Proposal("progress", f"{met_reason(week)}; {change}", dose, met_values(week))

    def regress(self, exercise: Exercise, dose: Dose, params: BaseModel) -> Dose:
        assert isinstance(params, LadderParams)
        current = value(dose, params.field)
        index = params.variants.index(dose.variant or "")
        if current - params.step >= floor(exercise, params.field, params.start):
            return dose.with_value(params.field, current - params.step)
        if index == 0:
            return dose
        easier = dose.model_copy(update={"variant": params.variants[index - 1]})
        return easier.with_value(params.field, params.top)


def _achieved(field: str) -> Callable[[ExerciseWeek], list[float]]:
    def per_session(week: ExerciseWeek) -> list[float]:
        out = []
        for session in week.sessions:
            # Only scored sessions: what is not known to be safe never sets a quota.
            done = [o for o in session.outcomes if not o.skipped]
            if not (done and session.scored):
                continue
            if field == "duration_s":
                out.append(max(sum(o.duration_s) for o in done))
            else:
                out.append(float(max(sum(o.reps) for o in done)))
        return out

    return per_session


class QuotaParams(_Params):
    field: Literal["duration_s", "reps"] = "duration_s"
    baseline_weeks: int = Field(default=1, ge=1)
    initial_fraction: float = Field(default=0.7, gt=0, le=1)
    increment: float = Field(gt=0)
    goal: float = Field(gt=0)


class Quota(Strategy):
    name = "quota"
    description = (
        "graded activity: baseline weeks, first quota = initial_fraction of the baseline "
        "mean, then a fixed increment per met week up to the goal; pain does not change it"
    )
    Params = QuotaParams

    def check(self, dose: Dose, params: BaseModel) -> Iterable[str]:
        assert isinstance(params, QuotaParams)
        return _needs(dose, params.field)

    def propose(self, week: ExerciseWeek, params: BaseModel) -> Proposal:
        assert isinstance(params, QuotaParams)
        if week.memory.get("phase") == "quota":
            return self._quota(week, params)
        return self._baseline(week, params)

    def _baseline(self, week: ExerciseWeek, params: QuotaParams) -> Proposal:
        achieved = _achieved(params.field)(week)
        total = float(week.memory.get("baseline_total") or 0) + sum(achieved)
        count = int(week.memory.get("baseline_sessions") or 0) + len(achieved)
        # A baseline week counts once it has as many scored sessions as a met week needs:
        # one long walk is no baseline for a first quota.
        counted = len(achieved) >= week.sessions_required
        weeks = int(week.memory.get("baseline_weeks") or 0) + (1 if counted else 0)
        memory: dict[str, Scalar] = {
            "phase": "baseline",
            "baseline_total": total,
            "baseline_sessions": count,
            "baseline_weeks": weeks,
        }
        values: dict[str, Scalar] = {"baseline_sessions": count, "baseline_weeks": weeks}
        if weeks < params.baseline_weeks:
            reason = f"baseline week {weeks} of {params.baseline_weeks} (sessions logged: {count})"
            if not counted:
                reason += (
                    f"; this week had {len(achieved)} scored sessions, a baseline week needs"
                    f" {week.sessions_required}"
                )
            return Proposal("hold", reason, week.dose, values, memory=memory)
        mean = total / count
        quota = cap(
            week.exercise, params.field, round_whole(mean * params.initial_fraction), params.goal
        )
        quota = floor(week.exercise, params.field, quota)
        values["baseline_mean"] = round_half_up(mean, 2)
        reason = (
            f"baseline complete (mean {mean:.0f} over {count} sessions): first quota "
            f"{params.field} {quota:g} ({params.initial_fraction:.0%} of the mean)"
        )
        dose = week.dose.with_value(params.field, quota)
        return Proposal(
            "progress", reason, dose, values, memory, progress_memory={"phase": "quota"}
        )

    def _quota(self, week: ExerciseWeek, params: QuotaParams) -> Proposal:
        if not week.met:
            return not_met(week)
        current = value(week.dose, params.field)
        raised = cap(week.exercise, params.field, current + params.increment, params.goal)
        reason = f"quota met in {week.met_sessions} scored sessions; {params.field} {current:g}"
        reason += f" -> {raised:g} (goal {params.goal:g})"
        dose = week.dose.with_value(params.field, raised)
        return Proposal("progress", reason, dose, met_values(week))

    def regress(self, exercise: Exercise, dose: Dose, params: BaseModel) -> Dose:
        assert isinstance(params, QuotaParams)
        lowered = floor(exercise, params.field, value(dose, params.field) - params.increment)
        return dose.with_value(params.field, lowered)


@hookimpl
def progressor_register_strategies(register: Callable[[Strategy], None]) -> None:
    for strategy in (Linear(), Double(), TwoForTwo(), Rpe(), Ladder(), Quota()):
        register(strategy)
