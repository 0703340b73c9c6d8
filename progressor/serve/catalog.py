"""The programs a request can name: those of --programs DIR, compiled once at start; and
programs sent inline as TOML, compiled per request (the latest few kept)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

from packaging.version import InvalidVersion, Version

from progressor.core.engine import CompiledProgram, Engine
from progressor.errors import Problem, ProgramError, ProgressorError, did_you_mean
from progressor.reading import load_program, parse_program

INLINE_SOURCE = "program.toml"
_KEPT_INLINE = 32


def _order(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


class Catalog:
    """Compiled programs by id and version."""

    def __init__(self, engine: Engine, directory: Path, shipped: bool = False) -> None:
        self.engine = engine
        self.directory = directory
        self.shipped = shipped
        #: The shipped programs left out, each with why: they need a plugin package that is
        #: not installed (a directory of the clinic's own refuses the start instead).
        self.unavailable: dict[str, Problem] = {}
        self._programs: dict[str, dict[str, CompiledProgram]] = {}
        self._texts: dict[tuple[str, str], str] = {}  # (what the store keeps of a program)
        self._inline: OrderedDict[str, CompiledProgram] = OrderedDict()
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        """Every *.toml of the directory; a bad one refuses the start, as `check` prints it."""
        paths = sorted(self.directory.glob("*.toml"))
        if not paths:
            raise ProgressorError(f"{self.directory}: no programs (*.toml) here")
        for path in paths:
            loaded = load_program(path, self.engine.registries)
            try:
                compiled = self.engine.compile(loaded)
            except ProgramError as exc:
                needs = [p for p in exc.problems if p.path[:1] == ("requires",)]
                if not (self.shipped and needs):
                    raise
                self.unavailable[loaded.id] = needs[0]
                continue
            program = compiled.program
            versions = self._programs.setdefault(program.id, {})
            if program.version in versions:
                raise ProgressorError(
                    f"{path}: program {program.id!r} version {program.version} is defined twice"
                )
            versions[program.version] = compiled
            self._texts[program.id, program.version] = path.read_text(encoding="utf-8")

    def __len__(self) -> int:
        return sum(map(len, self._programs.values()))

    def named(self, program_id: str, version: str | None) -> CompiledProgram:
        """The program `program_id` at `version` (default: its newest); LookupError saying
        what there is."""
        versions = self._programs.get(program_id)
        if versions is None and program_id in self.unavailable:
            need = self.unavailable[program_id]
            raise LookupError(
                f"program {program_id!r} is not available on this server: {need.message}"
                + (f" ({need.suggestion})" if need.suggestion else "")
            )
        if versions is None:
            hint = did_you_mean(program_id, self._programs)
            known = ", ".join(sorted(self._programs))
            raise LookupError(
                f"no program {program_id!r}" + (f" ({hint})" if hint else "") + f"; known: {known}"
            )
        if version is None:
            return versions[max(versions, key=_order)]
        if version not in versions:
            raise LookupError(
                f"program {program_id!r} has no version {version!r}; "
                f"versions: {', '.join(sorted(versions, key=_order))}"
            )
        return versions[version]

    def text(self, program: CompiledProgram) -> str:
        """The TOML text of one of the directory's programs, as read at the start."""
        return self._texts[program.program.id, program.program.version]

    def inline(self, text: str) -> CompiledProgram:
        """A program from TOML text; ProgramError with every located problem."""
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        with self._lock:
            compiled = self._inline.get(key)
            if compiled is not None:
                self._inline.move_to_end(key)
                return compiled
        try:
            program = parse_program(text, INLINE_SOURCE, self.engine.registries)
            compiled = self.engine.compile(program)
        except ProgramError:
            raise
        except ProgressorError as exc:  # (compile's own checks: one problem, no line)
            raise ProgramError([Problem(str(exc), INLINE_SOURCE)]) from None
        with self._lock:
            self._inline[key] = compiled
            while len(self._inline) > _KEPT_INLINE:
                self._inline.popitem(last=False)
        return compiled
