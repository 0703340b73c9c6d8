"""The files of a partitioned dataset, on a local disk or at any URL fsspec reaches.

Opening, listing, reading and writing whole or by byte range, and scanning an input file
into each patient's lines with their byte ranges (progressor.dataset.partition keeps those ranges
to read only what is new on the next run).
"""

from __future__ import annotations

import io
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, NamedTuple

from progressor.errors import ProgressorError


def part_name(part: int) -> str:
    return f"part-{part:05d}"


def is_url(location: str) -> bool:
    return "://" in location


@contextmanager
def open_text(location: str, mode: str) -> Iterator[IO[str]]:
    if is_url(location):
        import fsspec  # optional: only for URLs (s3://, gs://, ...)

        with fsspec.open(location, mode, encoding="utf-8") as handle:
            yield handle
    else:
        if "w" in mode:
            Path(location).parent.mkdir(parents=True, exist_ok=True)
        with open(location, mode, encoding="utf-8", newline="") as handle:
            yield handle


@contextmanager
def open_binary(location: str, mode: str) -> Iterator[IO[bytes]]:
    if is_url(location):
        import fsspec

        with fsspec.open(location, mode) as handle:
            yield handle
    else:
        if "w" in mode:
            Path(location).parent.mkdir(parents=True, exist_ok=True)
        with open(location, mode) as handle:
            yield handle


def exists(location: str) -> bool:
    if is_url(location):
        import fsspec

        fs, path = fsspec.core.url_to_fs(location)
        return bool(fs.exists(path))
    return Path(location).exists()


def listing(location: str, suffix: str) -> list[str]:
    if is_url(location):
        import fsspec

        fs, path = fsspec.core.url_to_fs(location)
        protocol = location.split("://", 1)[0]
        return sorted(f"{protocol}://{p}" for p in fs.glob(f"{path}/*{suffix}"))
    folder = Path(location)
    return sorted(str(p) for p in folder.glob(f"*{suffix}")) if folder.is_dir() else []


def join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/"), *parts])


_PATIENT = re.compile(r'"patient"\s*:\s*"([^"\\]*)"')


def patient_of(line: str) -> str | None:
    """The patient a JSON line belongs to, found without parsing the whole line. A key
    spelled another way ("Patient", "patient ") names the patient too, as the reader reads
    keys (case, spaces and -/_ do not matter): a record of theirs is theirs, its pain read."""
    found = _PATIENT.search(line)
    if found:
        return found.group(1)
    try:  # an escaped id, a key spelled otherwise, or no patient at all: the JSON parser's
        fields = json.loads(line)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    # (The reader's spelling of a key, and its reading of an id written as a number.)
    from progressor.reading.records import column_name, id_written

    value = id_written(fields.get("patient"))
    if value is not None:
        return value
    spelled = [id_written(v) for k, v in fields.items() if column_name(k) == "patient"]
    return next((v for v in spelled if v is not None), None)


def text_lines(location: str) -> list[str]:
    if not exists(location):
        return []
    with open_text(location, "r") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]


BLOCK = 1 << 20  # bytes read at a time when lines do not matter


class PatientLines(NamedTuple):
    """One input file of a partition, split up by patient."""

    lines: dict[str, list[str]]  # each patient's lines, in file order
    ranges: dict[str, list[int]]  # each patient's byte ranges: start, end, start, end, ...
    orphans: list[tuple[int, str]]  # lines that name no patient, with their byte offset
    size: int  # bytes read, from the start of the file
    crc: int  # their CRC-32
    #: Lines that are not UTF-8 text, with their byte offset and what is wrong (`decoded`).
    undecoded: list[tuple[int, str]]


def scan(location: str, known: tuple[int, int] | None = None) -> PatientLines | None:
    """An input file's lines by patient, read a block at a time (memory stays flat).

    With `known` (the size and CRC-32 of the file as an earlier run read it), the file must
    still start with exactly those bytes, ending a line, and only what follows is split into
    lines; None when it does not (the file was changed, not only appended to).
    """
    table = PatientLines({}, {}, [], 0, 0, [])
    if not exists(location):
        return table if known is None or known[0] == 0 else None
    with open_binary(location, "rb") as handle:
        position = crc = 0
        if known is not None:
            size = known[0]
            prefix = _prefix_crc(handle, size)
            if prefix is None or prefix[0] != known[1] or (size and prefix[1] != b"\n"):
                return None  # changed, or its last line was incomplete and may mean more now
            crc, position = prefix[0], size
            handle.seek(size)
        for block in _line_blocks(handle):
            crc = zlib.crc32(block, crc)
            if not _split_plain(block, position, table):
                _split_each(block, position, table)
            position += len(block)
    return table._replace(size=position, crc=crc)


