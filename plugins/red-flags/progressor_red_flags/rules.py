"""The red-flags safety rule: symptoms that need urgent medical review pause the program.

Patients (or the app they log with) attach symptom codes to an outcome or a pain report
(``flags = ["saddle-numbness"]``). The rule reads every record of the week, including
outcomes logged under an unknown exercise id: a misspelt exercise must not hide a red flag.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterable, Iterator, Mapping

from pydantic import BaseModel, ConfigDict, model_validator

from progressor import Finding, Record, SafetyRule, WeekView

#: Every code the rule knows, with the words a clinician reads in the alert.
SYMPTOMS: Mapping[str, str] = {
    "saddle-numbness": "numbness in the saddle area",
    "bladder-bowel": "new bladder or bowel changes",
    "leg-weakness": "progressive leg weakness",
    "night-pain": "constant pain at night",
    "fever": "fever or feeling unwell",
    "weight-loss": "unexplained weight loss",
}

#: Other names patients' apps use for the same symptoms.
ALIASES: Mapping[str, str] = {
    "bowel-bladder": "bladder-bowel",
    "saddle-anaesthesia": "saddle-numbness",
    "saddle-anesthesia": "saddle-numbness",
}

#: Signs of cauda equina compression or a progressing nerve deficit: an emergency whatever
#: the program says, so a program may not move them to `review`.
ALWAYS_URGENT: tuple[str, ...] = ("saddle-numbness", "bladder-bowel", "leg-weakness")

URGENT_FLAG = "urgent-review"
CODE = r"[a-z0-9][a-z0-9-]*"


class RedFlagsParams(BaseModel):
    """Which symptom codes pause the program (`urgent`) and which only hold it (`review`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urgent: tuple[str, ...] = tuple(SYMPTOMS)
    review: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> RedFlagsParams:
        for code in (*self.urgent, *self.review):
            if not re.fullmatch(CODE, code):
                raise ValueError(f"{code!r} is not a symptom code (lowercase, digits, dashes)")
        both = sorted(set(self.urgent) & set(self.review))
        if both:
            raise ValueError(f"codes both urgent and review: {', '.join(both)}")
        missing = [c for c in ALWAYS_URGENT if c not in self.urgent]
        if missing:
            raise ValueError(
                f"{', '.join(missing)} must stay urgent (possible cauda equina syndrome or a "
                "progressing nerve deficit)"
            )
        return self


class RedFlags(SafetyRule):
    name = "red-flags"
    description = (
        "red-flag symptoms (saddle numbness, bladder or bowel changes, progressive leg "
        "weakness, constant night pain, fever, weight loss) pause the program and raise an "
        "urgent alert: contact the patient today"
    )
    # A red flag is never a matter of one program: a clinic that installs this plugin wants
    # it on every patient, and an essential rule still alerts while a patient is paused.
    essential = True
    Params = RedFlagsParams

    def evaluate(self, week: WeekView, params: BaseModel) -> Iterator[Finding]:
        assert isinstance(params, RedFlagsParams)
        records: tuple[Record, ...] = (*week.outcomes, *week.strays, *week.pain_reports)
        yield from red_flag_findings([(r.date, code) for r in records for code in r.flags], params)

    def column_form(self) -> object:
        """The rule in columns (progressor.columns): its findings from each patient's symptoms,
        worded by `red_flag_findings` as here."""
        from progressor_red_flags.columns import RedFlagsColumns

        return RedFlagsColumns()


def red_flag_findings(
    logged: Iterable[tuple[dt.date, str]], params: RedFlagsParams
) -> Iterator[Finding]:
    """What the rule finds in a week's symptom flags (each the day and the code as logged,
    in any order): the one meaning of the rule, on either engine."""
    known = (*params.urgent, *params.review)
    reported, unknown = _reported(logged, known)
    urgent = {c: d for c, d in reported.items() if c in params.urgent}
    review = {c: d for c, d in reported.items() if c in params.review}
    if urgent:
        yield Finding(
            action="pause",
            reason=f"red flags reported: {_symptoms(urgent)}: contact the patient today; "
            "urgent medical review; program paused until a clinician resumes it",
            values=_values(urgent),
            flag=URGENT_FLAG,
            alert=True,
            urgent=True,
        )
    if review:
        yield Finding(
            action="hold",
            reason=f"symptoms to review: {_symptoms(review)}: ask the patient at the next "
            "contact; no progression until then",
            values=_values(review),
            flag="review",
            alert=True,
        )
    guesses = {code: _closest(code, known) for code in unknown}
    guesses = {code: guess for code, guess in guesses.items() if guess}
    if guesses:
        said = "; ".join(f"{c!r} (did you mean {g!r}?)" for c, g in sorted(guesses.items()))
        yield Finding(
            action="hold",
            reason=f"unrecognised symptom codes: {said}: check with the patient",
            values={"unrecognised": ", ".join(sorted(guesses))},
            flag="review",
            alert=True,
        )


def _reported(
    logged: Iterable[tuple[dt.date, str]], known: Iterable[str]
) -> tuple[dict[str, list[dt.date]], set[str]]:
    """Known codes with the days they were logged, and the codes the rule does not know."""
    codes = set(known)
    days: dict[str, set[dt.date]] = {}
    unknown: set[str] = set()
    for day, raw in logged:
        code = _normal(raw)
        if code in codes:
            days.setdefault(code, set()).add(day)
        else:
            unknown.add(raw)
    return {code: sorted(d) for code, d in sorted(days.items())}, unknown


def _normal(code: str) -> str:
    # "Saddle numbness" and "saddle_numbness" are the same symptom as "saddle-numbness":
    # a spelling must never decide whether a red flag is seen.
    normal = "-".join(code.strip().lower().replace("_", " ").split())
    return ALIASES.get(normal, normal)


def _closest(code: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(_normal(code), sorted(known), n=1, cutoff=0.75)
    return close[0] if close else None


def _symptoms(found: Mapping[str, list[dt.date]]) -> str:
    return "; ".join(
        f"{SYMPTOMS.get(code, code)} ({code}) on {', '.join(map(str, days))}"
        for code, days in found.items()
    )


def _values(found: Mapping[str, list[dt.date]]) -> dict[str, str | int | None]:
    return {
        "symptoms": ", ".join(found),
        "first_reported": str(min(d[0] for d in found.values())),
        "days": len({d for days in found.values() for d in days}),
    }
