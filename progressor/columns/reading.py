"""The reader's plain lines, read in columns: which record lines the column engine may take
as they are, and their fields, with no Python work per line.

The one reader (progressor.reading.records) reads a plain line, a tagged record whose every
value has its field's own JSON type, in one pydantic-core call per chunk of lines; any other
line goes its readable way (salvage, set-asides). The column engine takes a narrower set of
lines, decided by polars over a whole partition at once:

- the line is one JSON object whose every key is a field of its kind of record (`kind`
  says which), given once, with a value of the field's own type written in its plainest
  form: a number without sign or exponent (at most 7 digits before the point and 6 after),
  text without escapes or control characters, `true`/`false`, a list of those, a day as
  YYYY-MM-DD; `null` only where the field may be null;
- the kind's required fields are there, and the numbers keep the fields' bounds.

The grammar and the bounds are made from the records' own field schemas (the ones the
reader validates with), never written out a second time: a field whose schema this module
does not know makes every line that gives it leave the column path, and the per-patient
engine reads it. tests/test_columns_reading.py holds the set to the reader's: every line
taken here is a line the reader reads as plain, with the same values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from progressor.core.models import PainReport
from progressor.reading.records import _KINDS, MAX_LINE, _fields_schema

#: JSON's white space inside a line (a line has no line end left).
_SPACE = "[ \t]*"
#: A number as the column path takes it: no sign (every bound of the records' numbers starts
#: at 0: a negative goes the readable way, as its bound would send it), no exponent, at most
#: 7 + 6 digits (every such decimal has the same nearest double in any correct parser).
_NUMBER = r"(?:0|[1-9][0-9]{0,6})(?:\.[0-9]{1,6})?"
_INTEGER = r"(?:0|[1-9][0-9]{0,8})"
#: Text without a quote, a backslash (no escape) or a control character.
_TEXT = r'"[^"\\\x00-\x1f]*"'
#: A day as written, not a date-time (those the per-patient engine reads).
_DAY = r'"[0-9]{4}-[0-9]{2}-[0-9]{2}"'

#: The after-validators the column path knows: the value is the same for what it takes
#: (PainReport's pain: a -0 made 0; the grammar takes no sign).
_KNOWN_AFTER = (vars(PainReport)["_no_negative_zero"].__func__,)


@dataclass(frozen=True)
class _Field:
    """One field of a kind of record, as the column path reads it."""

    pattern: str  # its value's grammar
    dtype: pl.DataType
    required: bool
    bounds: tuple[float | None, float | None]  # ge, le of the value (of each item of a list)
    is_day: bool
    nullable: bool = False


def _unwrapped(schema: dict[str, Any]) -> tuple[dict[str, Any], bool, bool]:
    """The value schema inside `default`, `nullable` and known after-validators, whether the
    field is required (no default) and whether it may be null."""
    required, nullable = True, False
    while True:
        kind = schema["type"]
        if kind == "default":
            required = False
            schema = schema["schema"]
        elif kind == "nullable":
            nullable = True
            schema = schema["schema"]
        elif kind == "function-after" and _after_function(schema) in _KNOWN_AFTER:
            schema = schema["schema"]  # (a known after-validator keeps what the grammar takes)
        else:
            return schema, required, nullable


def _after_function(schema: dict[str, Any]) -> Any:
    function = schema["function"]["function"]
    return getattr(function, "__func__", function)


def _value(schema: dict[str, Any]) -> tuple[str, pl.DataType, tuple[Any, Any], bool] | None:
    """The grammar, column type, bounds and day-ness of a value schema; None when unknown."""
    kind = schema["type"]
    bounds = (schema.get("ge"), schema.get("le"))
    if kind == "float" and set(schema) <= {"type", "ge", "le", "metadata"}:
        return _NUMBER, pl.Float64(), bounds, False
    if kind == "int" and set(schema) <= {"type", "ge", "le", "metadata"}:
        return _INTEGER, pl.Int64(), bounds, False
    if kind == "str" and set(schema) <= {"type", "metadata"}:
        return _TEXT, pl.String(), (None, None), False
    if kind == "bool" and set(schema) <= {"type", "metadata"}:
        return "(?:true|false)", pl.Boolean(), (None, None), False
    if kind == "literal" and all(isinstance(v, str) and _plain_text(v) for v in schema["expected"]):
        words = "|".join(re.escape(f'"{v}"') for v in schema["expected"])
        return f"(?:{words})", pl.String(), (None, None), False
    if kind == "union" and schema.get("custom_error_type") == "day_type":
        return _DAY, pl.String(), (None, None), True
    if kind == "tuple" and schema.get("variadic_item_index") == 0:
        (item,) = schema["items_schema"]
        read = _value(item)
        if read is None or read[3]:
            return None
        pattern, dtype, item_bounds, _ = read
        items = f"{pattern}(?:{_SPACE},{_SPACE}{pattern})*"
        return rf"\[{_SPACE}(?:{items})?{_SPACE}\]", pl.List(dtype), item_bounds, False
    return None


def _plain_text(value: str) -> bool:
    return re.fullmatch(r'[^"\\\x00-\x1f]*', value) is not None


def _fields(kind: str) -> dict[str, _Field]:
    """The fields of the records of `kind` the column path can read (an unknown schema's
    field is left out: a line giving it does not match the kind's grammar)."""
    out = {}
    for name, field in _fields_schema(_KINDS[kind])["fields"].items():
        schema, required, nullable = _unwrapped(field["schema"])
        read = _value(schema)
        if read is not None:
            pattern, dtype, bounds, is_day = read
            if nullable:  # (null: the field's None, as when the key is not given)
                pattern = f"(?:{pattern}|null)"
            out[name] = _Field(pattern, dtype, required, bounds, is_day, nullable)
        elif required:  # (a record that cannot go without it never takes the column path)
            out[name] = _Field("(?!)", pl.String(), True, (None, None), False)
    return out


class PlainColumns:
    """The column path's reading of record lines (see the module's docstring)."""

    def __init__(self) -> None:
        self.kinds = {kind: _fields(kind) for kind in _KINDS}
        every: dict[str, pl.DataType] = {}
        for fields in self.kinds.values():
            for name, field in fields.items():
                if every.setdefault(name, field.dtype) != field.dtype:
                    raise RuntimeError(f"the kinds of record give {name!r} two column types")
        self.schema = every
        self._grammars = {kind: self._grammar(kind, fields) for kind, fields in self.kinds.items()}
        # A null value (the grammar takes one only where the field may be null), after the
        # key of a field that may be null: text in a line the grammar takes holds no quote,
        # and a text value is followed by a comma or a brace, so a quoted name followed by a
        # colon is a key. Text such as "a: null," or ": null}" is not counted (counted, it
        # would make up for a key given twice or a colon in text: _keys).
        null = f"{_SPACE}:{_SPACE}null{_SPACE}[,}}]"
        nullable = sorted(
            {n for kind in self.kinds.values() for n, f in kind.items() if f.nullable}
        )
        self._null = '"(?:' + "|".join(map(re.escape, nullable)) + ')"' + null
        # Each field given null, by its name, for the lines with a null: polars keeps a
        # repeated key's first value, so a null given after a value of the same field must
        # be seen as its second value, not as another key.
        self._nulls = {n: f'"{re.escape(n)}"{null}' for n in nullable}

    def _grammar(self, kind: str, fields: dict[str, _Field]) -> str:
        pairs = "|".join(
            f'"{re.escape(name)}"{_SPACE}:{_SPACE}'
            + (re.escape(f'"{kind}"') if name == "kind" else field.pattern)
            for name, field in fields.items()
        )
        pair = f"(?:{pairs})"
        return rf"^{_SPACE}\{{{_SPACE}{pair}(?:{_SPACE},{_SPACE}{pair})*{_SPACE}\}}{_SPACE}$"

    def read(self, lines: pl.Series) -> tuple[pl.DataFrame, pl.Series]:
        """The fields of the lines taken (one row per line taken, `line`: its place in
        `lines`), and whether each line was taken."""
        frame = pl.DataFrame({"text": lines}, schema={"text": pl.String})
        matched = frame.select(
            *[
                pl.col("text").str.contains(grammar).alias(f"~{kind}")
                for kind, grammar in self._grammars.items()
            ],
            # Colons and keys' closing quotes, counted as the reader counts them (_keys below).
            pl.col("text").str.count_matches(":", literal=True).alias("colons"),
            pl.col("text").str.count_matches('":', literal=True).alias("quoted"),
            (
                pl.col("text").str.contains('" ', literal=True)
                | pl.col("text").str.contains('"\t', literal=True)
            ).alias("gap"),
            pl.col("text").str.contains("null", literal=True).alias("nulls"),  # (counted below)
            (pl.col("text").str.len_bytes() <= MAX_LINE).alias("short"),
        ).with_row_index("line")
        candidate = pl.any_horizontal(*[f"~{k}" for k in self._grammars]) & pl.col("short")
        picked = matched.filter(candidate)
        texts = frame["text"].gather(picked["line"])
        if texts.is_empty():
            fields = pl.DataFrame(schema=self.schema)
        else:
            fields = pl.read_ndjson(texts.str.join("\n").item().encode(), schema=self.schema)
        read = pl.concat([picked, fields], how="horizontal")
        # The nulls given, counted on the few lines with "null" in them at all.
        with_null = picked.filter(pl.col("nulls"))["line"]
        nulls = pl.Series("nulls", [0] * len(read), dtype=pl.UInt32)
        if len(with_null):
            counted = frame["text"].gather(with_null).str.count_matches(self._null)
            nulls = nulls.scatter(
                picked.with_row_index("at").filter(pl.col("nulls"))["at"], counted
            )
        read = read.with_columns(nulls)
        taken = pl.any_horizontal(
            *[(pl.col("kind") == kind) & self._valid(kind) for kind in self.kinds]
        )
        given = pl.sum_horizontal(*[pl.col(n).is_not_null() for n in self.schema])
        read = read.filter(taken & self._keys(given + pl.col("nulls")))
        read = read.filter(~pl.col("line").is_in(self._null_twice(read, frame["text"]).to_list()))
        mask = pl.Series("taken", [False] * len(lines), dtype=pl.Boolean)
        mask = mask.scatter(read["line"], True) if not read.is_empty() else mask
        return read.select("line", *self.schema), mask

    @staticmethod
    def _keys(fields: pl.Expr) -> pl.Expr:
        """Whether a line the grammar takes gives each of its `fields` (values and nulls)
        once, as the reader's plain path decides it (records.plain_fields): as many colons as
        fields, or as many keys' closing quotes followed by a colon, with no quote followed by
        white space. Text in such a line holds no quote, so each `":` ends a key, and a key
        given twice (polars keeps one value of it) or a colon in text makes one too many."""
        return (fields == pl.col("colons")) | ((fields == pl.col("quoted")) & ~pl.col("gap"))

    def _null_twice(self, read: pl.DataFrame, lines: pl.Series) -> pl.Series:
        """The lines among `read` with a field given null where polars kept a value of it
        (given before the null), or given null twice: few lines have a null at all."""
        nulled = read.filter(pl.col("nulls") > 0)
        if nulled.is_empty():
            return pl.Series("line", [], dtype=pl.UInt32)
        counted = nulled.with_columns(
            lines.gather(nulled["line"])
            .to_frame("text")
            .select(
                pl.col("text").str.count_matches(null).alias(f"null:{name}")
                for name, null in self._nulls.items()
            )
        )
        twice = pl.any_horizontal(
            (pl.col(f"null:{n}") > 1) | ((pl.col(f"null:{n}") == 1) & pl.col(n).is_not_null())
            for n in self._nulls
        )
        return counted.filter(twice)["line"]

    def _valid(self, kind: str) -> pl.Expr:
        """Whether a row of `kind`'s grammar holds its required fields and its bounds."""
        valid = pl.col(f"~{kind}")
        for name, field in self.kinds[kind].items():
            column = pl.col(name)
            if field.required:
                valid &= column.is_not_null()
            if field.is_day:
                day = column.str.to_date("%Y-%m-%d", strict=False)
                valid &= column.is_null() | (day.is_not_null() & (day.dt.year() >= 1))
            low, high = field.bounds
            if isinstance(field.dtype, pl.List):
                low_of: Callable[[pl.Expr], pl.Expr] = lambda c: c.list.min()  # noqa: E731
                high_of: Callable[[pl.Expr], pl.Expr] = lambda c: c.list.max()  # noqa: E731
            else:
                low_of = high_of = lambda c: c
            if low is not None:
                valid &= low_of(column).fill_null(low) >= low
            if high is not None:
                valid &= high_of(column).fill_null(high) <= high
        return valid
