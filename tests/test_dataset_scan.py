"""Splitting a partition's input file by patient (progressor.dataset.files.scan).

scan reads a file in blocks of whole lines and takes the plain ones (ASCII, no carriage
return, each naming its patient plainly) the quick way; any other block is split line by line.
Whatever the file holds and wherever the blocks end, the result must be what reading the
file one line at a time gives: the same lines for each patient, the same byte ranges, the
same orphans and undecoded lines, the same size and CRC-32.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from progressor.dataset import files
from progressor.dataset.files import PatientLines, scan


def one_line_at_a_time(data: bytes) -> PatientLines:
    """The whole file as one block, every line looked at alone (how scan reads any block
    that is not plain; tests/test_dataset.py holds that reading to the reader's)."""
    table = PatientLines({}, {}, [], len(data), zlib.crc32(data), [])
    files._split_each(data, 0, table)
    return table


_IDS = st.sampled_from(["anna", "ben", "p-0001", "zoë", 'q\\"x', ""])
_PLAIN = _IDS.map(lambda p: f'{{"patient":"{p}","kind":"pain","pain":3,"date":"2026-01-06"}}')
_ODD = st.sampled_from(
    [
        '{"kind": "pain", "patient" : "ben", "pain": 2}',
        '{"patient":\t"anna", "note": "the patient: \\"ben\\""}',
        '{"note": "\\"patient\\": \\"ben\\"", "patient": "anna"}',
        '{"patient": "anna", "patient": "ben"}',
        '{"patient": 7}',
        '{"patient"\x0b: "anna"}',
        "not json at all",
        "",
        "   ",
        "\x0c",
        '{"patient": "ben", "note": "caf\xe9"}',
    ]
)
_ENDINGS = st.sampled_from([b"\n", b"\n", b"\n", b"\r\n", b"\r"])


@st.composite
def input_files(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.one_of(_PLAIN, _PLAIN, _ODD), max_size=30))
    out = b""
    for line in lines:
        raw = line.encode("utf-8")
        if draw(st.integers(0, 20)) == 0:
            raw += b"\xff\xfe"  # not UTF-8
        out += raw + draw(_ENDINGS)
    if out and draw(st.booleans()):
        out = out.rstrip(b"\r\n")  # a last line without its line break
    return out


def _scanned(tmp_path: Path, data: bytes, block: int, monkeypatch: pytest.MonkeyPatch) -> object:
    location = tmp_path / "records.jsonl"
    location.write_bytes(data)
    monkeypatch.setattr(files, "BLOCK", block)
    return scan(str(location))


@settings(max_examples=300, deadline=None)
@given(data=input_files(), block=st.sampled_from([1, 7, 64, 1 << 20]))
def test_any_file_in_any_blocks_splits_as_one_line_at_a_time(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, block: int
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        got = _scanned(tmp_path_factory.mktemp("scan"), data, block, monkeypatch)
    assert got == one_line_at_a_time(data)


@settings(max_examples=150, deadline=None)
@given(before=input_files(), after=input_files(), block=st.sampled_from([5, 64, 1 << 20]))
def test_only_what_was_appended_is_split_after_a_known_start(
    tmp_path_factory: pytest.TempPathFactory, before: bytes, after: bytes, block: int
) -> None:
    if before and not before.endswith(b"\n"):
        before += b"\n"  # (a known start ends a line, as a run leaves it)
    location = tmp_path_factory.mktemp("scan") / "records.jsonl"
    location.write_bytes(before + after)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(files, "BLOCK", block)
        got = scan(str(location), (len(before), zlib.crc32(before)))
    assert got is not None
    tail = one_line_at_a_time(after)
    moved = PatientLines(
        tail.lines,
        {p: [n + len(before) for n in spans] for p, spans in tail.ranges.items()},
        [(n + len(before), line) for n, line in tail.orphans],
        len(before) + len(after),
        zlib.crc32(after, zlib.crc32(before)),
        [(n + len(before), wrong) for n, wrong in tail.undecoded],
    )
    assert got == moved


def test_plain_lines_take_the_quick_way_and_odd_ones_are_looked_at_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = b'{"kind":"pain","patient":"anna","pain":1}\n{"patient": "ben","pain":2}\n'
    odd = b'{"patient": "anna", "note": "caf\xc3\xa9"}\n\n{"patient": "c\\"d"}\n'
    quick: list[bool] = []
    split_plain = files._split_plain

    def counted(block: bytes, position: int, table: PatientLines) -> bool:
        quick.append(split_plain(block, position, table))
        return quick[-1]

    monkeypatch.setattr(files, "_split_plain", counted)
    got = _scanned(tmp_path, plain + odd, len(plain), monkeypatch)
    assert quick == [True, False]  # the plain block quickly; the other one line at a time
    assert got == one_line_at_a_time(plain + odd)
    assert isinstance(got, PatientLines)
    assert got.lines == {
        "anna": [
            '{"kind":"pain","patient":"anna","pain":1}',
            '{"patient": "anna", "note": "café"}',
        ],
        "ben": ['{"patient": "ben","pain":2}'],
        'c"d': ['{"patient": "c\\"d"}'],
    }
