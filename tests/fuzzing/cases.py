"""Realistic inputs and their mutants, drawn from a random.Random (in the suite, hypothesis
supplies it through st.randoms(), so its examples are repeatable and shrink)."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROGRAM_TEXTS = {
    p.name: p.read_text(encoding="utf-8") for p in sorted(ROOT.glob("programs/*.toml"))
}
PATIENT = "anna"
START = dt.date(2026, 1, 5)
TODAY = dt.date(2026, 2, 1)  # the day of a fuzzed import

HIGH = ("7", "8", "9", "10", "7.5", "9.0")
OUT_OF_RANGE = ("11", "-3", "1e9", "12", "-1", "1E1")  # each counts as 10
LOW = ("0", "1", "2", "3", "4", "5", "6", "6.5")
NUMBERS = (
    *("11", "-3", "-1", "1e9", "1E1", "7e0", "0.7e1", "1e-9", "-0", "10.000001", "1e999"),
    *("-1e999", "NaN", "Infinity", "-Infinity", '"8"', '"7/10"', '"8 (bad)"', "007", "+8"),
    *("7,5", "1_0", "0x9", "9.", ".9", "true", "null", "[9]", "{}", "9" * 5000, "-" + "8" * 400),
)
DATES = (
    *("2026-01-05T08:30:00", "2026-01-05 08:30", "2026-01-05T08:30:00Z", "2026-01-05T00:00"),
    *("2026-01-05T08:30:00.123+01:00", "05/01/2026", "2026-1-5", "20260105", "2026-W02-1"),
    *("9999-12-31", "0001-01-01", "0000-01-01", "2026-02-30", "2027-01-05", "2026-01-05T25:00"),
    *("\uff12\uff10\uff12\uff16-01-05", "2026-01-05\x00", " 2026-01-05 "),
)
ODD = "{}[]\",:;\\'#=\t\x00\x01\x1b\x7f\x85\xa0é€\u2028\ufeff\ud800\udfff 0123456789-.eE+/"
TOKENS = (
    *("{", "}", "[", "]", '"', ",", ":", ";", "\\", '""', ",,", "\n", "\r", "\r\n", "\x00"),
    *("\ufeff", "\ud800", "\udc80", "é", "€", "\u2028", "\x85", "\x0b", "\x1c", "\t"),
    *(', "pain": 9', ', "pain_during": 8', ',"date":"2026-01-06"', ", 9", "#", "=", "'"),
    *(": null", '"pain": null, ', ', "note": "x: null,"'),
)
CONTROLS = "\x00\x01\x08\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x7f"
ENCODINGS = ("utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16", "utf-8+surrogates")


class Number(str):
    """A number as it is written (1e9, 7.5, -3): kept as text in JSON and CSV alike."""


Value = str | bool | list[int]
Fields = list[tuple[str, Value]]


# -- line mutations -----------------------------------------------------------------------------


def _at(rng: random.Random, text: str) -> int:
    return rng.randrange(len(text) + 1)


def _flip(text: str, rng: random.Random) -> str:
    at = rng.randrange(len(text)) if text else 0
    return text[:at] + rng.choice(ODD) + text[at + 1 :]


def _insert(text: str, rng: random.Random) -> str:
    at = _at(rng, text)
    return text[:at] + rng.choice(TOKENS) + text[at:]


def _delete(text: str, rng: random.Random) -> str:
    at = _at(rng, text)
    return text[:at] + text[at + rng.randint(1, 10) :]


def _repeat(text: str, rng: random.Random) -> str:
    at = _at(rng, text)
    return text[:at] + text[at : at + rng.randint(1, 30)] + text[at:]


def _truncate(text: str, rng: random.Random) -> str:
    return text[: _at(rng, text)]


def _control(text: str, rng: random.Random) -> str:
    at = _at(rng, text)
    return text[:at] + rng.choice(CONTROLS) + text[at:]


def _replace_one(pattern: str, text: str, rng: random.Random, choices: Sequence[str]) -> str:
    found = list(re.finditer(pattern, text))
    if not found:
        return text
    hit = rng.choice(found)
    return text[: hit.start()] + rng.choice(choices) + text[hit.end() :]


def _number(text: str, rng: random.Random) -> str:
    return _replace_one(r"(?<![\d-])-?\d+(?:\.\d+)?(?![\d-])", text, rng, NUMBERS)


def _date(text: str, rng: random.Random) -> str:
    return _replace_one(r"\d{4}-\d{2}-\d{2}", text, rng, DATES)


def _nest(text: str, rng: random.Random) -> str:
    at = _at(rng, text)
    opener = rng.choice(("[", '{"a": ', '[{"b": ', "{"))
    return text[:at] + opener * rng.choice((3, 60, 1000, 5000, 20_000)) + text[at:]


def _long(text: str, rng: random.Random) -> str:
    at = _at(rng, text)
    filler = rng.choice(("x", " ", "9", "é", ",", "\\\\", '"a": 1, ', ";", "\t"))
    size = rng.choice((100, 1000, 10_000, 100_000))  # characters, up to a long line's
    return text[:at] + (filler * size)[:size] + text[at:]


_PAIR = re.compile(r'"([^"\\]+)"\s*:\s*("(?:[^"\\]|\\.)*"|\[[^\]]*\]|[^,{}\[\]\s]+)')


def _dupkey(text: str, rng: random.Random) -> str:
    """A key written twice (a JSON line's "two values for one field"), either order."""
    pairs = list(_PAIR.finditer(text))
    if not pairs:
        return text
    pair = rng.choice(pairs)
    key = pair.group(1)
    if "pain" in key:
        value = rng.choice(LOW + HIGH)
    elif key == "date":
        value = json.dumps(rng.choice((*DATES, "2026-01-06")))
    else:
        value = pair.group(2)
    copy = f'"{key}": {value}'
    if rng.random() < 0.5:
        return text[: pair.end()] + ", " + copy + text[pair.end() :]
    return text[: pair.start()] + copy + ", " + text[pair.start() :]


LINE_OPS: dict[str, Callable[[str, random.Random], str]] = {
    "flip": _flip,
    "insert": _insert,
    "delete": _delete,
    "repeat": _repeat,
    "truncate": _truncate,
    "control": _control,
    "number": _number,
    "date": _date,
    "nest": _nest,
    "long": _long,
    "dupkey": _dupkey,
}
#: Mutations of the whole log rather than of one line.
CASE_OPS = ("range", "semicolon", "dupcolumn", "spelling", "bom", "crlf", "encoding")
ALL_OPS = (*LINE_OPS, *CASE_OPS)
#: Every mutation but those of the bytes (a file's encoding): those of the text roads.
TEXT_OPS = tuple(op for op in ALL_OPS if op != "encoding")


def mutate(text: str, rng: random.Random, ops: Sequence[str]) -> str:
    for op in ops:
        if op in LINE_OPS:
            text = LINE_OPS[op](text, rng)
    return text


def pick_ops(rng: random.Random, ops: Sequence[str], most: int = 3) -> list[str]:
    return [rng.choice(ops) for _ in range(rng.randint(1, most))]


# -- logs ---------------------------------------------------------------------------------------


def record(
    rng: random.Random, high: bool, csv_header: Sequence[str] | None = None, out: bool = False
) -> Fields:
    """One realistic outcome or pain report of the seed program; `high`: one pain >= 7 (or out
    of range with `out`), the others low. Without `high` every number stays below 7."""
    highs = OUT_OF_RANGE if out else HIGH
    day = (START + dt.timedelta(days=rng.randrange(21))).isoformat()
    fields: Fields = [("patient", PATIENT), ("date", day)]
    reports = csv_header is None or "pain" in csv_header
    outcomes = csv_header is None or "exercise" in csv_header
    if reports and (not outcomes or rng.random() < 0.3):
        if rng.random() < 0.5:
            fields.append(("kind", "pain"))
        fields.append(("pain", Number(rng.choice(highs if high else LOW))))
        fields.append(("context", rng.choice(("flare", "morning", "other"))))
    else:
        exercise = rng.choice(("pelvic-tilt", "knee-to-chest", "bridge"))
        fields += [("exercise", exercise), ("reps", [5] * rng.randint(1, 2))]
        if exercise == "knee-to-chest":
            fields.append(("side", rng.choice(("left", "right"))))
        fields.append(("hold_s", Number("5")))
        pains = ["pain_before", "pain_during", "pain_after", "pain_next_morning"]
        if csv_header is not None:
            pains = [p for p in pains if p in csv_header]
        chosen = pains[: rng.randint(2, len(pains))] if len(pains) > 2 else pains
        worst = rng.choice(chosen) if high else ""
        fields += [(p, Number(rng.choice(highs if p == worst else LOW))) for p in chosen]
    if rng.random() < 0.3:
        notes = ("felt ok", "stiff", "sore but fine", "après", "pain: null, 9", ": null}")
        fields.append(("note", rng.choice(notes)))  # (the last two: text that looks like JSON)
    if csv_header is not None:
        fields = [(k, v) for k, v in fields if k in csv_header]
    return fields


def json_line(fields: Fields) -> str:
    return "{" + ", ".join(f'"{key}": {_json(value)}' for key, value in fields) + "}"


def _json(value: Value) -> str:
    return value if isinstance(value, Number) else json.dumps(value, ensure_ascii=False)


def csv_line(columns: Sequence[str], fields: Fields, sep: str) -> str:
    cells = dict(fields)
    return sep.join(_cell(cells.get(column), " " if sep == ";" else ";") for column in columns)


def _cell(value: Value | None, list_sep: str) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return list_sep.join(str(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


HEADERS = (
    ("patient", "date", "exercise", "side", "reps", "hold_s", "pain_before", "pain_during"),
    (
        *("patient", "date", "kind", "exercise", "side", "reps", "hold_s", "pain_before"),
        *("pain_during", "pain_after", "pain_next_morning", "pain", "context", "note"),
    ),
    ("patient", "date", "pain", "context", "note"),
)


@dataclass(frozen=True)
class LogCase:
    """A log's text, and the bytes of its file when it is read from one (`encoding`)."""

    fmt: str
    text: str
    encoding: str | None = None

    def data(self) -> bytes:
        """The file's bytes (a text that cannot be encoded is written as best it can)."""
        if self.encoding == "utf-8+surrogates":
            return self.text.encode("utf-8", errors="surrogatepass")
        encoding = self.encoding or "utf-8"
        return self.text.encode(
            encoding, errors="surrogatepass" if "utf" in encoding else "replace"
        )

    def file_text(self) -> str | None:
        """The text a reader of the file gets (utf-8, a BOM dropped), None if not UTF-8."""
        try:
            return self.data().decode("utf-8-sig")
        except UnicodeDecodeError:
            return None


def log_case(
    rng: random.Random, fmt: str, ops: Sequence[str], rows: int = 0, mutate_all: bool = False
) -> LogCase:
    """A log of `rows` records (default: 1-5) each mutated by `ops`. Without `mutate_all`,
    one target line is high and mutated, the others are low and intact (so that any record
    with a pain >= 7 is the target's); with it, every line may be high and is mutated."""
    count = rows or rng.randint(1, 5)
    target = rng.randrange(count)
    wanted = set(ops)
    sep = ";" if fmt == "csv" and "semicolon" in wanted else ","
    header = list(rng.choice(HEADERS)) if fmt == "csv" else None
    lines: list[str] = []
    columns = _header_after(header, wanted)
    for row in range(count):
        mutated = mutate_all or row == target
        high = rng.random() < 0.8 if mutated else False
        fields = record(rng, high, header, out="range" in wanted)
        if header is None:
            if "spelling" in wanted:
                fields = [(_respelt(key, rng), value) for key, value in fields]
            line = json_line(fields)
        else:
            line = csv_line(header, fields, sep)
            if "dupcolumn" in wanted:
                line += sep + _dup_cell(rng, header, mutated)
        lines.append(mutate(line, rng, ops) if mutated else line)
    if header is not None:
        if "spelling" in wanted:
            columns = [_respelt(column, rng) for column in columns]
        lines.insert(0, sep.join(columns))
    end = "\r\n" if "crlf" in wanted else "\n"
    text = ("\ufeff" if "bom" in wanted else "") + end.join(lines) + end
    encoding = rng.choice(ENCODINGS) if "encoding" in wanted else None
    return LogCase(fmt, text, encoding)


def _header_after(header: Sequence[str] | None, wanted: set[str]) -> list[str]:
    columns = list(header or ())
    if "dupcolumn" in wanted:
        pains = [c for c in columns if "pain" in c] or ["date"]
        columns.append(pains[0])  # (the same column twice: the dict of cells keeps one)
    return columns


def _dup_cell(rng: random.Random, header: Sequence[str], mutated: bool) -> str:
    """The cell of a row under its header's repeated first pain column: another value, so
    that the row carries two values for one field (the high one may be either; a row that
    must stay low gets a low one)."""
    first = next((c for c in header if "pain" in c), "date")
    if first == "date":
        return "2026-01-06"
    return rng.choice(LOW + HIGH if mutated else LOW)  # (HIGH: this test is not of ranges)


def _respelt(name: str, rng: random.Random) -> str:
    """A column or key as spreadsheets and apps write it: `Pain Before`, ` date`, `PAIN`."""
    return rng.choice(
        (name, name.replace("_", " ").title(), f" {name}", name.upper(), name.title())
    )


# -- programs -----------------------------------------------------------------------------------

TOML_TOKENS = (
    *("[", "]", "{", "}", '"', "'", "=", ".", ",", "#", "\n", '"""', "'''", "\\", "\\u0000"),
    *("[[exercises]]\n", "[safety]\n", "\ufeff", "\ud800", "\x00", "\x1b", "é", "inf", "nan"),
    *("1979-05-27T07:32:00Z", "0x7fffffff", "1e400", "-0", "true"),
)
TOML_VALUES = (
    *('"x"', "-1", "0", "1e400", "inf", "-inf", "nan", "10000000000000000000000", "1.5"),
    *("[]", "{}", "true", "1979-05-27", "07:32:00", '"é\\u0000"', "9" * 5000, "[[[1]]]"),
    *("{ a = 1 }", '""', "-9223372036854775809", "0.0000000001", '["x", 1]'),
)


def _toml_value(text: str, rng: random.Random) -> str:
    return _replace_one(r"(?<==)[ ]*[^\n#]+", text, rng, [" " + v for v in TOML_VALUES])


def _toml_insert(text: str, rng: random.Random) -> str:
    at = _at(rng, text)
    return text[:at] + rng.choice(TOML_TOKENS) + text[at:]


def _toml_nest(text: str, rng: random.Random) -> str:
    depth = rng.choice((10, 100, 1000, 5000))
    deep = rng.choice(
        (
            "x = " + "[" * depth + "]" * depth,
            "x = " + "{ a = " * depth + "1" + " }" * depth,
            "[" + ".".join(["a"] * depth) + "]",
            ".".join(["b"] * depth) + " = 1",
        )
    )
    at = rng.choice([m.end() for m in re.finditer("\n", text)] or [0])
    return text[:at] + deep + "\n" + text[at:]


def _toml_dupkey(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    at = rng.randrange(len(lines))
    return "\n".join([*lines[: at + 1], lines[at], *lines[at + 1 :]])


PROGRAM_OPS: dict[str, Callable[[str, random.Random], str]] = {
    "flip": _flip,
    "insert": _toml_insert,
    "delete": _delete,
    "repeat": _repeat,
    "truncate": _truncate,
    "control": _control,
    "number": lambda text, rng: _replace_one(r"\d+", text, rng, TOML_VALUES),
    "value": _toml_value,
    "nest": _toml_nest,
    "long": _long,
    "dupkey": _toml_dupkey,
}
PROGRAM_ALL_OPS = (*PROGRAM_OPS, "encoding")


@dataclass(frozen=True)
class ProgramCase:
    text: str
    encoding: str | None = None  # None: parse_program(text); else load_program of a file

    def data(self) -> bytes:
        return LogCase("toml", self.text, self.encoding).data()


def program_case(rng: random.Random, ops: Sequence[str]) -> ProgramCase:
    text = PROGRAM_TEXTS[rng.choice(sorted(PROGRAM_TEXTS))]
    for op in ops:
        if op in PROGRAM_OPS:
            text = PROGRAM_OPS[op](text, rng)
    encoding = rng.choice(ENCODINGS) if "encoding" in ops else None
    return ProgramCase(text, encoding)
