"""Built-in safety rules: pain-flare, new-pain, pain-monitoring, adherence and missing-data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence

from pydantic import BaseModel, ConfigDict, Field

from progressor import hookimpl
from progressor.core.components import Finding, SafetyRule
from progressor.core.models import Outcome
from progressor.core.rounding import round_half_up
from progressor.core.week import WeekView


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _adverse_days(week: WeekView) -> list[dt.date]:
    """The days with an adverse event, however it was logged: the outcome's field, or the
    flag "adverse-event" on an outcome or a pain report."""
    for o in week.outcomes:  # the usual week has no event and no flag: one quick pass
        if o.adverse_event or o.flags:
            break
    else:
        reports = week.pain_reports  # (often none: then no generator to set up)
        if not week.strays and not (reports and any(r.flags for r in reports)):
            return []
    outcomes = (*week.outcomes, *week.strays)
    return sorted(
        {o.date for o in outcomes if o.adverse_event or "adverse-event" in o.flags}
        | {r.date for r in week.pain_reports if "adverse-event" in r.flags}
    )


class PainFlareParams(_Params):
    pause_at: float = Field(default=7, gt=0, le=10)


class PainFlare(SafetyRule):
    name = "pain-flare"
    description = (
        "any pain score >= pause_at, or any adverse event, pauses the whole program and "
        "raises a clinician alert"
    )
    essential = True
    Params = PainFlareParams

    def evaluate(self, week: WeekView, params: BaseModel) -> Iterator[Finding]:
        assert isinstance(params, PainFlareParams)
        scores = week.pain_scores
        highest = max(scores, default=None)
        adverse = _adverse_days(week)
        flare = highest is not None and highest >= params.pause_at
        if not (flare or adverse):
            if week.pain_reports:  # (a week without any: no generator to set up)
                yield from self._reported_flares(week)
            return
        causes = []
        if flare:
            causes.append(f"pain {highest:g}/10 reached the pause threshold {params.pause_at:g}")
        if adverse:
            causes.append(f"adverse event logged on {', '.join(map(str, adverse))}")
        yield Finding(
            action="pause",
            reason="; ".join(causes) + ": program paused until a clinician resumes it",
            values={
                "max_pain": highest,
                "pause_at": params.pause_at,
                "adverse_events": len(adverse),
            },
            flag="review",
            alert=True,
        )

    def column_form(self) -> object:
        """In columns: a patient on whom the rule may find anything goes per-patient."""
        from progressor.columns.builtin import PainFlareColumns

        return PainFlareColumns()

    def _reported_flares(self, week: WeekView) -> Iterator[Finding]:
        # A patient who says "flare" is heard even below the pause threshold: hold, review.
        reported = [r for r in week.pain_reports if r.context == "flare"]
        if reported:
            worst = max(reported, key=lambda r: (r.pain, r.date))
            reason = (
                f"the patient reported a flare (pain {worst.pain:g}/10 on {worst.date}): "
                "no progression until a clinician has reviewed it"
            )
            yield Finding("hold", reason, None, {"reported_flares": len(reported)}, "review")


class NewPainParams(_Params):
    tolerance: float = Field(default=0, ge=0, le=10)


class NewPain(SafetyRule):
    name = "new-pain"
    description = (
        "pain during or after an exercise above the pain before it by more than `tolerance`: "
        "once in the week -> regress and flag; in two or more sessions -> pause and flag"
    )
    Params = NewPainParams

    def evaluate(self, week: WeekView, params: BaseModel) -> Iterator[Finding]:
        assert isinstance(params, NewPainParams)
        tolerance = params.tolerance
        for name, exercise in week.exercises.items():
            # The sessions share out the exercise's outcomes, so no session rose more than the
            # week as a whole: one pass settles the usual week, with no rise at all.
            if _rise(exercise.outcomes) <= tolerance:
                continue
            rises = [(session.date, _rise(session.outcomes)) for session in exercise.sessions]
            yield from new_pain_findings(name, rises, tolerance)

    def column_form(self) -> object:
        """In columns: each exercise's sessions with a rise, given to new_pain_findings."""
        from progressor.columns.builtin import NewPainColumns

        return NewPainColumns()


