"""One input through one road (the program loader, the log reader, the store's import, the
column engine's reader), judged by the oracle: only progressor's own errors, how long it took,
and no pain lost; the column engine's reader is held to the log reader's plain reading."""

from __future__ import annotations

import io
import math
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from progressor.core.models import Enrollment
from progressor.errors import ProgressorError
from progressor.reading import load_log, load_program, parse_program, read_log
from progressor.reading.records import plain_fields
from progressor.store.database import Store
from tests.fuzzing.cases import PATIENT, PROGRAM_TEXTS, START, TODAY, LogCase, ProgramCase
from tests.fuzzing.oracle import losses_of_import, losses_of_log, record_pain, seen_log, stored_pain

#: An input still running after this many seconds is stopped and reported as slow.
STOP_AFTER = 2.0
SEED_TEXT = PROGRAM_TEXTS["low-back-pain.toml"]


@dataclass
class Verdict:
    """What one input did: its time, an exception that is not progressor's own, lost pains."""

    seconds: float = 0.0
    error: str | None = None
    losses: list[str] = field(default_factory=list)
    refused: bool = False  # a ProgressorError: the input was refused with a reason

    @property
    def ok(self) -> bool:
        return self.error is None and not self.losses


class _Stopped(Exception):
    pass


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


@contextmanager
def _limit(seconds: float) -> Iterator[None]:
    """Stop the input after `seconds` (a catastrophic regex must not stall the whole run);
    only where a timer can be set: the main thread of a Unix process."""
    try:
        previous = signal.signal(signal.SIGALRM, _stop)
    except ValueError:  # (not the main thread)
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def timed(call: Callable[[], Any], verdict: Verdict, stop_after: float = STOP_AFTER) -> Any:
    """call(), its time in `verdict`; an exception other than ProgressorError is recorded."""
    started = time.perf_counter()
    try:
        with _limit(stop_after):
            return call()
    except ProgressorError:
        verdict.refused = True
    except _Stopped:
        verdict.error = f"stopped after {stop_after:g} s"
    except Exception as exc:  # the finding itself: anything else the input made it raise
        verdict.error = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        verdict.seconds = time.perf_counter() - started
    return None


def program(case: ProgramCase) -> Verdict:
    verdict = Verdict()
    if case.encoding is None:
        timed(lambda: parse_program(case.text, "fuzz.toml"), verdict)
        return verdict
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.toml"
        path.write_bytes(case.data())
        timed(lambda: load_program(path), verdict)
    return verdict


def _lines(text: str) -> io.StringIO:
    return io.StringIO(text, newline="")  # the lines a file opened with newline="" yields


def reader(case: LogCase) -> Verdict:
    verdict = Verdict()
    if case.encoding is None:
        text: str | None = case.text
        log = timed(lambda: read_log(_lines(case.text), "fuzz", case.fmt), verdict)
    else:
        text = case.file_text()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"fuzz.{case.fmt}"
            path.write_bytes(case.data())
            log = timed(lambda: load_log(path), verdict)
    if log is None or text is None:
        return verdict  # refused, raised, or bytes no UTF-8 reader can judge
    pains = [record_pain(vars(record)) for record in log.records]
    verdict.losses = losses_of_log(seen_log(text, case.fmt), pains, [a.line for a in log.set_aside])
    return verdict


def new_store(folder: Path) -> Store:
    """A store holding the seed program with PATIENT enrolled."""
    store = Store.init(folder / "fuzz.db")
    seed = parse_program(SEED_TEXT)
    store.add_program(seed, SEED_TEXT)
    store.enroll(Enrollment(patient=PATIENT, program=seed.id, start=START), seed)
    return store


def import_(case: LogCase) -> Verdict:
    """The case imported into a fresh store; then what the store holds of PATIENT, by line."""
    verdict = Verdict()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with new_store(folder) as store:
            if case.encoding is None:
                text: str | None = case.text
                lines = _lines(case.text)
                call = lambda: store.import_records(lines, "fuzz", case.fmt, today=TODAY)  # noqa: E731
            else:
                text = case.file_text()
                path = folder / f"fuzz.{case.fmt}"
                path.write_bytes(case.data())
                call = lambda: store.import_records(path, today=TODAY)  # noqa: E731
            report = timed(call, verdict)
            if report is None or text is None:
                return verdict
            stored: dict[int, float] = {}
            # (no public reading of a stored record's line: the oracle needs it per line)
            query = (
                "SELECT line, record FROM outcomes WHERE patient = :p"
                " UNION ALL SELECT line, record FROM pain_reports WHERE patient = :p"
            )
            for line, record in store._db.execute(query, {"p": PATIENT}):
                stored[line] = max(stored.get(line, -1.0), stored_pain(record))
            quarantined = [a.line for a in report.quarantined if a.line is not None]
            verdict.losses = losses_of_import(
                seen_log(text, case.fmt), PATIENT, stored, quarantined
            )
    return verdict


def same_field(value: Any, column: Any) -> bool:
    """Whether the log reader's value of a field and the column reader's are the same (the
    column holds None where the line gave no key: the reader's value is then the default)."""
    if column is None:
        return value in (None, (), False, "", "other")  # (the field's default: no key given)
    if isinstance(value, tuple):
        return bool(list(value) == column)
    if isinstance(value, float):
        return math.copysign(1, value) == math.copysign(1, column) and bool(value == column)
    return bool(str(value) == str(column) if hasattr(value, "isoformat") else value == column)


_COLUMN_READER: list[Any] = []  # (built on first use: polars is an optional extra)


def columns(case: LogCase) -> Verdict:
    """The case's JSON lines through the column engine's reader (progressor.columns.reading),
    as a partition's lines reach it: each line it takes must be one the log reader reads as
    plain, to the same values (else a line's pain could be read otherwise than the reader
    reads it: a loss)."""
    import polars as pl

    from progressor.columns.reading import PlainColumns

    if not _COLUMN_READER:
        _COLUMN_READER.append(PlainColumns())
    verdict = Verdict()
    # (A partition's lines are decoded from its file's bytes: a lone surrogate cannot reach
    # them, the U+FFFD its bytes are decoded as can.)
    text = case.text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    series = pl.Series(lines, dtype=pl.String)
    read = timed(lambda: _COLUMN_READER[0].read(series), verdict)
    if read is None:
        return verdict
    rows = iter(read[0].drop("line").to_dicts())
    for line, taken in zip(lines, read[1].to_list(), strict=True):
        if not taken:
            continue
        row, plain = next(rows), plain_fields([line])
        if plain is None:
            verdict.losses.append(f"taken in columns, not plain to the reader: {line[:200]}")
            continue
        for name, value in plain[0][0].items():
            if not same_field(value, row.get(name)):
                verdict.losses.append(
                    f"{name}: the reader reads {value!r}, the columns {row.get(name)!r}"
                )
    return verdict
