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
            # Colons, counted as the reader counts them (_keys below; keys' closing quotes only
            # in the few lines where the colons are not the keys').
            pl.col("text").str.count_matches(":", literal=True).alias("colons"),
            pl.col("text").str.contains("null", literal=True).alias("nulls"),  # (counted below)
            (pl.col("text").str.len_bytes() <= MAX_LINE).alias("short"),
        ).with_row_index("line")
        candidate = pl.any_horizontal(*[f"~{k}" for k in self._grammars]) & pl.col("short")
        picked = matched.filter(candidate)
        texts = frame["text"].gather(picked["line"])
        # (Decoded where they are: joined into one text for read_ndjson they took a fifth more
        # CPU. A key given twice keeps its first value either way: _keys and _null_twice.)
        fields = texts.str.json_decode(pl.Struct(self.schema)).struct.unnest()
        read = pl.concat([picked, fields], how="horizontal")
        # The nulls given, counted on the few lines with "null" in them at all.
        with_null = picked.filter(pl.col("nulls"))["line"]
        nulls = pl.Series("nulls", [0] * len(read), dtype=pl.UInt32)
        if len(with_null):
            counted = _nulls_counted(frame["text"].gather(with_null), self._null)
            nulls = nulls.scatter(
                picked.with_row_index("at").filter(pl.col("nulls"))["at"], counted
            )
        read = read.with_columns(nulls)
        taken = pl.any_horizontal(
            *[(pl.col("kind") == kind) & self._valid(kind) for kind in self.kinds]
        )
        given = pl.sum_horizontal(*[pl.col(n).is_not_null() for n in self.schema])
        read = read.filter(taken).with_columns((given + pl.col("nulls")).alias("given"))
        read = read.filter(self._keys(read, frame["text"]))
        read = read.filter(~pl.col("line").is_in(self._null_twice(read, frame["text"]).to_list()))
        mask = pl.Series("taken", [False] * len(lines), dtype=pl.Boolean)
        mask = mask.scatter(read["line"], True) if not read.is_empty() else mask
        return read.select("line", *self.schema), mask

    @staticmethod
    def _keys(read: pl.DataFrame, lines: pl.Series) -> pl.Series:
        """Whether each line `read` holds (`line`, its place in `lines`; lines the grammar
        takes) gives each of the fields it has (`given`: values and nulls) once, as the
        reader's plain path decides it (records.plain_fields): as many colons as fields, or
        as many keys' closing quotes followed by a colon, with no quote followed by white
        space. Text in such a line holds no quote, so each `":` ends a key, and a key given
        twice (polars keeps one value of it) or a colon in text makes one too many. The
        quotes are counted only where the colons are not the fields (a colon in text)."""
        colons = read["given"] == read["colons"]
        if colons.all():
            return colons
        others = read.filter(~colons)
        texts = lines.gather(others["line"])
        quoted = texts.str.count_matches('":', literal=True) == others["given"]
        gap = texts.str.contains('" ', literal=True) | texts.str.contains('"\t', literal=True)
        return colons.scatter((~colons).arg_true(), quoted & ~gap)

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


def _nulls_counted(texts: pl.Series, null: str) -> pl.Series:
    """How often `null` (any key given null: PlainColumns._null) matches each of `texts`,
    lines the grammar takes. In a line with no white space beside a colon, that is how often
    the text `":null` appears: such a line's text holds no quote, so a quote followed by a
    colon ends a key, and null is a value the grammar takes only where the field may be null.
    Counted as text there (the store's lines, most dataset lines: a fourth of the
    expression's cost, whose alternation of keys no literal search speeds up), with the
    expression in the other lines."""
    spaced = texts.str.contains(r"[ \t]:|:[ \t]")
    counted = texts.str.count_matches('":null', literal=True)
    if not spaced.any():
        return counted
    return counted.scatter(spaced.arg_true(), texts.filter(spaced).str.count_matches(null))


# -- a Parquet log's rows, read in columns ------------------------------------------------------

#: The largest number the column path takes from a Parquet cell, as from a JSON line (the
#: grammar's 7 digits before the point, 9 for an integer), and the decimals it keeps.
_MOST = {"float": 1e7, "int": 1e9}
_DECIMALS = 6
_INTEGERS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)
_FLOATS = (pl.Float32, pl.Float64)
#: The longest text (bytes) or list the column path takes from a cell: a row far below the
#: longest line the reader reads (MAX_LINE), whatever its other cells hold.
_LONGEST = 1024
#: Either kind's word, for a `kind` cell.
_KIND_WORDS = '"outcome"|"pain"'


