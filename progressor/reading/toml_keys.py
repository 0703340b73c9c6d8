"""Where each key of a TOML document is defined: a small scanner, linear in the text.

tomllib gives values without lines; errors are reported at lines, so this scanner walks
the text once more and notes, for each key path, the line that defines it. Every token is
matched by a regular expression whose alternatives start with different characters (so
none can backtrack over the text again), nesting is kept on an explicit stack (so no depth
of brackets can exhaust Python's recursion), and every step consumes text or closes a
bracket: the time is linear in the length of the text, whatever the text.

It is forgiving: it runs on any text (a document tomllib refused included) and never
raises; on text that is not TOML the lines it finds are only a best guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KeyPath = tuple[str | int, ...]

#: The deepest key path a program may have, counting tables, keys and array positions
#: (exercises[0].progression.variants[1].dose.reps is 7 deep). Deeper text is not read on:
#: tomllib would exhaust Python's recursion on a few hundred nested brackets.
MAX_NESTING = 32

_SPACE = re.compile(r"[ \t]*")
_BLANK = re.compile(r"(?:[ \t\r\n]++|#[^\n]*+)*+")  # spaces, line ends and comments
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BASIC = re.compile(r'"(?:[^"\\\n]|\\.)*+"?')
_LITERAL = re.compile(r"'[^'\n]*'?")
# A closing delimiter may be followed by one or two more quotes, which belong to the string.
_ML_BASIC = re.compile(r'"""(?:[^"\\]|\\[\s\S]|"(?!""))*+(?:"""(?:""|")?)?')
_ML_LITERAL = re.compile(r"'''(?:[^']|'(?!''))*+(?:'''(?:''|')?)?")
_SCALAR = re.compile(r"""[^\s,\[\]{}#"']++(?: [^\s,\[\]{}#"']++)?""")  # 1979-05-27 07:32:00
_REST_OF_LINE = re.compile(r"[^\n]*")
_JUNK = re.compile(r"[^,{}\[\]\n]+")  # what is not TOML, up to the next item or line
#: A string (multi-line first: they open with three quotes), or else a number, a boolean or
#: a date: one match, its alternatives told apart by their first characters.
_ANY_VALUE = re.compile(
    "|".join(p.pattern for p in (_ML_BASIC, _ML_LITERAL, _BASIC, _LITERAL, _SCALAR))
)
#: The usual item of an inline table, `reps = 5,` or `name = "x" }`, in one match (a third
#: of the time of reading it piece by piece).
_SIMPLE_ITEM = re.compile(
    rf"[ \t]*+([A-Za-z0-9_-]++)[ \t]*+=[ \t]*+(?:{_BASIC.pattern}|{_SCALAR.pattern})[ \t]*+,?"
)


@dataclass
class _Frame:
    """An open array (`index` counts its items) or inline table (`index` is None)."""

    path: KeyPath
    index: int | None


@dataclass
class Scan:
    """What the scanner found: the line of each key path, and the line where the text first
    nests deeper than MAX_NESTING (None when it does not); the scan stops there."""

    lines: dict[KeyPath, int] = field(default_factory=dict)
    too_deep: int | None = None


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.table: KeyPath = ()
        self.counters: dict[tuple[str | int, ...], int] = {}
        self.stack: list[_Frame] = []
        self.found = Scan()

    def run(self) -> Scan:
        end = len(self.text)
        while self.pos < end and self.found.too_deep is None:
            before = self.pos
            if not self.stack:
                self._statement()
            elif self.stack[-1].index is None:
                self._inline_item()
            else:
                self._array_item()
            if self.pos == before and self.pos < end:  # not TOML here: move on (no endless
                self._skip_char()  # loop on a character no branch takes; tomllib says why)
        return self.found

    # -- moving along the text

    def _eat(self, pattern: re.Pattern[str]) -> str:
        found = pattern.match(self.text, self.pos)
        if not found or not found.group():
            return ""
        self.line += found.group().count("\n")
        self.pos = found.end()
        return found.group()

    def _at(self, prefix: str) -> bool:
        return self.text.startswith(prefix, self.pos)

    def _skip_char(self) -> None:
        self.line += self.text[self.pos] == "\n"
        self.pos += 1

    def _note(self, path: KeyPath, line: int) -> bool:
        """Note where `path` is defined; False (and the scan stops) when it is too deep."""
        if len(path) > MAX_NESTING:
            self.found.too_deep = line
            return False
        self.found.lines.setdefault(path, line)
        return True

    # -- the three places the scanner can be

    def _statement(self) -> None:
        """At the top level: a table header, a key = value line, or something skipped."""
        self._eat(_BLANK)
        if self.pos >= len(self.text):
            return
        line = self.line
        if self._at("["):
            self._header(line)
            return
        keys = self._key()
        self._eat(_SPACE)
        if not keys or not self._at("="):
            self._eat(_REST_OF_LINE)  # not TOML; tomllib says why
            return
        self.pos += 1
        path = (*self.table, *keys)
        if self._note(path, line):
            self._value(path)

    def _header(self, line: int) -> None:
        is_array = self._at("[[")
        self.pos += 2 if is_array else 1
        self._eat(_SPACE)
        keys = self._key()
        self._eat(_REST_OF_LINE)  # the closing brackets and any comment
        if self.found.too_deep is not None:
            return
        self.table = self._table_path(keys, is_array)
        self._note(self.table, line)

    def _inline_item(self) -> None:
        frame = self.stack[-1]
        simple = _SIMPLE_ITEM.match(self.text, self.pos)
        if simple and "\n" not in simple.group():
            self.pos = simple.end()
            self._note((*frame.path, simple.group(1)), self.line)
            return
        self._eat(_BLANK)
        if self._at("}"):
            self.pos += 1
            self.stack.pop()
            return
        if self._at(","):
            self.pos += 1
            return
        line = self.line
        keys = self._key()
        self._eat(_SPACE)
        if not keys or not self._at("="):
            if not self._eat(_JUNK) and self.pos < len(self.text):
                self._skip_char()  # not TOML: move on
            return
        self.pos += 1
        path = (*frame.path, *keys)
        if self._note(path, line):
            self._value(path)

    def _array_item(self) -> None:
        frame = self.stack[-1]
        self._eat(_BLANK)
        if self._at("]"):
            self.pos += 1
            self.stack.pop()
            return
        if self._at(","):
            self.pos += 1
            return
        if self.pos >= len(self.text):
            return
        assert frame.index is not None
        path = (*frame.path, frame.index)
        frame.index += 1
        if self._note(path, self.line):
            self._value(path)

    # -- keys and values

    def _key(self) -> tuple[str, ...]:
        """A key, dotted or not, bare or quoted; () when there is none here."""
        keys: list[str] = []
        while True:
            part = self._eat(_BARE_KEY) or self._eat(_BASIC) or self._eat(_LITERAL)
            if not part:
                return tuple(keys)
            keys.append(part.strip("\"'") if part[0] in "\"'" else part)
            if len(keys) > MAX_NESTING:
                self.found.too_deep = self.line
                return tuple(keys)
            self._eat(_SPACE)
            if not self._at("."):
                return tuple(keys)
            self.pos += 1
            self._eat(_SPACE)

    def _value(self, path: KeyPath) -> None:
        """Consume one value; an array or inline table opens a frame that the loop reads on."""
        self._eat(_SPACE)
        if self._at("{") or self._at("["):
            self.stack.append(_Frame(path, None if self._at("{") else 0))
            self.pos += 1
            return
        if self._eat(_ANY_VALUE):
            return
        # Nothing readable (a stray character): move on unless it closes something.
        if self.pos < len(self.text) and self.text[self.pos] not in ",]}\n":
            self._skip_char()

    def _table_path(self, keys: tuple[str, ...], is_array: bool) -> KeyPath:
        """A header's path, with the index of each array of tables it passes through:
        [[exercises]] then [exercises.dose] is ("exercises", 1, "dose")."""
        path: list[str | int] = []
        for end in range(1, len(keys) + 1):
            path.append(keys[end - 1])
            prefix = keys[:end]
            if end == len(keys) and is_array:
                self.counters[prefix] = self.counters.get(prefix, -1) + 1
            if prefix in self.counters:
                path.append(self.counters[prefix])
        return tuple(path)


def scan(text: str) -> Scan:
    """The line of each key path in `text`, and where it first nests too deep (see Scan)."""
    return _Scanner(text).run()


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map each key path of a TOML document to the line (1-based) that defines it.

    Arrays of tables get their index in the path: ("exercises", 1, "dose", "reps"); so do
    the items of an array: ("requires", 0, "name"). A key of an inline table is mapped to
    the line it is written on.
    """
    return scan(text).lines