def new_pain_findings(
    name: str, rises: Iterable[tuple[dt.date, float]], tolerance: float
) -> Iterator[Finding]:
    """New pain's finding for exercise `name` from each session's day and rise (`_rise`, in
    the sessions' order): none when no session rose above `tolerance`."""
    days: list[dt.date] = []
    worst = 0.0
    for day, rise in rises:
        if rise > tolerance:
            days.append(day)
            worst = max(worst, rise)
    if not days:
        return
    dates = ", ".join(map(str, days))
    values = {"sessions": len(days), "largest_rise": worst, "tolerance": tolerance}
    if len(days) >= 2:
        reason = f"pain rose above the pain before exercising in {len(days)} sessions"
        yield Finding("pause", f"{reason} ({dates})", name, values, "review", alert=True)
    else:
        reason = f"pain rose {worst:g} above the pain before exercising on {dates}"
        yield Finding("regress", reason, name, values, "review")


def _rise(outcomes: tuple[Outcome, ...]) -> float:
    """How far pain during or after rose above the pain before (0 when unknown)."""
    rise = 0.0
    for o in outcomes:
        before = o.pain_before
        if before is None:
            continue
        during, after = o.pain_during, o.pain_after
        if during is not None and during - before > rise:
            rise = during - before
        if after is not None and after - before > rise:
            rise = after - before
    return rounded_rise(rise)


def rounded_rise(rise: float) -> float:
    """A rise of pain as new pain compares it (0 when pain did not rise)."""
    # Pain scores are given to at most two decimals: rounding removes float residue.
    return round_half_up(rise, 2) if rise > 0 else 0.0


class PainMonitoringParams(_Params):
    max_during: float = Field(default=5, ge=0, le=10)
    weekly_increase: float = Field(default=1.0, gt=0)


class PainMonitoring(SafetyRule):
    name = "pain-monitoring"
    description = (
        "pain during may reach max_during (above -> regress that exercise); next-morning pain "
        "above that day's pain before -> hold all; weekly mean up by weekly_increase -> hold "
        "all and flag"
    )
    Params = PainMonitoringParams

    def evaluate(self, week: WeekView, params: BaseModel) -> Iterator[Finding]:
        assert isinstance(params, PainMonitoringParams)
        for name, exercise in week.exercises.items():
            during = [o.pain_during for o in exercise.outcomes if o.pain_during is not None]
            if during and max(during) > params.max_during:
                reason = (
                    f"pain during exercise reached {max(during):g}, above the accepted "
                    f"{params.max_during:g}"
                )
                values = {"max_during": max(during), "accepted": params.max_during}
                yield Finding("regress", reason, name, values)
        yield from self._next_morning(week)
        mean, previous = week.mean_pain, week.history.mean_pain
        if (
            mean is not None
            and previous is not None
            and round_half_up(mean - previous, 2) >= params.weekly_increase
        ):
            reason = (
                f"weekly mean pain rose from {previous:g} to {mean:g} "
                f"(by {params.weekly_increase:g} or more)"
            )
            values = {"mean_pain": mean, "previous_mean_pain": previous}
            yield Finding("hold", reason, None, values, "review")

    def _next_morning(self, week: WeekView) -> Iterator[Finding]:
        before: dict[dt.date, float] = {}
        for o in week.outcomes:
            if o.pain_before is not None:
                before[o.date] = min(before.get(o.date, 10.0), o.pain_before)
        worse = [
            (o.date, o.pain_next_morning)
            for o in week.outcomes
            if o.pain_next_morning is not None
            and o.date in before
            and o.pain_next_morning > before[o.date]
        ]
        worse += [
            (r.date - dt.timedelta(days=1), r.pain)
            for r in week.pain_reports
            if r.context == "morning"
            and (d := r.date - dt.timedelta(days=1)) in before
            and r.pain > before[d]
        ]
        if worse:
            day, pain = min(worse)
            reason = (
                f"next-morning pain {pain:g} after {day} was above that day's pain before "
                f"exercising ({before[day]:g})"
            )
            yield Finding("hold", reason, None, {"next_morning": pain, "pain_before": before[day]})


class AdherenceParams(_Params):
    min_sessions: int | None = Field(default=None, ge=1, le=14)
    gap_weeks: int = Field(default=2, ge=1)


