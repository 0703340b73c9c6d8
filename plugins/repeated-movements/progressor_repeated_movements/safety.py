"""The safety rule ``peripheralisation``: symptoms spreading into the leg mean less force.

With repeated movements, where the symptoms go matters more than how much they hurt:
pain that retreats towards the spine (centralisation) is the good response, pain that
spreads further into the leg (peripheralisation) is the warning. Patients log either as a
symptom code on the outcome (``flags = ["peripheralisation"]``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from pydantic import BaseModel, ConfigDict, Field

from progressor import Finding, Outcome, PainReport, SafetyRule, WeekView


def _normal(code: str) -> str:
    return "-".join(code.strip().lower().replace("_", " ").split())


def _matches(flags: Iterable[str], codes: Iterable[str]) -> bool:
    wanted = {_normal(c) for c in codes}
    return any(_normal(f) in wanted for f in flags)


def _days(records: Iterable[Outcome | PainReport], codes: Iterable[str]) -> list[dt.date]:
    """The days on which any of `records` carries one of `codes`."""
    return sorted({r.date for r in records if _matches(r.flags, codes)})


class PeripheralisationParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    codes: tuple[str, ...] = Field(default=("peripheralisation", "peripheralization"), min_length=1)
    centralisation: tuple[str, ...] = ("centralisation", "centralization")
    #: Days of the week with peripheralisation after which the exercise is paused.
    pause_after: int = Field(default=2, ge=1)


class Peripheralisation(SafetyRule):
    name = "peripheralisation"
    description = (
        "symptoms spreading into the leg during or after an exercise: one day -> one step "
        "back and flag; `pause_after` days -> pause that exercise, flag and alert; "
        "centralisation is noted"
    )
    Params = PeripheralisationParams

    def evaluate(self, week: WeekView, params: BaseModel) -> Iterator[Finding]:
        assert isinstance(params, PeripheralisationParams)
        for name, exercise in week.exercises.items():
            days = _days(exercise.outcomes, params.codes)
            if days:
                yield self._finding(name, days, params)
            central = _days(exercise.outcomes, params.centralisation)
            if central:
                when = ", ".join(map(str, central))
                reason = f"symptoms centralised (moved towards the spine) on {when}"
                yield Finding(None, reason, name, {"centralisation_days": len(central)})
        # Not tied to an exercise of the program: a stray outcome, or a pain report.
        loose = _days((*week.strays, *week.pain_reports), params.codes)
        if loose:
            when = ", ".join(map(str, loose))
            reason = f"symptoms spread further into the leg on {when}: no progression this week"
            yield Finding("hold", reason, None, {"days": len(loose)}, "review")

    def _finding(self, name: str, days: list[dt.date], params: PeripheralisationParams) -> Finding:
        when = ", ".join(map(str, days))
        values = {"days": len(days), "pause_after": params.pause_after}
        if len(days) >= params.pause_after:
            reason = (
                f"symptoms spread further into the leg on {len(days)} days ({when}): stop this "
                "exercise until the physiotherapist reassesses the direction of movement"
            )
            return Finding("pause", reason, name, values, "review", alert=True)
        reason = f"symptoms spread further into the leg on {when}: one step back"
        return Finding("regress", reason, name, values, "review")
