"""Read programs (TOML) into models, with located errors.

Every problem is reported with file, line and key path, and a suggestion for unknown keys.
Logs are read by progressor.reading (its names are re-exported here for older imports).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from progressor.errors import KeyPath, Problem, ProgramError, did_you_mean
from progressor.models import (
    UNKNOWN_KEY_ERRORS,
    Dose,
    Exercise,
    Limits,
    Program,
    Progression,
)

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\".' ]+?)\s*=\s*(.*)$")
_INLINE_KEY = re.compile(r"([A-Za-z0-9_\-]+)\s*=")


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map each key path of a TOML document to the line (1-based) that defines it.

    Arrays of tables get their index in the path: ("exercises", 1, "dose", "reps").
    Keys of an inline table are mapped to the line of the inline table.
    """
    lines: dict[KeyPath, int] = {}
    counters: dict[tuple[str, ...], int] = {}
    table: KeyPath = ()
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if depth > 0:  # inside a multi-line array
            depth += line.count("[") - line.count("]")
            continue
        header = _HEADER.match(line)
        if header:
            table = _table_path(_split_key(header.group(2)), header.group(1) == "[[", counters)
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if not key or line.lstrip().startswith("#"):
            continue
        path = (*table, *_split_key(key.group(1)))
        lines.setdefault(path, number)
        value = key.group(2)
        if value.startswith("{"):
            for inner in _INLINE_KEY.findall(value):
                lines.setdefault((*path, inner), number)
        if value.startswith("["):
            depth = value.count("[") - value.count("]")
    return lines


def _table_path(
    keys: tuple[str, ...], is_array: bool, counters: dict[tuple[str, ...], int]
) -> KeyPath:
    path: list[str | int] = []
    for end in range(1, len(keys) + 1):
        path.append(keys[end - 1])
        prefix = keys[:end]
        if end == len(keys) and is_array:
            counters[prefix] = counters.get(prefix, -1) + 1
        if prefix in counters:
            path.append(counters[prefix])
    return tuple(path)


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
        suggestion = None
        if item["type"] in UNKNOWN_KEY_ERRORS and path:
            suggestion = did_you_mean(str(path[-1]), _fields_at(path[:-1]))
        line = next(
            (lines[path[:end]] for end in range(len(path), -1, -1) if path[:end] in lines), None
        )
        message = item["msg"]
        if item["type"] in UNKNOWN_KEY_ERRORS:
            message = "unknown key"
        problems.append(Problem(message, source, line, path, suggestion))
    return problems


def parse_program(text: str, source: str | None = None) -> Program:
    """A Program from TOML text; raise ProgramError with every located problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        line = int(found.group(1)) if found else None
        raise ProgramError([Problem(f"not valid TOML: {exc}", source, line)]) from None
    lines = key_lines(text)
    try:
        program = Program.model_validate(data)
    except ValidationError as exc:
        raise ProgramError(_problems(exc, source, lines)) from None
    program._source = source
    program._lines = lines
    return program


def load_program(path: str | Path) -> Program:
    """A Program from a TOML file; raise ProgramError with every located problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProgramError(
            [Problem(f"cannot read the program: {exc.strerror}", str(path))]
        ) from None
    return parse_program(text, str(path))


# -- logs: read by progressor.reading, the one record reader; its names stay importable here.

from progressor.reading import (  # noqa: E402
    FUTURE_GRACE,
    KEPT_AS_OF_TODAY,
    KEPT_FROM_ASIDE,
    SALVAGED,
    Log,
    future_reason,
    kept_as_of,
    load_log,
    log_format,
    parse_record,
    read_log,
    record_reason,
    salvage,
    without_future,
)

__all__ = [
    "FUTURE_GRACE",
    "KEPT_AS_OF_TODAY",
    "KEPT_FROM_ASIDE",
    "SALVAGED",
    "Log",
    "future_reason",
    "kept_as_of",
    "key_lines",
    "load_log",
    "load_program",
    "log_format",
    "parse_program",
    "parse_record",
    "read_log",
    "record_reason",
    "salvage",
    "without_future",
]