class PlainTable:
    """The column path's reading of a Parquet log's rows: which rows the column engine may
    take as they are, and their fields, the same columns PlainColumns.read gives of the JSON
    line of each (`line`: the row's number, from 1; `key`: its patient).

    The Parquet reader (progressor.reading.records) reads a row as a CSV row whose cells are
    typed: a null or an empty text is a field not given, a text is stripped of its spaces, a
    number, a list or a day is kept. A row is taken when that reading is a plain record of
    its kind and the values are those a JSON line of the column path could give:

    - the table's columns are fields named as the reader names them (`pain_before`, not
      `Pain Before`), each once, of a type the field takes (numbers for numbers, whole
      numbers for whole ones, text, a day or YYYY-MM-DD text for `date`, lists of those);
      otherwise no row is taken (the reader reads them all);
    - the row's kind (its `kind`, or as the reader infers it: `exercise` given, an outcome;
      `pain`, a pain report) has each field the row gives, and the ones it requires;
    - texts as the grammar takes them (no quote, backslash or control character; a literal's
      own words), with no white space at their ends but the spaces and tabs the reader
      strips; numbers finite, within the fields' bounds, below the grammar's 10^7 (10^9 for
      a whole number) and of at most six decimals; a day between the years 1900 and 2999.

    tests/test_columns_reading.py holds the rows taken to the Parquet reader's reading."""

    def __init__(self, plain: PlainColumns) -> None:
        self.plain = plain

    def read(self, table: Any) -> tuple[pl.DataFrame, pl.Series] | None:
        """The fields of the rows taken (`line`, `key`, then PlainColumns' columns) and
        whether each row was taken; None when the table's columns are not all the reader's
        fields of a type taken (the reader then reads every row)."""
        names: list[str] = table.schema.names
        if len(set(names)) != len(names) or "patient" not in names:
            return None
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        values: dict[str, pl.Expr] = {}
        fine: list[pl.Expr] = []
        for name in names:
            field = self._field(name)
            if field is None:
                return None
            cell = _cell(name, field, frame.schema[name])
            if cell is None:
                return None
            values[name], ok = cell
            fine.append(ok)
        given = {name: pl.col(name).is_not_null() for name in names}
        # The reader sets aside a row whose text (its cells as JSON) is longer than MAX_LINE:
        # the column path takes only rows that cannot be, by a bound on that text's length.
        most = pl.sum_horizontal(_most_text(n, frame.schema[n]) for n in names) + 2  # ({})
        fine.append(most <= MAX_LINE)
        cells = frame.select(
            *(value.alias(name) for name, value in values.items()),
            pl.all_horizontal(fine).alias("~fine"),
        ).with_row_index("line", offset=1)
        kind = pl.col("kind") if "kind" in names else pl.lit(None, pl.String)
        inferred = (
            pl.when(given["exercise"] if "exercise" in names else pl.lit(False))
            .then(pl.lit("outcome"))
            .when(given["pain"] if "pain" in names else pl.lit(False))
            .then(pl.lit("pain"))
        )
        cells = cells.with_columns(pl.coalesce(kind, inferred).alias("kind"))
        taken = pl.lit(False)
        for kind_name, fields in self.plain.kinds.items():
            ok = (pl.col("kind") == kind_name) & pl.col("~fine")
            for name in names:
                if name not in fields:  # (a field of the other kind, or none: set aside)
                    ok &= pl.col(name).is_null()
            for name, field in fields.items():
                if field.required:
                    ok &= pl.col(name).is_not_null() if name in names else pl.lit(False)
            taken |= ok
        # (A row naming no patient is no one's: the reader reads it, and the run reports it.)
        taken &= pl.col("patient").is_not_null()
        cells = cells.with_columns(
            taken.fill_null(False).alias("~taken"), pl.col("patient").alias("key")
        )
        mask = cells["~taken"]
        # A field given its default is left out, as a record's JSON line leaves it out
        # (progressor.dataset.parquet.record_line): the frames are those of those lines.
        taken_rows = cells.filter(pl.col("~taken")).select(
            pl.col("line").cast(pl.UInt32),
            "key",
            *(
                (pl.col(n) if n == "kind" else _unless_default(n, self._default(n)))
                .cast(t)
                .alias(n)
                if n in names or n == "kind"
                else pl.lit(None, t).alias(n)
                for n, t in self.plain.schema.items()
            ),
        )
        return taken_rows, mask

    @staticmethod
    def _default(name: str) -> Any:
        """A field's default (the same in either kind of record that has it)."""
        defaults = {
            None if field.is_required() else field.default
            for model in _KINDS.values()
            if (field := model.model_fields.get(name)) is not None
        }
        (default,) = defaults
        return default

    def _field(self, name: str) -> _Field | None:
        """The field of a column named `name`, as either kind of record has it."""
        for fields in self.plain.kinds.values():
            if name in fields:
                return fields[name]
        return None


