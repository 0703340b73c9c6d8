"""A partition's index (`_index/part-00000.idx`): what the next run needs to read only what is
new (progressor.dataset.partition writes it in `_Run._write_index` and reads its keys).

The index is loaded and saved on every run, including the re-run after 1 % new data, where it
was nearly a quarter of the partition's time as JSON (5,000 patients: 0.7 MB, 11 ms of CPU to
load and save on a busy machine). It is kept as a marshal of plain lists, strings and numbers
instead (4.5 ms there; docs/performance.md, session 10), behind a CRC-32 of those bytes: a
torn or damaged file is refused before it is decoded, and a refused index only means the
partition is computed afresh. (marshal decodes no code and runs none; whoever could forge a
valid file could as well write the output tables themselves.)
"""

from __future__ import annotations

import marshal
import zlib
from typing import Any

from progressor.dataset import files

#: The index's layout; an index of another format is ignored (the partition is recomputed).
FORMAT = 7

#: marshal's format may change between Python versions (its docs say so): an index written
#: by another one is ignored, as an index of another FORMAT is.
_MAGIC = f"progressor-index {marshal.version}\n".encode()


def index_location(out: str, part: int) -> str:
    return files.join(out, "_index", f"{files.part_name(part)}.idx")


def read_index(at: str) -> dict[str, Any] | None:
    """Last run's index; None when there is none, or it is damaged or of another format."""
    if not files.exists(at):
        return None
    with files.open_binary(at, "rb") as handle:
        data = handle.read()
    head, payload = data[: len(_MAGIC) + 4], data[len(_MAGIC) + 4 :]
    if head[: len(_MAGIC)] != _MAGIC or head[len(_MAGIC) :] != _crc(payload):
        return None
    try:
        index = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):  # (never expected behind a good CRC)
        return None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        return None
    return index


def write_index(at: str, index: dict[str, Any]) -> None:
    """`index` (plain lists, dicts, strings and numbers), over the old bytes (files.overwrite:
    trusted only while the partition's `_done` marker exists)."""
    payload = marshal.dumps({**index, "format": FORMAT})
    files.overwrite(at, _MAGIC + _crc(payload) + payload)
    # (The index as JSON, before this format: an upgrade computes each partition afresh
    # once, and the old file would stay behind unused.)
    files.remove(at.removesuffix(".idx") + ".json")


def _crc(payload: bytes) -> bytes:
    return zlib.crc32(payload).to_bytes(4, "little")
