"""A FHIR R4 Bundle of Observations as progressor's records, through the one reader.

Each Observation becomes one record JSON object (a pain report or an outcome) and the
lines go to progressor.reading.read_log, which decides what is used and what is set
aside (a pain of 42 is set aside there and kept as 10 for the safety rules). What this
module checks itself is only what the reader cannot see: the codes and units of FHIR.
An entry whose code or unit is wrong is handed over with the FHIR element it could not
map as an extra key, so the reader sets it aside and still keeps its pain scores.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from progressor.core.models import SetAside
from progressor.errors import ProgressorError
from progressor.fhir.codes import (
    EXERCISE_SYSTEM,
    FIELD_UNITS,
    LOINC,
    OUTCOME_SYSTEM,
    PAIN_SEVERITY,
    PAIN_UNITS,
)
from progressor.reading import Log, read_log

#: The key an entry's unmappable FHIR elements are handed to the reader under (no record
#: field has this name, so the reader sets the record aside, its pain scores kept).
UNMAPPED = "fhir_unmapped"

#: A session's components by code (OUTCOME_SYSTEM): the outcome field each fills.
_SCORES = ("pain_before", "pain_during", "pain_after", "pain_next_morning", "rpe")
_LISTS = ("reps", "duration_s")
_NUMBERS = ("hold_s", "load_kg")
_FLAGS = ("skipped", "adverse_event")
COMPONENTS = (*_LISTS, *_NUMBERS, *_SCORES, *_FLAGS)


class FhirError(ProgressorError):
    """A Bundle that cannot be read at all: not JSON, not a Bundle FHIR R4 accepts."""


@dataclass
class _Entry:
    """One Observation as a record, with the FHIR path each of its keys came from."""

    where: str
    record: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def put(self, key: str, value: Any, path: str) -> None:
        self.record[key] = value
        self.paths[key] = f"{self.where}.{path}"

    def add(self, key: str, value: Any, path: str) -> None:
        items = self.record.setdefault(key, [])
        self.paths[f"{key}.{len(items)}"] = self.paths[key] = f"{self.where}.{path}"
        items.append(value)

    def refuse(self, path: str, message: str) -> None:
        self.problems.append(f"{self.where}.{path}: {message}")


@dataclass(frozen=True)
class Imported:
    """A Bundle's records as the reader read them, and what was set aside, located."""

    log: Log
    #: The record lines handed to the reader, one per Observation.
    lines: tuple[str, ...]
    #: Each set-aside record, its source naming the Bundle entry and element.
    set_aside: tuple[SetAside, ...]


def read_bundle(text: str, source: str, today: dt.date | None = None) -> Imported:
    """The records of a Bundle's Observations, read by the one record reader."""
    raw = _bundle(text, source)
    entries = list(_entries(raw))
    lines = [json.dumps(e.record, ensure_ascii=False) for e in entries]
    log = read_log(lines, source, "jsonl", today=today)
    aside = tuple(_located(item, entries, source) for item in log.set_aside)
    return Imported(log, tuple(lines), aside)


