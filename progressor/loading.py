"""Read programs (TOML) and logs (JSONL, CSV) into models, with located errors.

Programs: every problem is reported with file, line and key path, and a suggestion for
unknown keys. Logs: a bad record is set aside with its line number and reason; the good
records are returned.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sys
import tomllib
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from progressor.errors import (
    KeyPath,
    LogError,
    Problem,
    ProgramError,
    did_you_mean,
    format_path,
)
from progressor.models import (
    DUPLICATE_ID,
    ID_WORDS,
    UNKNOWN_KEY_ERRORS,
    Dose,
    Exercise,
    Limits,
    Outcome,
    PainReport,
    Program,
    Progression,
    Record,
    SetAside,
)
from progressor.plugins import Registries
from progressor.toml_keys import MAX_NESTING, scan
from progressor.toml_keys import key_lines as key_lines  # (a public name of this module)
from progressor.validation import names_problems


def _fields_at(path: KeyPath) -> Iterable[str]:
    """The known keys of the table at `path`, for 'did you mean' on an unknown key."""
    models: dict[tuple[object, ...], type[BaseModel] | type[Limits]] = {
        (): Program,
        ("exercises", int): Exercise,
        ("exercises", int, "dose"): Dose,
        ("exercises", int, "floor"): Limits,
        ("exercises", int, "ceiling"): Limits,
        ("exercises", int, "progression"): Progression,
    }
    shape = tuple(int if isinstance(p, int) else p for p in path)
    model = models.get(shape)
    return model.model_fields if model else ()


def _problems(
    error: ValidationError, source: str | None, lines: dict[KeyPath, int]
) -> list[Problem]:
    problems = []
    for item in error.errors():
        path: KeyPath = tuple(item["loc"])
        message, suggestion = item["msg"], None
        if item["type"] in UNKNOWN_KEY_ERRORS and path:
            message = "unknown key"
            suggestion = did_you_mean(str(path[-1]), _fields_at(path[:-1]))
        elif item["type"] == DUPLICATE_ID:  # at the second one's id
            path = (*path, item["ctx"]["index"], "id")
        elif item["type"] == "string_pattern_mismatch" and path[-1:] == ("id",):
            message, suggestion = ID_WORDS, _id_like(str(item["input"]))
        problems.append(Problem(message, source, _line(path, lines), path, suggestion))
    return problems


def _line(path: KeyPath, lines: dict[KeyPath, int]) -> int | None:
    """The line of the longest prefix of `path` that the text defines."""
    return next(
        (lines[path[:end]] for end in range(len(path), -1, -1) if path[:end] in lines), None
    )


#: Letters that do not fold to ASCII by dropping an accent, spelt as German and Nordic
#: clinicians spell them without the letter.
_SPELT_OUT = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "æ": "ae", "ø": "oe", "å": "aa", "œ": "oe"}
)


def _id_like(text: str) -> str | None:
    """An id close to `text` that a program may use ('Brücke 2' -> 'bruecke-2'), as advice."""
    spelt = unicodedata.normalize("NFKD", text.lower().translate(_SPELT_OUT))
    ascii_only = spelt.encode("ascii", errors="ignore").decode()
    folded = re.sub(r"[^a-z0-9]+", "-", ascii_only).strip("-")
    return f"e.g. {folded!r}" if folded else None


#: The largest program read, in bytes of its file (characters of a text): real programs
#: are a few kB; the bound keeps any text's reading well under a second.
MAX_PROGRAM_BYTES = 1_000_000


def parse_program(
    text: str, source: str | None = None, registries: Registries | None = None
) -> Program:
    """A Program from TOML text; raise ProgramError with every located problem.

    With `registries` (an engine's), a program whose structure is not sound also has its
    unknown names and bad parameters reported, in the same round.
    """
    if len(text) > MAX_PROGRAM_BYTES:
        raise ProgramError([_too_large(len(text), source)])
    found = scan(text)
    if found.too_deep is not None:
        message = f"nested more than {MAX_NESTING} levels deep (tables, keys and arrays)"
        raise ProgramError([Problem(message, source, found.too_deep)])
    data = _toml(text, source)
    try:
        program = Program.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc, source, found.lines)
        if registries is not None:
            named = names_problems(data, source, found.lines, registries)
            problems += [p for p in named if p not in problems]
        raise ProgramError(sorted(problems, key=_in_file_order)) from None
    program._source = source
    program._lines = found.lines
    return program


def _in_file_order(problem: Problem) -> tuple[int, str]:
    return (problem.line or 0, format_path(problem.path))


def _toml(text: str, source: str | None) -> dict[str, Any]:
    """The TOML document; anything tomllib raises becomes a located problem."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        line = int(found.group(1)) if found else None
        raise ProgramError([Problem(f"not valid TOML: {exc}", source, line)]) from None
    except ValueError as exc:
        long = _LONG_NUMBER.search(text)
        if long is None:
            raise ProgramError([_unreadable(exc, source)]) from None
        # int's own limit on the digits it converts (a guard against slow conversions)
        line = text.count("\n", 0, long.start()) + 1
        message = f"a number of more than {_MAX_DIGITS} digits cannot be read"
        raise ProgramError([Problem(message, source, line)]) from None
    except Exception as exc:  # (RecursionError, say: a program is refused, never a traceback)
        raise ProgramError([_unreadable(exc, source)]) from None


def _unreadable(exc: Exception, source: str | None) -> Problem:
    return Problem(f"cannot be read as TOML ({type(exc).__name__}: {exc})", source)


_MAX_DIGITS = sys.get_int_max_str_digits()
_LONG_NUMBER = re.compile(f"[0-9_]{{{_MAX_DIGITS + 1},}}")


def _too_large(size: int, source: str | None) -> Problem:
    return Problem(
        f"the program is {size:,} bytes, more than the {MAX_PROGRAM_BYTES:,} a program may be",
        source,
        suggestion="is this the right file?",
    )


def load_program(path: str | Path, registries: Registries | None = None) -> Program:
    """A Program from a TOML file; raise ProgramError with every located problem (see
    parse_program for `registries`)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_PROGRAM_BYTES + 1)
    except OSError as exc:
        raise ProgramError(
            [Problem(f"cannot read the program: {exc.strerror}", str(path))]
        ) from None
    if len(raw) > MAX_PROGRAM_BYTES:
        raise ProgramError([_too_large(path.stat().st_size, str(path))])
    return parse_program(_utf8(raw, str(path)), str(path), registries)


def _utf8(raw: bytes, source: str) -> str:
    """The file's text; a file in another encoding is refused at its first bad byte."""
    try:
        return raw.decode("utf-8-sig")  # (a byte-order mark, as Windows editors write, is no key)
    except UnicodeDecodeError as exc:
        read = exc.object  # (what was decoded: after a byte-order mark, if there is one)
        line = read.count(b"\n", 0, exc.start) + 1
        column = exc.start - (read.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = read[exc.start : exc.start + 1]
        guess = byte.decode("cp1252", errors="replace")
        message = (
            f"not UTF-8 text: byte 0x{byte.hex()} at column {column} "
            f"(in Windows-1252 it would be {guess!r})"
        )
        hint = "re-save the file as UTF-8 (in most editors: Save As, encoding UTF-8)"
        raise ProgramError([Problem(message, source, line, suggestion=hint)]) from None


# -- logs -------------------------------------------------------------------------------------

_LIST_FIELDS = {"reps", "duration_s", "flags"}


@dataclass(frozen=True)
class Log:
    """The usable records of a log file, and those set aside with their reasons."""

    records: tuple[Record, ...]
    set_aside: tuple[SetAside, ...]


def parse_record(data: Mapping[str, Any]) -> Record:
    """An Outcome or a PainReport from one record; raise ValueError with a readable reason."""
    kind = data.get("kind") or (
        "outcome" if "exercise" in data else "pain" if "pain" in data else None
    )
    model: type[Outcome] | type[PainReport]
    if kind == "outcome":
        model = Outcome
    elif kind == "pain":
        model = PainReport
    else:
        raise ValueError(
            "neither an outcome (no 'exercise') nor a pain report (no 'pain'); "
            "set 'kind' to 'outcome' or 'pain'"
        )
    for key in model._numbers:
        value = data.get(key)
        if isinstance(value, bool) or (
            isinstance(value, list) and any(isinstance(item, bool) for item in value)
        ):
            # pydantic would read true as 1: a "pain_during: true" is no pain score of 1/10.
            example = "numbers, e.g. [5, 5]" if isinstance(value, list) else "a number, e.g. 3"
            raise ValueError(f"{key}: {json.dumps(value)} is not {example}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValueError(record_reason(exc, model)) from None


def record_reason(error: ValidationError, model: type[Any]) -> str:
    """pydantic's errors of a record (or an enrollment) as one readable reason: each key,
    an unknown one with a guess of the field meant."""
    reasons = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        if item["type"] in UNKNOWN_KEY_ERRORS:
            hint = did_you_mean(str(item["loc"][0]), model.model_fields)
            reasons.append(f"{key}: unknown field" + (f" ({hint})" if hint else ""))
        else:
            reasons.append(f"{key}: {_plain(item['msg'], key)}")
    return "; ".join(reasons)


def _plain(message: str, key: str) -> str:
    """pydantic's message in the words of someone writing a log file."""
    if "valid tuple" in message:
        return "should be a list, e.g. [5, 5]"
    if key == "date":
        return f"{message} (write the date as YYYY-MM-DD, e.g. 2026-01-05)"
    return message


def _slow(line: str, records: list[Record]) -> bool:
    """Whether `line` needs the readable path (else it was parsed into `records`)."""
    # (A line with true or false takes the readable path: there a boolean where a number
    # belongs is refused, where pydantic would read true as 1.)
    if '"kind"' in line and "true" not in line and "false" not in line:
        try:
            records.append(_validate_tagged(line))
        except ValidationError:
            return True
        return False
    return True


def jsonl_rows(lines: Iterable[str]) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """(line number, record or the reason it cannot be read) for each JSONL line."""
    return _jsonl_numbered(enumerate(lines, start=1))


def _jsonl_numbered(
    lines: Iterable[tuple[int, str]],
) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    for number, line in lines:
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            reason = f"not valid JSON: {exc.msg} at column {exc.colno}"
            yield number, Unreadable(reason, _json_guess(line))
            continue
        except RecursionError:  # (thousands of nested brackets: no record is built that way)
            yield number, Unreadable("not valid JSON: nested too deeply", _json_guess(line))
            continue
        yield number, data if isinstance(data, dict) else "a record must be a JSON object"


class Unreadable(str):
    """Why a line cannot be read as a record at all, with what can still be made out of it
    (`guess`: field name to value), which the safety rules' salvage reads: a trailing comma
    or an unquoted comma in a note must not hide a pain of 9."""

    guess: Mapping[str, Any]

    def __new__(cls, reason: str, guess: Mapping[str, Any]) -> Unreadable:
        made = super().__new__(cls, reason)
        made.guess = guess
        return made


#: A "name": value pair in a line that is not valid JSON as a whole.
#: The value is a string, an array (whose strings may hold "]") or a bare word (a number,
#: true); a value that is an object is skipped, so that the pairs inside it are found.
_PAIR = re.compile(
    r'"([^"\\]*)"\s*:\s*'
    r'("(?:[^"\\]|\\.)*"|\[(?:"(?:[^"\\]|\\.)*"|[^\]"])*\]|[^,{}\[\]"\s]+)'
)


def _json_guess(line: str) -> dict[str, Any]:
    """The "name": value pairs that can be made out in a line of broken JSON (the first of a
    name counts), each value read as JSON where it can be, else as its text."""
    guess: dict[str, Any] = {}
    for name, text in _PAIR.findall(line):
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        guess.setdefault(name, value)
    return guess


def _cells_guess(columns: list[str], cells: list[str]) -> dict[str, Any]:
    """What a CSV row with more or fewer cells than the header has columns could say.

    Extra cells that a `note` column explains (the row reads as a valid record with the cells
    between the columns before and after the note joined back into it) are read that way:
    an unquoted comma in a note, the usual cause. Otherwise the cells are read against the
    columns from the left and, for everything safety reads (pain, flags, adverse events,
    context), from the right too, and the salvage keeps the higher pain and every flag: a
    cautious reading that may raise a false alarm but does not hide a real one."""
    names = [column.strip().lower() for column in columns]
    if len(cells) > len(names) and "note" in names:
        at = names.index("note")
        after = len(cells) - (len(names) - at - 1)
        rebuilt = _csv_data(
            [
                *zip(columns[:at], cells[:at], strict=True),
                (columns[at], ",".join(cells[at:after])),
                *zip(columns[at + 1 :], cells[after:], strict=True),
            ]
        )
        try:
            parse_record(rebuilt)
        except ValueError:
            pass
        else:
            return rebuilt
    left = _csv_data(zip(columns, cells, strict=False))
    count = min(len(names), len(cells))
    right = _csv_data(zip(columns[len(names) - count :], cells[len(cells) - count :], strict=True))
    guess: dict[str, Any] = {f"{name} (read from the right)": v for name, v in right.items()}
    guess.update(left)
    if _loose_date(left.get("date")) is None and "date" in right:
        guess["date"] = right["date"]
    return guess


def _csv_data(pairs: Iterable[tuple[str, str | None]]) -> dict[str, Any]:
    """A CSV row's record: columns named loosely ("Date", " pain_before" are one column),
    empty cells left out, list fields split at spaces or semicolons."""
    data: dict[str, Any] = {}
    for column, text in pairs:
        key = column.strip().lower()
        cell = (text or "").strip()
        if cell:
            data[key] = [p for p in re.split(r"[;\s]+", cell) if p] if key in _LIST_FIELDS else cell
    return data


def csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """(line number, record or the reason it cannot be read) for each CSV row. A row with
    more or fewer cells than the header has columns is not read: its cells cannot be told
    apart for certain (its pain scores are still made out for the safety rules)."""
    reader = csv.DictReader(lines)
    for row in reader:
        extra = row.pop(None, None)
        if extra is not None or None in row.values():
            columns = list(reader.fieldnames or ())
            cells = [row[c] for c in columns if row[c] is not None] + list(extra or ())
            more = "more" if extra is not None else "fewer"
            reason = (
                f"{more} cells ({len(cells)}) than the header has columns ({len(columns)}): "
                "a comma in a note must be quoted"
            )
            yield reader.line_num, Unreadable(reason, _cells_guess(columns, cells))
            continue
        yield reader.line_num, _csv_data(row.items())


#: Records that say their kind are parsed straight from JSON by pydantic-core (much faster);
#: any problem falls back to the readable path below, which explains it.
_TAGGED: TypeAdapter[Record] = TypeAdapter(
    Annotated[Outcome | PainReport, Field(discriminator="kind")]
)
# (pydantic-core's own method: TypeAdapter.validate_json wraps it in a Python call per record)
_validate_tagged = _TAGGED.validator.validate_json


_FALSE = {"", "false", "0", "no", "n", "none", "null"}
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")
_ISO_LOOSE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")


def _loose_pain(value: object) -> float | None:
    """The first number in a pain value, read cautiously: '7/10' and '8 (bad)' are 7 and 8,
    '7,0' is 7.0; clamped to 0-10 (an 11 is read as 10). None when there is no number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        found = _NUMBER.search(str(value))
        if not found:
            return None
        number = float(found.group().replace(",", "."))
    if number != number:  # NaN says nothing
        return None
    return min(10.0, max(0.0, number))


def _loose_date(value: object) -> dt.date | None:
    text = str(value if value is not None else "").strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        found = _ISO_LOOSE.match(text)  # 2026-1-5: unambiguous, only not zero-padded
        if not found:
            return None
        try:
            return dt.date(*(int(part) for part in found.groups()))
        except ValueError:
            return None


def salvage(data: Mapping[str, Any]) -> PainReport | None:
    """What safety must still see in a record that cannot be used: pain and symptom flags.

    A record is set aside whole when any field is wrong, but a typo elsewhere must not hide
    a flare or a red flag. The highest pain-like number (the first number of the value,
    '7/10' is 7; clamped to 0-10, an 11 is read as 10, the cautious reading) and every
    flag-like value become a pain report on the record's date; an adverse event written
    any way but a clear no ('X', 2, 'yes') becomes the flag "adverse-event"; a context that
    says flare ('Flare', 'flare-up') keeps the report a flare, even without a pain score.
    Without a readable date (ISO, zero-padded or not), or with nothing pain-, flare- or
    flag-like, there is nothing to keep.
    """
    date = _loose_date(data.get("date"))
    if date is None:
        return None
    pains: list[float] = []
    flags: list[str] = []
    flare = False
    for key, value in data.items():
        name = str(key).lower()
        if "pain" in name:
            pain = _loose_pain(value)
            if pain is not None:
                pains.append(pain)
        elif "flag" in name:
            items = re.split(r"[;,\s]+", value) if isinstance(value, str) else value
            if isinstance(items, list | tuple):
                flags.extend(str(item).strip() for item in items if str(item).strip())
        elif "adverse" in name and value not in (False, 0, None, [], ()):
            if str(value).strip().lower() not in _FALSE:
                flags.append("adverse-event")
        elif "context" in name and "flare" in str(value).lower():
            flare = True
    if not pains and not flags and not flare:
        return None
    patient = data.get("patient")
    return PainReport(
        patient=patient if isinstance(patient, str) else None,
        date=date,
        pain=max(pains, default=0.0),
        context="flare" if flare else "other",
        flags=tuple(flags),
        note=KEPT_FROM_ASIDE,
    )


def rescue(row: Mapping[str, Any] | str) -> PainReport | None:
    """What the safety rules keep of a row that cannot be used: of a record with a wrong
    field (the row), or of a line that could not be read whole (an Unreadable's guess)."""
    if isinstance(row, Unreadable):
        return salvage(row.guess)
    return salvage(row) if isinstance(row, Mapping) else None


KEPT_FROM_ASIDE = "kept for safety from a record that was set aside"

#: How far after today a record may be dated (clinics in time zones ahead of the machine's).
FUTURE_GRACE = dt.timedelta(days=1)
KEPT_AS_OF_TODAY = "kept for safety, as of the day it was read, from a record dated later"


def future_reason(date: dt.date) -> str:
    return (
        f"dated {date}, after the day it was read: a session cannot be logged before it "
        "happens (a year or month typed wrong?)"
    )


def kept_as_of(rescued: PainReport, today: dt.date) -> PainReport:
    """What the safety rules keep of a record dated later, as of `today`: a pain of 9 typed
    with next year's date must not wait a year."""
    return dc_replace(rescued, date=today, note=KEPT_AS_OF_TODAY)


def without_future(log: Log, source: str, today: dt.date) -> Log:
    """`log` with each record dated more than FUTURE_GRACE after `today` set aside, its pain
    scores and flags kept as of `today` (the store's import does the same at its line)."""
    limit = today + FUTURE_GRACE
    if all(r.date <= limit for r in log.records):
        return log
    records: list[Record] = []
    aside = list(log.set_aside)
    for record in log.records:
        if record.date <= limit:
            records.append(record)
            continue
        if isinstance(record, PainReport) and record.note == KEPT_FROM_ASIDE:
            records.append(kept_as_of(record, today))  # (its line is reported already)
            continue
        rescued = salvage(record.model_dump(mode="json"))
        if rescued is not None:
            records.append(kept_as_of(rescued, today))
        what = getattr(record, "exercise", None) or "pain report"
        whose = f"{record.patient}'s " if record.patient else ""
        reason = f"{whose}{what} of {record.date}: {future_reason(record.date)}"
        aside.append(
            SetAside(source=source, reason=reason + (SALVAGED if rescued is not None else ""))
        )
    return Log(tuple(records), tuple(aside))


SALVAGED = "; its pain scores and symptom flags were kept for the safety rules"


def read_log(lines: Iterable[str], source: str, fmt: str) -> Log:
    """Parse log lines of format 'jsonl' or 'csv'; bad records are set aside, never raised."""
    records: list[Record] = []
    if fmt == "csv":
        rows = csv_rows(lines)
    else:
        numbered = enumerate(lines, start=1)
        rows = _jsonl_numbered((number, line) for number, line in numbered if _slow(line, records))
    aside: list[SetAside] = []
    for number, row in rows:
        if isinstance(row, str):
            kept = rescue(row)
            if kept is not None:
                records.append(kept)
            reason = row + (SALVAGED if kept is not None else "")
            aside.append(SetAside(source=source, line=number, reason=reason))
            continue
        try:
            records.append(parse_record(row))
        except ValueError as exc:
            kept = salvage(row)
            if kept is not None:
                records.append(kept)
            reason = str(exc) + (SALVAGED if kept is not None else "")
            aside.append(SetAside(source=source, line=number, reason=reason))
    return Log(tuple(records), tuple(aside))


def log_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    raise LogError(f"{path}: unknown log format {suffix!r}; use .jsonl or .csv")


def load_log(path: str | Path) -> Log:
    """Read a JSONL or CSV log file (by its extension)."""
    path = Path(path)
    fmt = log_format(path)
    try:
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name.
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return read_log(handle, str(path), fmt)
    except OSError as exc:
        raise LogError(f"{path}: cannot read the log: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise LogError(f"{path}: not UTF-8 text ({exc.reason})") from None
