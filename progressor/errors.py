"""Every error progressor raises derives from ProgressorError.

Errors about input carry where the problem is (file, line, key path or record number) and,
when one helps, a suggestion such as the nearest known name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

KeyPath = tuple[str | int, ...]


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest known name to `word`, phrased as a suggestion, or None."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def format_path(path: KeyPath) -> str:
    """Render a key path the way it reads in TOML: exercises[1].progression.step."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class Problem:
    """One located problem in an input file."""

    message: str
    file: str | None = None
    line: int | None = None
    path: KeyPath = ()
    suggestion: str | None = None

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line) if p is not None)
        key = format_path(self.path)
        text = self.message
        if key:
            text = f"{key}: {text}"
        if where:
            text = f"{where}: {text}"
        if self.suggestion:
            text = f"{text} ({self.suggestion})"
        return text


class ProgressorError(Exception):
    """Base class of every error progressor raises on purpose."""


@dataclass
class ProgramError(ProgressorError):
    """A program file is not valid; `problems` lists every located problem found."""

    problems: Sequence[Problem] = field(default_factory=tuple)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class PluginError(ProgressorError):
    """A plugin misbehaved: it raised, registered a clashing name, or broke a contract."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"plugin {plugin!r}: {message}")
        self.plugin = plugin


class LogError(ProgressorError):
    """A log file cannot be read at all (as opposed to single bad records, set aside)."""


class StoreError(ProgressorError):
    """The store cannot do what was asked: missing, too new, or an inconsistent request."""


class UnknownPatient(StoreError):
    """No such patient is enrolled (an HTTP 404); `suggestion` names a close one."""

    def __init__(self, patient: str, suggestion: str | None = None) -> None:
        super().__init__(f"patient {patient!r} is not enrolled")
        self.patient = patient
        self.suggestion = suggestion


class StoreConflict(StoreError):
    """The request does not fit the patient's state (an HTTP 409): enrolled otherwise already,
    nothing paused to resume or flagged to acknowledge, no prescription for that week yet, or
    records waiting for recompute."""


class ScenarioError(ProgressorError):
    """A scenario file (or a file it names) is not valid; every problem is located."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = tuple(problems)
