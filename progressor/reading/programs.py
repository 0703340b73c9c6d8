"""Read programs (TOML) into models, with located errors.

Every problem is reported with file, line and key path, and a suggestion for unknown keys.
Logs are read by progressor.reading.records (its names are re-exported here for older imports).
"""

from __future__ import annotations

import re
import sys
import tomllib
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from progressor.core.models import (
    DUPLICATE_ID,
    ID_WORDS,
    UNKNOWN_KEY_ERRORS,
    Dose,
    Exercise,
    Limits,
    Program,
    Progression,
)
from progressor.core.plugins import Registries
from progressor.core.validation import names_problems
from progressor.errors import (
    KeyPath,
    Problem,
    ProgramError,
    did_you_mean,
    format_path,
)
from progressor.reading.toml_keys import MAX_NESTING, scan
from progressor.reading.toml_keys import key_lines as key_lines  # (a public name of this module)


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