def _line_blocks(handle: IO[bytes]) -> Iterator[bytes]:
    """The rest of the file in blocks of about BLOCK bytes, each of whole lines (each ends
    with \n, but the file's last when it has none)."""
    pending: list[bytes] = []  # the start of a line the blocks read so far have not ended
    while data := handle.read(BLOCK):
        cut = data.rfind(b"\n") + 1  # (in the new bytes only: a long line costs no more)
        if not cut:
            pending.append(data)
            continue
        yield b"".join([*pending, data[:cut]]) if pending else data[:cut]
        pending = [data[cut:]] if cut < len(data) else []
    if pending:
        yield b"".join(pending)


#: The first "patient" key with an unescaped text value in a line, and the rest of the line:
#: the value _PATIENT.search finds in the line alone. A match ends at its line's end, so a
#: block's matches are its lines' in order when there are as many as lines (_split_plain).
_LINE_PATIENT = re.compile(r'"patient"[^\S\n]*:[^\S\n]*"([^"\\\n]*)"[^\n]*')


def _split_plain(block: bytes, position: int, table: PatientLines) -> bool:
    """`block`'s lines added to `table` the quick way, when each is ASCII text that names its
    patient plainly (most blocks); False, with nothing added, otherwise (_split_each)."""
    if b"\r" in block or not block.isascii():
        return False
    text = block.decode("ascii")
    patients = _LINE_PATIENT.findall(text)
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # (the block ends with its last line's \n)
    if len(patients) != len(lines):
        return False  # a blank line, a line without a plain "patient": each looked at alone
    found, ranges = table.lines, table.ranges
    start = position
    for line, patient in zip(lines, patients, strict=True):
        end = start + len(line) + 1
        mine = found.get(patient)
        if mine is None:
            found[patient] = [line]
            ranges[patient] = [start, end]
        else:
            mine.append(line)
            spans = ranges[patient]
            if spans[-1] == start:  # contiguous with the patient's previous line
                spans[-1] = end
            else:
                spans += (start, end)
        start = end
    if not block.endswith(b"\n"):  # (the file's last line, without its \n)
        ranges[patients[-1]][-1] -= 1
    return True


def _split_each(block: bytes, position: int, table: PatientLines) -> None:
    """`block`'s lines added to `table` one by one: any text, any line breaks."""
    lines, ranges, orphans = table.lines, table.ranges, table.orphans
    # Binary files split at \n only; a text file (how records are read elsewhere) also splits
    # at a lone \r: such a rare line is split again, as text would be.
    for raw in block.splitlines(keepends=True):
        start, position = position, position + len(raw)
        line, wrong = decoded(raw)
        line = line.rstrip("\n")
        if wrong:
            table.undecoded.append((start, wrong))
        if not line.strip():
            continue
        patient = patient_of(line)
        if patient is None:
            orphans.append((start, line))
            continue
        lines.setdefault(patient, []).append(line)
        spans = ranges.setdefault(patient, [])
        if spans and spans[-1] == start:  # contiguous with the patient's previous line
            spans[-1] = position
        else:
            spans.extend((start, position))


def _prefix_crc(handle: IO[bytes], size: int) -> tuple[int, bytes] | None:
    """The CRC-32 of the first `size` bytes and the last of them (None if the file is
    shorter), read into one reused buffer."""
    buffer = bytearray(min(size, BLOCK))
    view = memoryview(buffer)
    position = crc = 0
    last = b""
    while position < size:
        n = handle.readinto(view[: min(size - position, BLOCK)])  # type: ignore[attr-defined]
        if not n:
            return None  # shorter than before
        crc, position, last = zlib.crc32(view[:n], crc), position + n, view[n - 1 : n].tobytes()
    return crc, last


def decoded(raw: bytes) -> tuple[str, str]:
    """A line's text, and what is wrong with it ("" when nothing): a line that is not UTF-8
    is read with U+FFFD for each byte that is not (its pain scores still count: the reader
    reads such text as any other), and the first such byte is named for the problem."""
    try:
        return raw.decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        byte = raw[exc.start]
        wrong = f"not UTF-8 text (byte 0x{byte:02x} at column {exc.start + 1})"
        return raw.decode("utf-8", "replace"), wrong


def read_spans(location: str, wanted: dict[str, list[int]]) -> dict[str, list[str]]:
    """Each wanted patient's lines, read from their byte ranges in the file."""
    found: dict[str, list[str]] = {}
    with open_binary(location, "rb") as handle:
        for patient, spans in wanted.items():
            chunks = []
            for i in range(0, len(spans), 2):
                handle.seek(spans[i])
                chunks.append(handle.read(spans[i + 1] - spans[i]))
            raw_lines = b"".join(chunks).splitlines(keepends=True)
            lines = (decoded(raw)[0].rstrip("\n") for raw in raw_lines)
            found[patient] = [line for line in lines if line.strip()]
    return found


