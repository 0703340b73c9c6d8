"""What a log's text plainly says about pain, read by a tokenizer of its own.

This judge deliberately shares no code with progressor's readers: it is what a careful
person would make out of a line, and it only claims clear cases (a "pain_during": 9 at the
top level of a JSON object; a cell under a pain column of a CSV row whose cells line up with
its header), so that every loss it reports is a real one.

Two tiers (the rule of "reported unreadable", made strict):
- `plain`: a pain >= 7 (or out of 0-10, which counts as 10) together with a readable date
  (YYYY-MM-DD, or a date-time that starts with one). A reader must keep a record with a
  pain >= 7 for such a line; setting the line aside without its pain is a LOSS.
- `high` without a readable date: the pain cannot be placed in a week, so the line may
  instead be set aside with its own line number (a clinician then sees it); neither is a
  LOSS too.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: A pain of at least this pauses the program (the pain-flare rule's default pause_at).
PAUSE_AT = 7.0

_NEWLINE = re.compile(r"\r\n|\r|\n")  # how a file opened with newline="" splits its lines
_STRING = re.compile(r'"((?:[^"\\\r\n]|\\.)*)"')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_WORD = re.compile(r"true|false|null")
_PAIR_END = re.compile(r"[ \t]*(?:[,}]|$)")
_NUMERIC_TEXT = re.compile(r"\s*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)\s*(?:/\s*10\s*)?")
# ([0-9], not \d: a reader need not take Arabic-Indic or full-width digits for plain ones)
_DATE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?"
)


@dataclass(frozen=True)
class Seen:
    """What one physical line plainly says."""

    line: int
    high: bool  # a pain-like key with a value >= 7 or out of 0-10
    plain: bool  # ... and a readable date: its pain must be kept
    patients: frozenset[str]  # the values of its "patient" keys or cells

    def names(self, patient: str) -> bool:
        """Whether the line names `patient` and no one else."""
        return self.patients == {patient}


def physical_lines(text: str) -> list[str]:
    """The lines of `text` as a file opened with newline="" yields them (without ends)."""
    lines = _NEWLINE.split(text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def is_high(text: str, quoted: bool) -> bool:
    """Whether a value is a pain >= 7 or one out of 0-10 (which counts as 10)."""
    if not quoted and _NUMBER.fullmatch(text) is None:
        return False  # true, false, null
    if quoted:
        found = _NUMERIC_TEXT.fullmatch(text)
        if found is None:
            return False
        text = found.group(1)
    value = float(text)  # (no digit limit: a 5,000-digit pain is inf, out of range)
    return value >= PAUSE_AT or value < 0 or value > 10


def is_date(text: str) -> bool:
    found = _DATE.fullmatch(text)  # (a CSV cell comes stripped, as the reader strips it)
    if found is None:
        return False
    try:
        dt.date(*(int(part) for part in found.groups()))
    except ValueError:
        return False
    return True


# -- JSON lines ---------------------------------------------------------------------------------


def json_pairs(line: str) -> list[tuple[str, str, bool]]:
    """(key, value text, value was a string) of each plain pair at the top level of the
    object the line opens: a key after `{` or `,`, then `:`, a string, number or word, then
    `,` or `}` (or the end of the line). A pair whose value is an object or array is skipped
    over. Scanning stops at the first irregularity at the top level (anything else: a string
    out of place, stray characters, an unterminated string, a stray closer, the end of the
    top object), since after it which quote opens a string is a guess."""
    text = line.removeprefix("\ufeff")
    start = len(text) - len(text.lstrip())
    if not text[start:].startswith("{"):
        return []
    pairs: list[tuple[str, str, bool]] = []
    stack: list[str] = []
    last = ""  # the last significant character at the top level
    pos = start
    while pos < len(text):
        char = text[pos]
        top = stack == ["{"]
        if char == '"':
            key = _STRING.match(text, pos)
            if key is None or (top and last not in "{,"):
                break
            if not top:
                pos = key.end()
                continue
            pair = _pair_at(text, key)
            if pair is not None:
                pairs.append(pair[0])
                pos, last = pair[1], "v"
                continue
            nested = _nested_value_at(text, key.end())
            if nested is None:
                break
            pos, last = nested, ":"
            continue
        if char in "{[":
            stack.append(char)
        elif char in "}]" and (not stack or {"}": "{", "]": "["}[char] != stack.pop() or not stack):
            break  # a stray closer, or the end of the top object
        elif top and not char.isspace() and char != ",":
            break  # stray characters between the pairs
        if len(stack) == 1 and not char.isspace():
            last = char
        pos += 1
    return pairs


def _nested_value_at(text: str, pos: int) -> int | None:
    """Where the object or array value of a key ending at `pos` opens, if it is one."""
    pos = _skip(text, pos)
    if not text.startswith(":", pos):
        return None
    pos = _skip(text, pos + 1)
    return pos if text.startswith(("{", "["), pos) else None


def _pair_at(text: str, key: re.Match[str]) -> tuple[tuple[str, str, bool], int] | None:
    pos = _skip(text, key.end())
    if not text.startswith(":", pos):
        return None
    pos = _skip(text, pos + 1)
    value: re.Match[str] | None
    quoted = text.startswith('"', pos)
    value = (_STRING if quoted else _NUMBER).match(text, pos) or _WORD.match(text, pos)
    if value is None or _PAIR_END.match(text, value.end()) is None:
        return None
    content = value.group(1) if quoted else value.group()
    return (key.group(1), content, quoted), value.end()


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _seen(number: int, pairs: Iterable[tuple[str, str, bool]]) -> Seen:
    """A line's verdict from its pairs: a key spelt `Date` or `DATE` is still the date (what
    apps write is input; CSV columns come here stripped, as the reader strips them); whose
    line it is needs the key `patient` exactly."""
    high = dated = False
    patients: set[str] = set()
    for key, value, quoted in pairs:
        name = key.lower()
        if "pain" in name and "\\" not in key and is_high(value, quoted):
            high = True
        elif name == "date" and quoted and is_date(value):
            dated = True
        elif key == "patient":
            patients.add(value if quoted else f"<{value}>")
    return Seen(number, high, high and dated, frozenset(patients))


def seen_jsonl(text: str) -> list[Seen]:
    return [
        _seen(number, json_pairs(line)) for number, line in enumerate(physical_lines(text), start=1)
    ]


# -- CSV ----------------------------------------------------------------------------------------


def seen_csv(text: str) -> list[Seen]:
    """Each data row that plainly lines up with the header: no quote in the header or in any
    row up to it (quoting can join lines), as many cells as columns. The separator is `,`,
    or `;` when the header has no comma (what a spreadsheet in a comma-decimal locale writes)."""
    lines = physical_lines(text)
    if not lines or '"' in lines[0]:
        return []
    header = lines[0].removeprefix("\ufeff")
    sep = "," if "," in header or ";" not in header else ";"
    # (columns are named loosely, as the README documents: `Date`, ` pain_before`)
    columns = [column.strip(" \t").lower() for column in header.split(sep)]
    seen = []
    for number, line in enumerate(lines[1:], start=2):
        if '"' in line:
            break
        cells = line.split(sep)
        if len(cells) == len(columns) and line.strip():
            pairs = [
                ("patient" if c == "patient" else c, cell.strip(), True)
                for c, cell in zip(columns, cells, strict=True)
            ]
            seen.append(_seen(number, pairs))
    return seen


def seen_log(text: str, fmt: str) -> list[Seen]:
    return seen_csv(text) if fmt == "csv" else seen_jsonl(text)


# -- verdicts -----------------------------------------------------------------------------------


def record_pain(record: Mapping[str, object]) -> float:
    """The highest pain of a record as a reader returns or a store holds it (-1: none)."""
    keys = ("pain", "pain_before", "pain_during", "pain_after", "pain_next_morning")
    pains = [float(v) for k in keys if isinstance(v := record.get(k), int | float)]
    return max(pains, default=-1.0)


def losses_of_log(
    seen: Iterable[Seen], pains: Iterable[float], aside_lines: Iterable[int | None]
) -> list[str]:
    """The lines whose pain a reader lost. The case holds one line that may be high (the
    others are low), so any record with a pain >= 7 is that line's."""
    kept = any(p >= PAUSE_AT for p in pains)
    aside = set(aside_lines)
    return [
        f"line {s.line}: a pain >= {PAUSE_AT:g} "
        + ("with its date, not kept" if s.plain else "neither kept nor its line set aside")
        for s in seen
        if s.high and not kept and (s.plain or s.line not in aside)
    ]


def losses_of_import(
    seen: Iterable[Seen], patient: str, stored: Mapping[int, float], quarantined: Iterable[int]
) -> list[str]:
    """The lines naming `patient` (enrolled) whose pain the store does not hold: `stored`
    maps a line to the highest pain stored from it (kept-for-safety reports included)."""
    aside = set(quarantined)
    return [
        f"line {s.line}: a pain >= {PAUSE_AT:g} of {patient} "
        + ("with its date, not stored" if s.plain else "neither stored nor quarantined")
        for s in seen
        if s.high
        and s.names(patient)
        and stored.get(s.line, -1.0) < PAUSE_AT
        and (s.plain or s.line not in aside)
    ]


def stored_pain(record_json: str) -> float:
    data = json.loads(record_json)
    return record_pain(data) if isinstance(data, dict) else -1.0