def _bundle(text: str, source: str) -> dict[str, Any]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FhirError(f"{source}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    if not isinstance(raw, dict) or raw.get("resourceType") != "Bundle":
        raise FhirError(f"{source}: not a FHIR Bundle (its resourceType must be 'Bundle')")
    try:
        Bundle.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{source}: {_path(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise FhirError("\n".join(problems)) from None
    return raw


def _path(loc: tuple[int | str, ...]) -> str:
    out = "Bundle"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _entries(raw: dict[str, Any]) -> Iterator[_Entry]:
    for index, item in enumerate(raw.get("entry") or []):
        resource = item.get("resource") or {}
        entry = _Entry(f"Bundle.entry[{index}].resource")
        if resource.get("resourceType") != "Observation":
            entry.refuse("resourceType", f"{resource.get('resourceType')!r} is no Observation")
        else:
            _observation(entry, resource)
        if entry.problems:
            entry.record[UNMAPPED] = [p.partition(": ")[0] for p in entry.problems]
        yield entry


def _observation(entry: _Entry, resource: dict[str, Any]) -> None:
    codings = (resource.get("code") or {}).get("coding") or []
    pain = any(c.get("system") == LOINC and c.get("code") == PAIN_SEVERITY for c in codings)
    exercise = next((c for c in codings if c.get("system") == EXERCISE_SYSTEM), None)
    _common(entry, resource)
    if pain:
        entry.put("kind", "pain", "code")
        _value(entry, resource, "", "pain", PAIN_UNITS)
    elif exercise is not None:
        entry.put("kind", "outcome", "code")
        entry.put("exercise", exercise.get("code"), "code.coding")
        for index, component in enumerate(resource.get("component") or []):
            _component(entry, component, f"component[{index}]")
    else:
        shown = [f"{c.get('system')}|{c.get('code')}" for c in codings] or ["none"]
        entry.refuse(
            "code",
            f"code {', '.join(shown)} is neither pain severity ({LOINC}|{PAIN_SEVERITY}) "
            f"nor an exercise session ({EXERCISE_SYSTEM}|<exercise id>)",
        )
        if "valueQuantity" in resource or "valueInteger" in resource:
            _value(entry, resource, "", "pain", PAIN_UNITS)  # a score it holds still counts


def _common(entry: _Entry, resource: dict[str, Any]) -> None:
    """The day (as written: the reader takes a date-time's day), the patient and the note."""
    for name in ("effectiveDateTime", "effectiveInstant"):
        if name in resource:
            entry.put("date", resource[name], name)
            break
    else:
        start = (resource.get("effectivePeriod") or {}).get("start")
        if start is not None:
            entry.put("date", start, "effectivePeriod.start")
        else:
            entry.refuse("effectiveDateTime", "missing: the day the score or session was logged")
    subject = resource.get("subject") or {}
    reference = subject.get("reference") or ""
    patient = reference.removeprefix("Patient/") if reference.startswith("Patient/") else None
    patient = patient or (subject.get("identifier") or {}).get("value")
    if patient is not None:
        entry.put("patient", patient, "subject")
    notes = [n.get("text") for n in resource.get("note") or [] if n.get("text")]
    if notes:
        entry.put("note", " ".join(notes), "note")


def _value(
    entry: _Entry, element: dict[str, Any], path: str, key: str, units: frozenset[str] | None
) -> None:
    """The number of `element`'s valueQuantity or valueInteger under `key`; a unit not in
    `units` (None: no unit at all) is refused, the number still handed over."""
    prefix = f"{path}." if path else ""
    if "valueInteger" in element:
        entry.put(key, element["valueInteger"], f"{prefix}valueInteger")
        return
    quantity = element.get("valueQuantity")
    if quantity is None:
        entry.refuse(f"{prefix}value[x]", "a number is needed (valueQuantity or valueInteger)")
        return
    entry.put(key, quantity.get("value"), f"{prefix}valueQuantity.value")
    unit = quantity.get("code") or quantity.get("unit")
    if unit is not None and unit not in (units or ()):
        wanted = " or ".join(sorted(units)) if units else "none"
        entry.refuse(f"{prefix}valueQuantity.unit", f"unit {unit!r} for {key}; expected {wanted}")


def _component(entry: _Entry, component: dict[str, Any], path: str) -> None:
    codings = (component.get("code") or {}).get("coding") or []
    code = next((c.get("code") for c in codings if c.get("system") == OUTCOME_SYSTEM), None)
    if code not in COMPONENTS:
        shown = code if code is not None else "no code"
        entry.refuse(
            f"{path}.code",
            f"{shown!r} is no session component of {OUTCOME_SYSTEM}; "
            f"one of {', '.join(COMPONENTS)}",
        )
        if "pain" in str(code).lower():
            _value(entry, component, path, str(code), PAIN_UNITS)
        return
    if code in _FLAGS:
        entry.put(code, component.get("valueBoolean"), f"{path}.valueBoolean")
    elif code in _LISTS:
        probe = _Entry(entry.where)
        _value(probe, component, path, code, _units(code))
        entry.add(code, probe.record.get(code), probe.paths.get(code, f"{path}"))
        entry.problems.extend(probe.problems)
    else:
        _value(entry, component, path, code, _units(code))


def _units(code: str) -> frozenset[str]:
    unit = FIELD_UNITS.get(code)
    if code in _SCORES:
        return PAIN_UNITS
    return frozenset({unit}) if unit else frozenset({"1", "{repetitions}", "repetitions"})


def _located(item: SetAside, entries: list[_Entry], source: str) -> SetAside:
    """A set-aside record named by its Bundle entry and, where the reason names a key,
    the FHIR element that key came from (`Bundle.entry[3].resource.valueQuantity.value`)."""
    if item.line is None or not 0 < item.line <= len(entries):
        return item
    entry = entries[item.line - 1]
    if entry.problems:  # (the reader's reason then names the unmapped key too)
        reason = "; ".join(entry.problems) + f"; set aside ({item.reason})"
        return SetAside(source=source, reason=reason, record=item.record)
    # The reader's reason names each key ("pain: ...", "reps.1: ..."): the first one named.
    keys = [part.split(":")[0] for part in item.reason.split("; ")]
    found = (entry.paths.get(k) or entry.paths.get(k.split(".")[0]) for k in keys)
    where = next((path for path in found if path), entry.where)
    return SetAside(source=source, reason=f"{where}: {item.reason}", record=item.record)