class Adherence(SafetyRule):
    name = "adherence"
    description = (
        "fewer than min_sessions logged sessions (default: the exercise's sessions_required) "
        "-> hold; no session at all for gap_weeks weeks -> regress every exercise and flag"
    )
    Params = AdherenceParams

    def evaluate(self, week: WeekView, params: BaseModel) -> Iterator[Finding]:
        assert isinstance(params, AdherenceParams)
        gap = 0 if week.any_session else week.history.weeks_without_sessions + 1
        if gap and gap % params.gap_weeks == 0:
            reason = f"no session logged for {gap} consecutive weeks: one step back"
            yield Finding("regress", reason, None, {"weeks_without_sessions": gap}, "review")
        elif gap > params.gap_weeks:  # still away: keep the patient in the review queue
            reason = f"no session logged for {gap} consecutive weeks: the patient may have stopped"
            yield Finding("hold", reason, None, {"weeks_without_sessions": gap}, "review")
        min_sessions = params.min_sessions
        for name, exercise in week.exercises.items():
            needed = min_sessions or exercise.sessions_required
            done = exercise.done_sessions
            if done < needed:
                yield too_few_sessions(name, done, needed)

    def column_form(self) -> object:
        """The rule in columns (progressor.columns): holds where too few sessions were logged;
        a patient without any session goes per-patient when the gap rule may match."""
        from progressor.columns.builtin import AdherenceColumns

        return AdherenceColumns()


def too_few_sessions(exercise: str, done: int, needed: int) -> Finding:
    """Adherence's hold of an exercise logged in fewer sessions than needed."""
    reason = f"{done} sessions logged, {needed} needed: no catch-up of missed steps"
    return Finding("hold", reason, exercise, {"sessions": done, "min_sessions": needed})


def unscored_finding(name: str, days: Sequence[dt.date]) -> Finding:
    """Missing data's note on exercise `name`: its outcomes without pain scores (each one's
    day), not counted towards progress."""
    listed = ", ".join(sorted({str(day) for day in days}))
    reason = f"{len(days)} outcomes without pain scores not counted towards progress ({listed})"
    return Finding(None, reason, name, {"unscored": len(days)})


def unscored_week_finding(done: int) -> Finding:
    """Missing data's flag for a week of `done` sessions, not one of them with pain scores."""
    reason = (
        f"{done} sessions done this week, none with pain scores: "
        "nothing can progress until pain is scored again"
    )
    return Finding(None, reason, None, {"sessions": done, "scored": 0}, flag="review")


class MissingData(SafetyRule):
    name = "missing-data"
    description = (
        "outcomes without pain scores, unknown exercises and dates outside the week are "
        "never counted towards progress; each is reported in the decision; a week of "
        "sessions without a single pain score is flagged for review"
    )
    essential = True

    def evaluate(self, week: WeekView, params: BaseModel) -> Iterator[Finding]:
        if week.set_aside:
            reasons = sorted({s.reason for s in week.set_aside})
            reason = f"{len(week.set_aside)} records not used: " + "; ".join(reasons)
            yield Finding(None, reason, None, {"set_aside": len(week.set_aside)})
        for name, exercise in week.exercises.items():
            if exercise.unscored:
                yield unscored_finding(name, [o.date for o in exercise.unscored])
        # Sessions done, but not one with pain scores: nothing can progress, and a patient
        # who has stopped scoring pain is someone a clinician should hear about.
        done, met = 0, False
        for exercise in week.exercises.values():
            done += exercise.done_sessions
            met = met or exercise.met_sessions > 0  # a met session is a scored one
        if (
            done
            and not met
            and not any(s.scored for e in week.exercises.values() for s in e.sessions)
        ):
            yield unscored_week_finding(done)

    def column_form(self) -> object:
        """In columns: the unscored outcomes' days and the week's sessions given to
        unscored_finding and unscored_week_finding (the column path reads no record it would
        set aside)."""
        from progressor.columns.builtin import MissingDataColumns

        return MissingDataColumns()


@hookimpl
def progressor_register_safety_rules(register: Callable[[SafetyRule], None]) -> None:
    for rule in (PainFlare(), NewPain(), PainMonitoring(), Adherence(), MissingData()):
        register(rule)
