"""Read log records (JSONL, CSV, Parquet) into models: the one reader of every road.

`rows` turns the lines of a log into one Row per record: the record, or why it is set aside
and what the safety rules keep of it (its pain scores and symptom flags). `read_log` (the
command line, datasets) and the store's import both read through it, so a record means the
same wherever it enters. Cautious, never silent: a value read two ways counts at its worst
for safety. Bounded: a line holds at most MAX_LINE characters and nests at most MAX_DEPTH
brackets, and the work per line is linear in its length (no backtracking regex, no
recursion).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from functools import lru_cache
from itertools import accumulate, chain, compress, count, islice, repeat
from operator import attrgetter, itemgetter, methodcaller, not_, sub
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import TypeAdapter, ValidationError
from pydantic_core import SchemaValidator, core_schema

from progressor.core._fast import dict_setter, tuple_new
from progressor.core.models import (
    UNKNOWN_KEY_ERRORS,
    Day,
    Outcome,
    PainReport,
    Record,
    SetAside,
    negative_zero_in,
    positive_zeros,
)
from progressor.core.timeline import KEPT_AS_OF_TODAY, KEPT_UNDATED, Arrived
from progressor.errors import LogError, did_you_mean

#: The longest line read (characters); a longer one is set aside, its pains still made out.
MAX_LINE = 65_536
#: How much of a line that cannot be read whole is searched for pain scores (characters).
MAX_SALVAGE = 4 * MAX_LINE
#: The deepest nesting of brackets read; a deeper line is set aside.
MAX_DEPTH = 32

KEPT_FROM_ASIDE = "kept for safety from a record that was set aside"
SALVAGED = "; its pain scores and symptom flags were kept for the safety rules"
#: How far after today a record may be dated (clinics in time zones ahead of the machine's).
FUTURE_GRACE = dt.timedelta(days=1)
#: The day of what the salvage keeps of a record whose day cannot be read: later than any
#: record's, so every reader keeps it as of the day it was read (kept_as_of).
UNDATED = dt.date.max

_LIST_FIELDS = {"reps", "duration_s", "flags"}


class Row(NamedTuple):
    """One record of a log: `record`, or the `reason` it is set aside and the pain report
    `kept` of it for the safety rules. `line` is its (last) line number, `text` its text.
    (A NamedTuple: built once per line, it costs a third of a dataclass.)"""

    line: int
    text: str
    record: Record | None
    reason: str = ""
    kept: PainReport | None = None


@dataclass(frozen=True)
class Log:
    """The usable records of a log file, and those set aside with their reasons."""

    records: tuple[Record, ...]
    set_aside: tuple[SetAside, ...]
    #: The line each record was read from, in the same order (empty: not known).
    lines: tuple[int, ...] = ()

    def arrived(self, source: str) -> list[Arrived]:
        """The records with the file and line each was read from (for `progressor.fold`,
        which reports a record the rules set aside there)."""
        lines = self.lines or (None,) * len(self.records)
        if len(lines) != len(self.records):
            raise ValueError("a Log has one line number per record, or none")
        fields = zip(self.records, repeat(None), repeat(source), lines)
        return list(map(tuple_new, repeat(Arrived), fields))  # (C calls: no loop in Python)


def rows(lines: Iterable[str], source: str, fmt: str) -> Iterator[Row]:
    """The Rows of log lines of format 'jsonl' or 'csv' (blank lines have none)."""
    if fmt == "csv":
        return _csv_rows(_without_bom(lines))
    if fmt == "jsonl":
        return _jsonl_rows(lines)
    if fmt == "parquet":
        raise LogError(f"{source}: a Parquet log has no lines; read it from its file (log_rows)")
    raise LogError(f"{source}: unknown log format {fmt!r}; use jsonl or csv")


def _without_bom(lines: Iterable[str]) -> Iterator[str]:
    # A spreadsheet's byte-order mark is not part of the first column's name or record.
    found = map(_encodable, lines)
    first = next(found, None)
    if first is None:
        return found
    return chain((first.removeprefix("\ufeff"),), found)


def _encodable(line: str) -> str:
    """`line` with each lone surrogate (text handed over as str, never a file's UTF-8) made
    U+FFFD: it is text no store or parser can take, and the rest of the line still counts."""
    if line.isascii():
        return line
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return line.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return line


def read_log(lines: Iterable[str], source: str, fmt: str, today: dt.date | None = None) -> Log:
    """Parse log lines of format 'jsonl' or 'csv'; bad records are set aside, never raised.

    With `today`, a record dated more than FUTURE_GRACE later is set aside too, its pain
    scores and flags kept as of `today` (the store's import does the same at its line); so
    is what is kept of a record whose day cannot be read. Without `today` there is no day to
    keep that on: such a record keeps nothing."""
    records: list[Record] = []
    numbers: list[int] = []
    if fmt == "jsonl":  # (rows' own, the records of most lines handed over without a Row)
        limit = today + FUTURE_GRACE if today is not None else dt.date.max
        found = _jsonl_rows(lines, (records, numbers), limit)
    else:
        found = rows(lines, source, fmt)
    return _log_of(found, source, today, records, numbers)


def rows_log(found: Iterable[Row], source: str, today: dt.date | None = None) -> Log:
    """The Log of Rows already read (a Parquet dataset's, by patient); `today` as read_log's."""
    return _log_of(found, source, today)


_set_log_fields = dict_setter(Log)


def _log_of(
    found: Iterable[Row],
    source: str,
    today: dt.date | None,
    records: list[Record] | None = None,
    numbers: list[int] | None = None,
) -> Log:
    """The Log of `found` Rows (added to `records` and their line `numbers`, which a fast
    reader may be filling as it goes); `today` as read_log's."""
    records = [] if records is None else records
    numbers = [] if numbers is None else numbers
    aside: list[SetAside] = []
    for row in found:
        if today is not None:
            row = _dated_by(row, today)
        if row.record is not None:
            records.append(row.record)
            numbers.append(row.line)
            continue
        kept = row.kept
        if kept is not None and undated(kept):  # (no today to see it on: see read_log)
            kept = None
        if kept is not None:
            records.append(kept)
            numbers.append(row.line)
        reason = row.reason + (SALVAGED if kept is not None else "")
        aside.append(SetAside(source=source, line=row.line, reason=reason, record=row.text))
    # What Log(...) sets, in one go (a frozen dataclass sets each field through
    # object.__setattr__, read_log's cost for every week of every patient).
    log = object.__new__(Log)
    _set_log_fields(
        log, {"records": tuple(records), "set_aside": tuple(aside), "lines": tuple(numbers)}
    )
    return log


# -- records ----------------------------------------------------------------------------------


def parse_record(data: Mapping[str, Any]) -> Record:
    """An Outcome or a PainReport from one record; raise ValueError with a readable reason."""
    given = {k for k, v in data.items() if v is not None}  # (a null: see _REQUIRED)
    kind = data.get("kind") or (
        "outcome" if "exercise" in given else "pain" if "pain" in data else None
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
    if len(given) < len(data):  # (a JSON null for a field not required: not given)
        required = _REQUIRED[model]
        data = {k: v for k, v in data.items() if v is not None or k in required}
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


#: The required fields of each kind of record. A JSON `null` for any other key is that key
#: not given, as an empty CSV cell or a Parquet null is (a note's "", no flags; a field of
#: the other kind, as an export with every column writes it), so a record means the same
#: whichever way it was exported; a null for a required field leaves it missing: set aside,
#: its pains kept.
_REQUIRED = {
    model: frozenset(name for name, field in model.model_fields.items() if field.is_required())
    for model in (Outcome, PainReport)
}


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
        example = '["night-pain"]' if key.split(".")[0] == "flags" else "[5, 5]"
        return f"should be a list, e.g. {example}"
    if key == "date":
        return f"{message} (write the date as YYYY-MM-DD, e.g. 2026-01-05)"
    if key == "patient" and "valid string" in message:
        return f'{message} (write the id as text, in quotes: "1001")'
    return message


def _row(number: int, text: str, data: Mapping[str, Any], twice: list[str]) -> Row:
    """The Row of a record read whole; `twice` names the fields given two values."""
    if twice:
        reason = "; ".join(twice) + ": which one is meant cannot be told"
        return Row(number, text, None, reason, salvage(data))
    try:
        return Row(number, text, parse_record(data))
    except ValueError as exc:
        return Row(number, text, None, str(exc), salvage(data))


def _unreadable(number: int, text: str, reason: str, guess: Mapping[str, Any]) -> Row:
    """The Row of a line that cannot be read whole, with what `guess` makes out of it."""
    if len(text) > MAX_LINE:  # (kept to the limit: a quarantine is no place for megabytes)
        text = text[:MAX_LINE] + " ..."
    return Row(number, text, None, reason, salvage(guess))


_AGAIN = " (given again, #"


def _again(key: str, count: int) -> str:
    """Where a further value of `key` is kept for the salvage, which reads every value."""
    return f"{key}{_AGAIN}{count})"


def _twice(key: str, first: object, second: object) -> str:
    return f"{key!r} given twice, {_shown(first)} and {_shown(second)}"


def _shown(value: object) -> str:
    # (default=str: a Parquet cell may be a date, a time or bytes, which JSON has no word for)
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, default=str)


# -- JSONL ------------------------------------------------------------------------------------


def _fields_schema(model: type[Outcome | PainReport]) -> core_schema.CoreSchema:
    """`model`'s own field schemas, validated as a BaseModel's fields are: each record comes
    out as all its fields (defaults filled in, in the dataclass's order) and the set of keys
    its line gave, which pydantic-core counts as it reads them."""
    schema = vars(model)["__pydantic_core_schema__"]
    if schema["type"] == "function-after":
        # Outcome's after-validator makes a -0.0 a 0.0; _built does that for many records at
        # once. Another after-validator would be skipped here: refuse to start instead.
        if schema["function"]["function"] is not vars(Outcome)["_one_zero"]:
            raise RuntimeError(f"{model.__name__}: the reader's fast path knows only _one_zero")
        schema = schema["schema"]
    fields = {f["name"]: core_schema.model_field(f["schema"]) for f in schema["schema"]["fields"]}
    return core_schema.model_fields_schema(
        fields, extra_behavior="forbid", model_name=model.__name__
    )


#: Each kind of record by its `kind`.
_KINDS: dict[str, type[Outcome | PainReport]] = {
    m.model_fields["kind"].default: m for m in (Outcome, PainReport)
}
#: Records that say their kind are parsed straight from JSON by pydantic-core (much faster),
#: a JSON array of them in one call (_plain_records); any doubt sends a line to the readable
#: path, which explains it.
_validate_plain = SchemaValidator(
    core_schema.list_schema(
        core_schema.tagged_union_schema(
            {kind: _fields_schema(model) for kind, model in _KINDS.items()},
            discriminator="kind",
        )
    )
).validate_json
_fields_read, _keys_read, _kind_of = itemgetter(0), itemgetter(2), itemgetter("kind")
_set_fields = dict_setter(Outcome)


def _built(fields: list[dict[str, Any]], text: str) -> list[Record]:
    """Records from their validated fields (read from `text`), built as pydantic builds a
    dataclass (a new instance, the fields its __dict__: tests/test_reading.py holds them
    equal), each -0.0 made 0.0 as Outcome's `_one_zero` does."""
    records: list[Record] = list(
        map(object.__new__, map(_KINDS.__getitem__, map(_kind_of, fields)))
    )
    deque(map(_set_fields, records, fields), maxlen=0)
    if _minus_zero_written(text):
        outcomes = [f for f in fields if f["kind"] == "outcome"]
        if negative_zero_in(outcomes):
            for record in records:
                if isinstance(record, Outcome):
                    positive_zeros(record)
    return records


#: Whether JSON text may hold a -0 (or -0.0, -0e1): a match where a "-0" is followed by no
#: digit, else None. JSON writes no digit after a number's leading zero, and in a day such as
#: 2026-01-05 each "-0" is followed by one. One scan for the literal "-0" (no repetition:
#: linear), and the compiled pattern's own search: a C call, no Python frame.
_minus_zero_written = re.compile(r"-0(?![0-9])").search


#: A Row built without NamedTuple's Python-level __new__ (a third of the cost, once per line).
_new_row = tuple.__new__


#: How many lines are read in one call to pydantic-core when all are plain (_plain_records);
#: a chunk that is not is halved until its lines that are not plain are found.
CHUNK = 256
_date_of = attrgetter("date")


def _jsonl_rows(
    lines: Iterable[str],
    sink: tuple[list[Record], list[int]] | None = None,
    limit: dt.date = dt.date.max,
) -> Iterator[Row]:
    """The Rows of JSONL lines; with `sink` (records, line numbers), the records of plain
    lines dated by `limit` go straight into it instead (read_log: no Row built for them)."""
    taken = iter(lines)
    first = 1
    while chunk := list(islice(taken, CHUNK)):
        if first == 1:  # (a spreadsheet's byte-order mark is not part of the first record)
            chunk[0] = chunk[0].removeprefix("\ufeff")
        yield from _chunk_rows(chunk, first, sink, limit)
        first += len(chunk)


def _chunk_rows(
    chunk: list[str],
    first: int,
    sink: tuple[list[Record], list[int]] | None,
    limit: dt.date,
) -> Iterator[Row]:
    """The Rows of `chunk`, whose first line is line `first`: a run of plain lines read in
    one call, any other line the readable way (_json_row). Halving finds the lines that are
    not plain (at most log2(CHUNK) levels: a bounded stack, no recursion)."""
    todo = [(0, len(chunk))]
    while todo:
        start, end = todo.pop()
        records = _plain_records(chunk[start:end])
        if records is None:
            if end - start > 1:
                middle = (start + end) // 2
                todo += ((middle, end), (start, middle))  # (the first half is read first)
                continue
            line = _encodable(chunk[start])
            if line.strip():
                yield _json_row(first + start, line)
            continue
        # (No limit, read_log without `today`: no date to look at.)
        if sink is not None and (limit == dt.date.max or max(map(_date_of, records)) <= limit):
            sink[0].extend(records)
            sink[1].extend(range(first + start, first + end))
            continue
        for number, line, record in zip(count(first + start), chunk[start:end], records):
            yield _new_row(Row, (number, line.strip(), record, "", None))


def _plain_records(lines: list[str]) -> list[Record] | None:
    """The records of `lines` when every line is a plain tagged record, read in one call;
    else None (and each line that is not plain is read the readable way).

    Plain: a JSON object that says its kind, in UTF-8-writable text, with no backslash (no
    escaped key, no lone surrogate), each value of its field's own JSON type (pydantic's
    strict mode: a number where a number belongs, not a boolean, which pydantic would read
    as 1, nor text; a day as text), and no key given twice. pydantic-core keeps the last
    value of a key given twice but reports the set of keys each record was read from: a
    line has at least as many colons as keys, so when the lines hold no more colons than
    the sets hold keys, no key was given twice. With colons in values too (a time of day, a
    note), the keys are counted by `":` instead, which counts each key once when no key has
    white space before its colon (and without a backslash no string value holds a quote).
    Otherwise the readable path reads the lines, where a key given twice is set aside.
    """
    read = plain_fields(lines)
    return None if read is None else _built(read[0], read[1])


def plain_fields(lines: list[str]) -> tuple[list[dict[str, Any]], str] | None:
    """The validated fields of `lines` (one dict per line, every field, in the records'
    order) and the JSON text they were read from, when every line is plain (see
    `_plain_records`, which builds its records from them); else None. The column engine
    (progressor.columns) reads the same lines, with the same meaning, into columns."""
    text = "[" + ",".join(lines) + "]"
    if (
        '"kind"' not in text
        or "\\" in text
        or (len(text) > MAX_LINE and max(map(len, lines)) > MAX_LINE)
        or not (text.isascii() or _encodes(text))
    ):
        return None
    try:
        read = _validate_plain(text, strict=True)
    except ValueError:  # (ValidationError too: the readable path says why)
        return None
    if len(read) != len(lines):  # (a line of two records, `{...},{...}`)
        return None
    keys = sum(map(len, map(_keys_read, read)))
    if keys != text.count(":") and (keys != text.count('":') or any(gap in text for gap in _GAPS)):
        return None
    return list(map(_fields_read, read)), text


#: A key's closing quote followed by white space (so its colon may not follow it at once).
_GAPS = ('" ', '"\t', '"\r', '"\n')


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: For each kind of record: its optional fields' values, their defaults, and how many keys a
#: line of it always has (`kind` and the required fields). A field not given holds its
#: default object itself (None, (), False, "" and the like: tests/test_reading.py holds it),
#: so a field that is not its default came from a key of the line.
_OPTIONAL = {
    model: (
        itemgetter(*(n for n, f in model.model_fields.items() if not f.is_required())),
        tuple(f.default for f in model.model_fields.values() if not f.is_required()),
        1 + sum(f.is_required() for n, f in model.model_fields.items() if n != "kind"),
    )
    for model in (Outcome, PainReport)
}


def _json_row(number: int, line: str) -> Row:
    text = line.strip()
    if len(line) > MAX_LINE:
        reason = f"longer than {MAX_LINE:,} characters, the longest line read"
        return _unreadable(number, text, reason, _json_guess(line))
    twice: list[str] = []
    try:
        # (Without its line end: a position past the line's last character is on that line,
        # the same whether the line came from a file or from a list of lines.)
        data = json.loads(
            line.rstrip("\r\n"), object_pairs_hook=lambda pairs: _object(pairs, twice)
        )
    except json.JSONDecodeError as exc:
        reason = f"not valid JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}"
        return _unreadable(number, text, reason, _json_guess(line))
    except RecursionError:
        return _unreadable(number, text, _TOO_DEEP, _json_guess(line))
    except ValueError as exc:  # an integer of thousands of digits, say
        return _unreadable(number, text, f"not valid JSON: {exc}", _json_guess(line))
    if _depth_over(data, line):
        return _unreadable(number, text, _TOO_DEEP, _json_guess(line))
    if not isinstance(data, dict):
        return Row(number, text, None, "a record must be a JSON object")
    if "\\u" in line:
        data = _replace_surrogates(data)
    return _row(number, text, data, twice)


_TOO_DEEP = f"not valid JSON: nested too deeply (more than {MAX_DEPTH} levels of brackets)"


def _object(pairs: list[tuple[str, Any]], twice: list[str]) -> dict[str, Any]:
    """A JSON object whose repeated keys are noted in `twice` (the same value twice is one
    value); each further value is kept for the salvage (_again). Keys are matched as a CSV's
    columns are (column_name): "Date" and " pain_before" are date and pain_before, and
    "Pain" beside "pain" is a key given twice."""
    data: dict[str, Any] = {}
    for written, value in pairs:
        key = column_name(written) if type(written) is str else written
        if key not in data:
            data[key] = value
        elif data[key] != value:
            twice.append(_twice(key, data[key], value))
            data[_again(key, len(twice))] = value
    return data


def _depth_over(data: object, line: str) -> bool:
    """Whether parsed `data` nests deeper than MAX_DEPTH (counted only when the line has
    that many brackets at all: a record has two or three)."""
    if line.count("[") + line.count("{") <= MAX_DEPTH:
        return False
    level: list[tuple[object, int]] = [(data, 1)]
    while level:
        value, depth = level.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return True
            items = value.values() if isinstance(value, dict) else value
            level.extend((item, depth + 1) for item in items)
    return False


_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_surrogates(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with each lone surrogate (valid JSON: "\\ud800") replaced by U+FFFD: no text
    that cannot be written as UTF-8 reaches the store or an export."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return _SURROGATE.sub("\ufffd", value)
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    return {clean(key): clean(value) for key, value in data.items()}


# -- what a broken JSON line still says ----------------------------------------------------------

_QUOTE_OR_ESCAPES = re.compile(r'\\+|"')
_COLON = re.compile(r"[ \t\r\n]*:[ \t\r\n]*")
_BARE = re.compile(r'[^,{}\[\]"\s]+')
_NAME_END = re.compile(r'"(?=[ \t\r\n]*:)')
_start = methodcaller("start")
_one_more, _one_less = (1).__add__, (-1).__add__


def _json_guess(line: str) -> dict[str, Any]:
    """The "name": value pairs that can be made out in a line of broken JSON, read left to
    right in linear time (no regex that backtracks, no recursion), in its first MAX_SALVAGE
    characters (the work on one line is bounded: a pain further into megabytes of broken
    text is not made out, and the line is set aside with its number all the same).

    A name is the text between an unescaped quote and the next one that a colon follows
    (so a quote left open in a note does not hide the pair after it). A value is a string,
    a flat array, or a bare word (a number, true); an object value is skipped, so that the
    pairs inside it are found. A name found again is kept under another name (_again): the
    salvage reads every value, and the worst counts.
    """
    line = line[:MAX_SALVAGE]
    quotes = _unescaped_quotes(line)
    # (The quotes a colon follows, found in one scan; an escaped one is no name's end.)
    index = dict(zip(quotes, count()))
    names: list[int] = list(filter(None, map(index.get, map(_start, _NAME_END.finditer(line)))))
    guess: dict[str, Any] = {}
    for n, i in enumerate(names):
        name = column_name(_text(line[quotes[i - 1] + 1 : quotes[i]]))  # (as any key)
        if not salvaged_name(name):  # (only what the salvage reads: bounded work)
            continue
        after = _COLON.match(line, quotes[i] + 1)
        start = after.end() if after else len(line)
        end = quotes[names[n + 1]] if n + 1 < len(names) else len(line)
        value = _value(line, start, end, quotes, i + 1)
        if value is not _NOTHING:
            guess[name if name not in guess else _again(name, len(guess))] = value
    return guess


def _unescaped_quotes(line: str) -> list[int]:
    """The positions of the quotes that a backslash does not escape: the text before each
    quote is split off, its length summed up to the quote, and a quote after an odd number
    of backslashes dropped (C loops all: a broken line may hold a hundred thousand)."""
    before = line.split('"')[:-1]
    quotes = list(map(_one_less, accumulate(map(_one_more, map(len, before)))))
    if "\\" not in line:
        return quotes
    backslashes = map(sub, map(len, before), map(len, map(_no_backslashes, before)))
    return list(compress(quotes, map(not_, map(_odd, backslashes))))


_no_backslashes, _odd = methodcaller("rstrip", "\\"), (1).__and__


_NOTHING = object()


def _value(line: str, start: int, end: int, quotes: list[int], next_quote: int) -> Any:
    """The value that begins at `start` and must end before `end` (the next name)."""
    first = line[start : start + 1]
    if first == '"':
        close = quotes[next_quote + 1] if next_quote + 1 < len(quotes) else -1
        return _text(line[start + 1 : close]) if start < close <= end else _NOTHING
    if first == "[":
        return _flat_array(line, start, end, quotes, next_quote)
    bare = _BARE.match(line, start, end)
    if first == "{" or bare is None:
        return _NOTHING
    try:
        return json.loads(bare.group())
    except ValueError:  # a word, or an integer of thousands of digits: read as text
        return bare.group()


def _flat_array(line: str, start: int, end: int, quotes: list[int], next_quote: int) -> Any:
    """The flat array (numbers, strings) that opens at `start`, closed before `end`: its
    strings are skipped whole (a "]" in a flag's text does not close it), and an array with
    a bracket outside its strings is not read, so no nesting ever reaches json.loads."""
    at, q = start + 1, next_quote
    while True:
        close = line.find("]", at, end)
        if close < 0:
            return _NOTHING
        while q < len(quotes) and quotes[q] < close:  # the strings that open before it
            if q + 1 >= len(quotes) or quotes[q + 1] >= end or _nested(line, at, quotes[q]):
                return _NOTHING
            at, q = quotes[q + 1] + 1, q + 2
        if at <= close:
            break
    if _nested(line, at, close):
        return _NOTHING
    try:
        value = json.loads(line[start : close + 1])
    except ValueError:
        return _NOTHING
    return value if isinstance(value, list) else _NOTHING


def _nested(line: str, start: int, end: int) -> bool:
    return line.find("[", start, end) >= 0 or line.find("{", start, end) >= 0


def _text(raw: str) -> str:
    """A JSON string's contents unescaped where they can be, else as written."""
    if "\\" not in raw:
        return raw
    try:
        value = json.loads(f'"{raw}"')
    except ValueError:
        return raw
    return _SURROGATE.sub("\ufffd", value) if isinstance(value, str) else raw


# -- CSV --------------------------------------------------------------------------------------

#: The separators a header line is sniffed for (Europe's spreadsheets write ";").
SEPARATORS = (",", ";", "\t")
_SPELLING = re.compile(r"[\s_\-]+")


@lru_cache(maxsize=4096)  # (a broken line of megabytes names the same few keys again)
def column_name(header: str) -> str:
    """A CSV column's field: case, spaces and -/_ do not matter ("Pain Before", "pain-before"
    and " pain_before " are pain_before)."""
    return _SPELLING.sub("_", header.strip().lower()).strip("_")


def _separator(header: str) -> str:
    counts = [header.count(sep) for sep in SEPARATORS]
    return SEPARATORS[counts.index(max(counts))]


class _Tracked:
    """Lines passed to the csv reader, remembering the text of the record being read; an
    over-long line reaches it empty and is reported by its number."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = lines
        self.text: list[str] = []
        self.too_long: dict[int, str] = {}
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            self.number += 1
            if len(line) > MAX_LINE:
                self.too_long[self.number] = line
                line = "\n"
            self.text.append(line)
            yield line

    def take(self) -> str:
        text = "".join(self.text).strip()
        self.text.clear()
        return text


def _csv_rows(lines: Iterable[str]) -> Iterator[Row]:
    """A row with more or fewer cells than the header has columns is not read: its cells
    cannot be told apart for certain (its pain scores are still made out)."""
    tracked = _Tracked(lines)
    found = iter(tracked)
    header = next(found, None)
    if header is None:
        return
    separator = _separator(header)
    columns = next(csv.reader([header], delimiter=separator), [])
    tracked.take()
    reader = csv.reader(found, delimiter=separator)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            text = tracked.take()
            guess = _cells_guess(columns, text.split(separator))
            yield _unreadable(tracked.number, text, f"not a readable CSV row: {exc}", guess)
            continue
        number, text = tracked.number, tracked.take()
        if number in tracked.too_long:
            line = tracked.too_long.pop(number)
            reason = f"longer than {MAX_LINE:,} characters, the longest line read"
            yield _unreadable(number, line, reason, _cells_guess(columns, line.split(separator)))
        elif cells:
            yield _csv_row(number, text, columns, cells)


def _csv_row(number: int, text: str, columns: list[str], cells: list[str]) -> Row:
    if len(cells) != len(columns):
        more = "more" if len(cells) > len(columns) else "fewer"
        reason = (
            f"{more} cells ({len(cells)}) than the header has columns ({len(columns)}): "
            "a comma in a note must be quoted"
        )
        return _unreadable(number, text, reason, _cells_guess(columns, cells))
    twice: list[str] = []
    data = _csv_data(zip(columns, cells, strict=True), twice)
    return _row(number, text, data, twice)


def _csv_data(
    pairs: Iterable[tuple[str, object]], twice: list[str] | None = None
) -> dict[str, Any]:
    """A CSV row's record: columns named loosely (column_name), empty cells left out, list
    fields written as text split at spaces, `;` or `|`. Two columns of one field with
    different cells are noted in `twice` (each further cell kept for the salvage: _again).
    A cell of a typed format (Parquet) that is not text (a number, a list, a day) is kept."""
    data: dict[str, Any] = {}
    for column, cell in pairs:
        key = column_name(column)
        if cell is None:
            continue
        value: object = cell
        if type(cell) is str:
            text = cell.strip()
            if not text:
                continue
            value = [p for p in _LIST_SPLIT.split(text) if p] if key in _LIST_FIELDS else text
        if key not in data:
            data[key] = value
        elif data[key] != value:
            if twice is not None:
                twice.append(_twice(key, data[key], value))
            data[_again(key, len(data))] = value
    return data


_LIST_SPLIT = re.compile(r"[;|\s]+")


def _cells_guess(columns: list[str], cells: list[str]) -> dict[str, Any]:
    """What a CSV row with more or fewer cells than the header has columns could say.

    Extra cells that a `note` column explains (the row reads as a valid record with the cells
    between the columns before and after the note joined back into it) are read that way:
    an unquoted comma in a note, the usual cause. Otherwise the cells are read against the
    columns from the left and, for everything safety reads (pain, flags, adverse events,
    context), from the right too, and the salvage keeps the higher pain and every flag: a
    cautious reading that may raise a false alarm but does not hide a real one."""
    names = [column_name(column) for column in columns]
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


# -- Parquet ----------------------------------------------------------------------------------

#: Rows converted from a Parquet file at a time (a row group may hold millions).
PARQUET_BATCH = 4_096
_NO_PYARROW = "reading a Parquet log needs pyarrow: pip install 'progressor[parquet]'"
#: (One encoder, not json.dumps with options, which builds an encoder on every call.)
_as_json = json.JSONEncoder(ensure_ascii=False, default=str).encode


@contextmanager
def _parquet_file(path: Path) -> Iterator[Any]:
    """The open pyarrow ParquetFile of `path`; any error reading it (here or while its rows
    are read in the block) is a LogError naming the file."""
    try:
        # (Lazily: pyarrow is an optional extra, and slow to import for JSONL and CSV logs.)
        import pyarrow.parquet as pq
    except ImportError:
        raise LogError(f"{path}: {_NO_PYARROW}") from None
    from pyarrow import ArrowException

    try:
        with pq.ParquetFile(path) as handle:
            yield handle
    except OSError as exc:  # (pyarrow's messages repeat the path: strerror alone)
        raise LogError(f"{path}: cannot read the log: {exc.strerror or exc}") from None
    except ArrowException as exc:
        raise LogError(f"{path}: not a readable Parquet file ({exc})") from None


def _parquet_rows(handle: Any) -> Iterator[Row]:
    """The Rows of a Parquet file, each row read as a CSV row is (_csv_data): its line is
    its row number (1-based), its text a JSON rendering of its columns."""
    number = 0
    for batch in handle.iter_batches(batch_size=PARQUET_BATCH):
        names: list[str] = batch.schema.names
        for cells in zip(*map(_parquet_cells, batch.columns), strict=True):
            number += 1
            yield _parquet_row(number, names, cells)


def parquet_table(path: Path) -> Any:
    """A Parquet log's pyarrow Table, read whole (a dataset's partition: a few thousand
    patients); any error reading it is a LogError naming the file."""
    with _parquet_file(path) as handle:
        return handle.read()


def parquet_table_rows(table: Any, numbers: Sequence[int]) -> Iterator[Row]:
    """Rows `numbers` (1-based, in that order) of a pyarrow Table read from a Parquet log,
    each read as the Parquet reader reads a row of the file (_parquet_rows)."""
    import pyarrow as pa  # (there: the table is its own)

    names: list[str] = table.schema.names
    wanted = iter(numbers)
    places = pa.array([n - 1 for n in numbers], type=pa.int64())
    for batch in table.take(places).to_batches(max_chunksize=PARQUET_BATCH):
        for cells in zip(*map(_parquet_cells, batch.columns), strict=True):
            yield _parquet_row(next(wanted), names, cells)


def _parquet_cells(column: Any) -> list[Any]:
    """A column's values as Python values; a date-time as its ISO text, as a CSV or JSON
    log writes it (the day as written; a model's day refuses a datetime with a time)."""
    import pyarrow as pa

    if not pa.types.is_timestamp(column.type):
        return list(column.to_pylist())
    # (Nanoseconds, pandas' unit, have no Python datetime: cut to microseconds first.)
    micro = column.cast(pa.timestamp("us", tz=column.type.tz), safe=False)
    return [None if t is None else t.isoformat() for t in micro.to_pylist()]


def _parquet_row(number: int, names: list[str], cells: tuple[Any, ...]) -> Row:
    if len(set(names)) == len(names):  # a dict's JSON: the same text, one encoder call a row
        text = _as_json(dict(zip(names, cells, strict=True)))
    else:  # (built from the pairs: two columns of one name both show)
        pairs = (f"{_as_json(n)}: {_as_json(c)}" for n, c in zip(names, cells, strict=True))
        text = "{" + ", ".join(pairs) + "}"
    if len(text) > MAX_LINE:
        reason = f"longer than {MAX_LINE:,} characters, the longest record read"
        return _unreadable(number, text, reason, _csv_data(zip(names, cells, strict=True)))
    twice: list[str] = []
    data = _csv_data(zip(names, cells, strict=True), twice)
    return _row(number, text, data, twice)


# -- what safety keeps of a record set aside ----------------------------------------------------

_FALSE = {"", "false", "0", "no", "n", "none", "null"}
_NOT_FINITE = {"nan", "inf", "infinity"}
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?")
#: A day, zero-padded or not, alone or followed by a time (read or not: "T25:00" is a bad time
#: on a readable day, and the safety rules still get that day's pain).
_ISO_LOOSE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:\s*$|[T ])")
_DAY: TypeAdapter[dt.date] = TypeAdapter(Day)


def _loose_pain(value: object) -> float | None:
    """The first number in a pain value, read cautiously: '7/10' and '8 (bad)' are 7 and 8,
    '7,0' is 7.0, '6.9e+33' is 6.9e+33. A number outside 0-10 (-3, 11, a thousand digits,
    NaN, infinity) counts as 10: a typo must not hide a flare. None when there is no number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, list | tuple):  # ("pain": [3, 9]: the worst of them counts)
        return max((p for p in map(_loose_pain, value) if p is not None), default=None)
    if isinstance(value, int | float):
        number: float | int = value
    else:
        found = _NUMBER.search(str(value))
        if not found:  # "nan" or "inf" is read by pydantic as a float: no pain in 0-10
            return 10.0 if str(value).strip().lstrip("+-").lower() in _NOT_FINITE else None
        number = float(found.group().replace(",", "."))  # (inf for a thousand digits)
    return float(number) if 0 <= number <= 10 else 10.0  # (NaN is not in 0-10 either)


def _loose_date(value: object) -> dt.date | None:
    """A record's day (as the models read it: a day or a date-time), or a day that is only
    not zero-padded (2026-1-5: unambiguous), or the day of a date-time whose time is wrong."""
    text = str(value if value is not None else "").strip()
    try:
        return _DAY.validate_python(text)
    except ValidationError:
        found = _ISO_LOOSE.match(text)
        if not found:
            return None
        try:
            return dt.date(*(int(part) for part in found.groups()))
        except ValueError:
            return None


#: What the salvage reads of a record, besides its date and patient: any field whose name
#: holds one of these words (salvage's branches, in this order).
SALVAGED_WORDS = ("pain", "flag", "adverse", "context")


@lru_cache(maxsize=4096)
def salvaged_name(name: str) -> bool:
    """Whether the salvage reads the field of this (lower-case) name. (Cached: a broken line
    of megabytes names the same few keys again and again.)"""
    return name.startswith(("date", "patient")) or any(word in name for word in SALVAGED_WORDS)


def id_written(value: object) -> str | None:
    """The patient a record's `patient` value names, for the safety rules and for splitting
    a file by patient: a text as it is, a whole number as its digits (an export that wrote
    the id 1001 as a number; such a record is set aside, but its pain is patient 1001's)."""
    if isinstance(value, str):
        return value
    return str(value) if type(value) is int else None


def salvage(data: Mapping[str, Any]) -> PainReport | None:
    """What safety must still see in a record that cannot be used: pain and symptom flags.

    A record is set aside whole when any field is wrong, but a typo elsewhere must not hide
    a flare or a red flag. The highest pain-like number (the first number of the value,
    '7/10' is 7; outside 0-10 it counts as 10, the cautious reading) and every flag-like
    value become a pain report on the record's date; an adverse event written any way but a
    clear no ('X', 2, 'yes') becomes the flag "adverse-event"; a context that says flare
    ('Flare', 'flare-up') keeps the report a flare, even without a pain score. Without a
    readable date the report is dated UNDATED, which the readers keep as of the day the
    record was read (kept_as_of), as a record dated later: a day typed wrong must not hide
    a flare. With nothing pain-, flare- or flag-like, there is nothing to keep.
    """
    date = _loose_date(data.get("date"))
    if date is None:  # a date given twice, the first unreadable: the next readable one
        again = (v for k, v in data.items() if str(k).startswith("date" + _AGAIN))
        date = next((d for v in again if (d := _loose_date(v)) is not None), None)
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
    return PainReport(
        patient=id_written(data.get("patient")),
        date=UNDATED if date is None else date,
        pain=max(pains, default=0.0),
        context="flare" if flare else "other",
        flags=tuple(flags),
        note=KEPT_UNDATED if date is None else KEPT_FROM_ASIDE,
    )


# -- records of an id spelled otherwise -------------------------------------------------------


def kept_for(patient: str, record: Record) -> PainReport | None:
    """What the safety rules keep, as `patient`'s, of a record whose id names them but for
    case or spaces (core.models.same_id_loosely): its pain scores and symptom flags
    (salvage), never its session. None when it holds none."""
    report = salvage(record.model_dump(mode="json")) if isinstance(record, Outcome) else record
    return dc_replace(report, patient=patient) if isinstance(report, PainReport) else None


def held(records: Iterable[Record]) -> list[str]:
    """What records that reach no patient's safety rules hold, said for whoever must review
    them: the worst pain, an adverse event, a flare or symptom flag (none: an empty list)."""
    found = list(records)
    pains = [p for r in found for p in (r.pain_scores() if isinstance(r, Outcome) else (r.pain,))]
    adverse = any(getattr(r, "adverse_event", False) for r in found)
    flagged = any(r.flags or getattr(r, "context", "") == "flare" for r in found)
    worst = max(pains, default=None)
    said = [f"pain up to {worst:g}/10"] if worst is not None else []
    return said + ["an adverse event"] * adverse + ["a flare or symptom flag"] * flagged


def meant_by_several(patients: Iterable[str]) -> str:
    """What a record of an id alike to several enrolled ones is told (ids_meant): its pains
    count for none of them, since which one is meant cannot be told."""
    named = " or ".join(map(repr, sorted(patients)))
    return f"it may mean {named}: which one cannot be told, so its pains count for none"


def spelled_otherwise(patient: str) -> str:
    """What a record of an id that names `patient` but for case or spaces is told."""
    return (
        f"did you mean {patient!r}? its pain scores and symptom flags count for the safety "
        f"rules of {patient!r}"
    )


# -- records dated later ----------------------------------------------------------------------


def future_reason(date: dt.date, today: dt.date | None = None) -> str:
    """Why a record dated later than the day it is read on is set aside (its pain is kept as
    of that day). With `today`, the day a run reads records as of (a dataset's run, which may
    be for an earlier week), named; the store's import does not name its own day, so that
    a line imported again another day is quarantined under the same reason."""
    named, earlier = (f" ({today})", " a run for an earlier week?") if today else ("", "")
    return (
        f"dated {date}, after the day it was read{named}: a session cannot be logged before "
        f"it happens (a year or month typed wrong?{earlier})"
    )


def kept_as_of(rescued: PainReport, today: dt.date) -> PainReport:
    """What the safety rules keep of a record dated later, or whose day could not be read
    (UNDATED), as of `today`: a pain of 9 typed with next year's date must not wait a year,
    nor one with a day that does not exist be lost."""
    note = KEPT_UNDATED if undated(rescued) else KEPT_AS_OF_TODAY
    return dc_replace(rescued, date=today, note=note)


def undated(rescued: PainReport) -> bool:
    """Whether the salvage kept this without a day (a record may be dated UNDATED itself)."""
    return rescued.date == UNDATED and rescued.note == KEPT_UNDATED


def _later(record: Record, today: dt.date) -> str:
    what = getattr(record, "exercise", None) or "pain report"
    whose = f"{record.patient}'s " if record.patient else ""
    return f"{whose}{what} of {record.date}: {future_reason(record.date, today)}"


def _dated_by(row: Row, today: dt.date) -> Row:
    """`row`, its record set aside when dated more than FUTURE_GRACE after `today` (its pain
    scores and flags kept as of `today`); what a set-aside row keeps is seen as of today."""
    limit = today + FUTURE_GRACE
    record = row.record
    if record is not None and record.date > limit:
        rescued = salvage(record.model_dump(mode="json"))
        kept = kept_as_of(rescued, today) if rescued is not None else None
        return Row(row.line, row.text, None, _later(record, today), kept)
    if row.kept is not None and row.kept.date > limit:
        return row._replace(kept=kept_as_of(row.kept, today))
    return row


# -- files ------------------------------------------------------------------------------------


def log_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    raise LogError(f"{path}: unknown log format {suffix!r}; use .jsonl, .csv or .parquet")


@contextmanager
def log_rows(
    path: Path, encoding: str | None = None, fmt: str | None = None
) -> Iterator[Iterator[Row]]:
    """The Rows of a log file of format `fmt` (default: by its extension); errors reading
    it in the block raise LogError naming the file. `encoding` is a text log's (log_lines):
    Parquet's text is UTF-8 by its own definition."""
    fmt = fmt or log_format(path)
    if fmt == "parquet":
        with _parquet_file(path) as handle:
            yield _parquet_rows(handle)
        return
    with log_lines(path, encoding) as lines:
        yield rows(lines, str(path), fmt)


@contextmanager
def log_lines(path: Path, encoding: str | None = None) -> Iterator[Iterable[str]]:
    """The lines of a log file in `encoding` (default UTF-8, a byte-order mark allowed).
    Bytes the encoding cannot read raise LogError naming the file and the line."""
    name = encoding or "UTF-8"
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise LogError(f"unknown encoding {name!r} (e.g. utf-8, cp1252, latin-1)") from None
    if codec == "utf-8":
        codec = "utf-8-sig"  # a spreadsheet's byte-order mark is not part of the first column
    try:
        with path.open(encoding=codec, newline="") as handle:
            yield handle
    except OSError as exc:
        raise LogError(f"{path}: cannot read the log: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise LogError(_undecodable(path, codec, name, exc)) from None


def _undecodable(path: Path, codec: str, name: str, error: UnicodeDecodeError) -> str:
    """Where the first byte `codec` cannot read is: the file's line and column."""
    if codec == "utf-8-sig":
        hint = "; if a spreadsheet on Windows saved it, try --encoding cp1252"
    else:
        hint = "; --encoding names the file's encoding"
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode(codec)
            except UnicodeDecodeError as exc:
                return (
                    f"{path}:{number}: not {name} text (byte 0x{raw[exc.start]:02x} at "
                    f"column {exc.start + 1}){hint}"
                )
    return f"{path}: not {name} text ({error.reason}){hint}"


def load_log(path: str | Path, encoding: str | None = None, today: dt.date | None = None) -> Log:
    """Read a JSONL, CSV or Parquet log file (by its extension); `today` as read_log's."""
    path = Path(path)
    fmt = log_format(path)
    if fmt == "parquet":
        with log_rows(path, encoding, fmt) as found:
            return _log_of(found, str(path), today)
    with log_lines(path, encoding) as lines:
        return read_log(lines, str(path), fmt, today)