def line_numbers(
    location: str, wanted: dict[str, tuple[list[int], list[int]]]
) -> dict[str, list[int]]:
    """Where some of each patient's lines are in the file, as line numbers from 1.

    `wanted` maps a patient to their byte ranges (as `scan` found them) and the positions (from
    1, among the patient's own lines, in file order) wanted. Lines are counted as a text editor
    shows them (a blank line counts; CR LF, LF and a lone CR each end one).
    """
    starts: dict[str, list[int]] = {}  # the byte offset of each wanted line
    with open_binary(location, "rb") as handle:
        for patient, (spans, positions) in wanted.items():
            offsets = []
            for i in range(0, len(spans), 2):
                handle.seek(spans[i])
                position = spans[i]
                for raw in handle.read(spans[i + 1] - spans[i]).splitlines(keepends=True):
                    if raw.strip():
                        offsets.append(position)
                    position += len(raw)
            starts[patient] = [offsets[n - 1] for n in positions]
        numbers = _numbers_at(handle, {offset for offsets in starts.values() for offset in offsets})
    return {patient: [numbers[offset] for offset in offsets] for patient, offsets in starts.items()}


def numbers_at(location: str, offsets: Iterable[int]) -> dict[int, int]:
    """The line number (from 1) of the line starting at each byte offset of the file."""
    with open_binary(location, "rb") as handle:
        return _numbers_at(handle, offsets)


def _numbers_at(handle: IO[bytes], offsets: Iterable[int]) -> dict[int, int]:
    # Line breaks before each offset, counted in one pass in C (bytes.count).
    numbers: dict[int, int] = {}
    handle.seek(0)
    position = breaks = 0
    carriage = False  # the block before ended with \r (a \r\n split between two blocks)
    for target in sorted(set(offsets)):
        while position < target:
            block = handle.read(min(BLOCK, target - position))
            if not block:
                break
            lone = block.count(b"\r") - block.count(b"\r\n")
            breaks += block.count(b"\n") + lone - (carriage and block[:1] == b"\n")
            carriage, position = block[-1:] == b"\r", position + len(block)
        numbers[target] = breaks + 1
    return numbers


def copy_range(source: IO[bytes], target: IO[bytes], start: int, end: int) -> None:
    """Bytes `start` to `end` of `source`, appended to `target`: by the kernel between two
    local files (os.copy_file_range, no bytes through Python), else a block at a time."""
    copied = _kernel_copy(source, target, start, end) if start < end else 0
    _copy_blocks(source, target, start + copied, end)


def _copy_blocks(source: IO[bytes], target: IO[bytes], start: int, end: int) -> None:
    source.seek(start)
    while start < end:
        block = source.read(min(end - start, BLOCK))
        if not block:
            raise ProgressorError("an output table is shorter than its index says")
        target.write(block)
        start += len(block)


def _kernel_copy(source: IO[bytes], target: IO[bytes], start: int, end: int) -> int:
    """As much of copy_range as os.copy_file_range does (0 where it cannot be used)."""
    copy = getattr(os, "copy_file_range", None)  # Linux only
    if copy is None or not (_local(source) and _local(target)):
        return 0
    target.flush()  # the kernel writes at the descriptor's offset: Python's buffer goes first
    copied = 0
    try:
        while start + copied < end:
            n = copy(source.fileno(), target.fileno(), end - start - copied, start + copied)
            if n == 0:  # the source ends early: the block copy says so
                break
            copied += n
    except OSError:  # a filesystem or kernel without it (EXDEV, ENOSYS, EINVAL, ...)
        pass
    # The buffered writer's idea of its position follows the descriptor's after a seek.
    target.seek(0, os.SEEK_END)
    return copied


def _local(handle: IO[bytes]) -> bool:
    """An open local file (not an fsspec handle): it has a descriptor."""
    try:
        handle.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return isinstance(handle, io.BufferedIOBase)


def stats(locations: Sequence[str]) -> list[list[object]]:
    """Size and modification time of each input: unchanged inputs need no reading at all."""
    out: list[list[object]] = []
    for location in locations:
        if is_url(location):
            import fsspec

            fs, path = fsspec.core.url_to_fs(location)
            info = fs.info(path) if fs.exists(path) else {}
            out.append([location, info.get("size"), str(info.get("mtime", info.get("ETag")))])
        else:
            path = Path(location)
            stat = path.stat() if path.exists() else None
            out.append(
                [location, stat.st_size if stat else None, stat.st_mtime_ns if stat else None]
            )
    return out


def overwrite(location: str, data: bytes) -> None:
    """Replace a file's bytes, writing over the old ones in place (local files).

    For files trusted only while the partition's `_done` marker exists (removed before they
    are rewritten): a run killed half-way leaves no trusted half file. A new file and a rename
    over the old one would free and allocate every block again, ten times slower here.
    """
    if is_url(location) or not os.path.exists(location):
        with open_binary(location, "wb") as handle:
            handle.write(data)
        return
    with open(location, "r+b") as handle:
        handle.write(data)
        handle.truncate()


def remove(location: str) -> None:
    if is_url(location):
        import fsspec

        fs, path = fsspec.core.url_to_fs(location)
        if fs.exists(path):
            fs.rm(path)
    else:
        Path(location).unlink(missing_ok=True)


def rename(source: str, target: str) -> None:
    if is_url(source):
        import fsspec

        fs, path = fsspec.core.url_to_fs(source)
        fs.mv(path, fsspec.core.url_to_fs(target)[1])
    else:
        os.replace(source, target)