def _cell(name: str, field: _Field, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr] | None:
    """A column's values as the Parquet reader reads them (null: not given), and whether each
    is one the column path takes (see PlainTable); None for a column type it does not take."""
    column = pl.col(name)
    want = field.dtype
    low, high = field.bounds
    if field.is_day:
        if dtype == pl.Date:
            day = column
        elif dtype == pl.String:
            text = column.str.strip_chars(" \t")
            day = pl.when(text.str.contains(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")).then(
                text.str.to_date("%Y-%m-%d", strict=False)
            )
            blank = text.str.len_bytes() == 0
            ok = column.is_null() | blank | day.is_not_null()
            year = day.dt.year()
            value = pl.when(blank).then(None).otherwise(day.dt.to_string("%Y-%m-%d"))
            return value, ok & (day.is_null() | ((year >= 1900) & (year <= 2999)))
        else:
            return None
        year = day.dt.year()
        return day.dt.to_string("%Y-%m-%d"), day.is_null() | ((year >= 1900) & (year <= 2999))
    if want == pl.String():
        if dtype != pl.String:
            return None
        text = column.str.strip_chars(" \t")
        value = pl.when(text.str.len_bytes() > 0).then(text)
        quoted = pl.concat_str(pl.lit('"'), text, pl.lit('"'))
        # (`kind` names either kind: each kind's own grammar holds its one word.)
        grammar = _KIND_WORDS if name == "kind" else field.pattern
        ok = value.is_null() | (
            quoted.str.contains(f"^(?:{grammar})$")
            & ~text.str.contains(r"^\s|\s$")
            & (text.str.len_bytes() < _LONGEST)
        )
        return value, ok
    if want == pl.Boolean():
        return (column, pl.lit(True)) if dtype == pl.Boolean else None
    if want in (pl.Float64(), pl.Int64()):
        read = _number(column, dtype, want == pl.Float64(), low, high)
        return None if read is None else (read[0], column.is_null() | read[1])
    if isinstance(want, pl.List) and isinstance(dtype, pl.List):
        inner = want.inner
        if inner == pl.String():
            if dtype.inner != pl.String:
                return None
            plain = pl.element().str.contains(r'^[^"\\\x00-\x1f]*$').fill_null(False)
            plain &= pl.element().str.len_bytes() < _LONGEST
            ok = column.list.eval(plain).list.all()
        else:
            items = _number(pl.element(), dtype.inner, inner == pl.Float64(), low, None, True)
            if items is None:
                return None
            value, ok = items
            column, ok = column.list.eval(value.cast(inner)), column.list.eval(ok).list.all()
        return column, pl.col(name).is_null() | (ok & (pl.col(name).list.len() < _LONGEST))
    return None


def _most_text(name: str, dtype: Any) -> pl.Expr:
    """The most characters a cell can take in its row's JSON text (the reader's): its key,
    and its value's bytes (no fewer than its characters), a list's items each with their
    quotes and separator, any other value at most 26 characters. A cell the column path
    takes has no character JSON would escape; the others' rows are not taken anyway."""
    column = pl.col(name)
    key = len(name) + 6
    if dtype == pl.String:
        value = column.str.len_bytes().cast(pl.Int64) + 2
    elif isinstance(dtype, pl.List) and dtype.inner == pl.String:
        value = column.list.eval(pl.element().str.len_bytes().cast(pl.Int64) + 4).list.sum() + 2
    elif isinstance(dtype, pl.List):
        value = column.list.len().cast(pl.Int64) * 26 + 2
    else:
        value = pl.lit(26, pl.Int64)
    return value.fill_null(4) + key


def _unless_default(name: str, default: Any) -> pl.Expr:
    """A column's values, null where a value is the field's default (not given)."""
    column = pl.col(name)
    if default is None:
        return column
    if isinstance(default, tuple):
        return pl.when(column.list.len() > 0).then(column)
    return pl.when(column != default).then(column)


def _number(
    column: pl.Expr, dtype: Any, real: bool, low: Any, high: Any, item: bool = False
) -> tuple[pl.Expr, pl.Expr] | None:
    """A number (a cell, or an `item` of a list) as the reader reads it, and whether the
    column path takes it (not a null: a list's null item is not a number). A cell's -0 is
    read as 0 (the records' own rule: models.positive_zeros); a list's -0 stays -0, which
    the column path does not take (its JSON line's "-0.0" has a sign)."""
    if dtype in _FLOATS and real:
        number = column.cast(pl.Float64)
        negative_zero = (number == 0) & (1.0 / number < 0)
        value = pl.when(number == 0).then(pl.lit(0.0)).otherwise(number) if not item else number
    elif dtype in _INTEGERS:
        value, negative_zero = column.cast(pl.Int64), pl.lit(False)
    else:
        return None
    ok = value.is_not_null()
    if item:
        ok &= ~negative_zero
    if real:
        ok &= value.is_finite() & (value.round(_DECIMALS) == value)
    ok &= value >= (low if low is not None else 0)  # (the grammar takes no sign)
    ok &= value < _MOST["float" if real else "int"]
    if high is not None:
        ok &= value <= high
    return value, ok.fill_null(False)
