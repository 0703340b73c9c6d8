"""Fuzzing the input edges: programs, logs (JSONL, CSV) and the store's import.

Each test draws realistic inputs mutated by one family of mutations (tests/fuzzing/cases.py)
and judges what progressor made of them with tests/fuzzing/oracle.py: only progressor's own
errors, and no pain >= 7 in a line's text unseen. `make fuzz` (bench/fuzz.py) runs the same
oracle over 100,000 inputs of each road and times them too (no timing is asserted here).

A family that the code fails is to be marked xfail(strict=True) with the defect it shows
(`families`' third item); when a fix lands, the mark's test starts passing, fails the suite,
and the mark goes. The 27 marks of the defects found first (repeated keys and columns,
date-times, `;` CSVs, out-of-range pains, huge numbers, nesting, cp1252 programs, spellings,
lone surrogates, BOMs) are gone with their fixes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzzing import cases, run
from tests.fuzzing.oracle import json_pairs, losses_of_log, seen_csv, seen_jsonl

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # (shrinking a known defect's example costs minutes)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RNG = st.randoms(use_true_random=False)

PUNCTUATION = ("flip", "insert", "delete", "repeat", "truncate", "control", "crlf")


def defect(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=reason)


def families(table: Sequence[tuple[str, Sequence[str], dict[str, str]]]) -> list[object]:
    """(id, mutations, {format: the defect it shows}) as pytest params for JSONL and CSV."""
    return [
        pytest.param(
            ops, fmt, id=f"{name}-{fmt}", marks=[defect(d)] if (d := known.get(fmt)) else []
        )
        for name, ops, known in table
        for fmt in ("jsonl", "csv")
    ]


def verdict_ok(verdict: run.Verdict, what: str) -> None:
    assert verdict.error is None, f"{what}: {verdict.error}"
    assert not verdict.losses, f"{what}: {verdict.losses}"


# -- the oracle itself --------------------------------------------------------------------------


def test_the_detector_sees_plain_pains_and_claims_nothing_unclear() -> None:
    line = '{"date": "2026-01-05", "pain_during": 9, "note": "\\"pain\\": 9", "x": {"pain": 8}}'
    assert json_pairs(line) == [
        ("date", "2026-01-05", True),
        ("pain_during", "9", False),
        ("note", '\\"pain\\": 9', True),
    ]
    seen = seen_jsonl(line + '\n{"date": "2026-01-05", "pain": "7/10"}\n{"pain": 8 9}\n')
    assert [(s.high, s.plain) for s in seen] == [(True, True), (True, True), (False, False)]
    assert [s.high for s in seen_jsonl('{"pain": -3}\n{"pain": 1e9}\n{"pain": 6.5}\n')] == [
        True,
        True,
        False,
    ]
    csv = "date;Pain Before\n2026-01-05T08:00;8\n2026-01-05;8;1\n"
    assert [(s.line, s.plain) for s in seen_csv(csv)] == [(2, True)]
    assert seen_csv('date,pain\n"2026-01-05,x",1\n2026-01-05,9\n') == []  # quoting: unclear


def test_a_loss_is_a_high_line_neither_kept_nor_excused() -> None:
    seen = seen_jsonl('{"date": "2026-01-05", "pain": 9}\n{"pain": 9}\n')
    assert losses_of_log(seen, [9.0], []) == []
    assert len(losses_of_log(seen, [2.0], [1, 2])) == 1  # set aside is no excuse with a date
    assert len(losses_of_log(seen, [2.0], [1])) == 2  # without one, its line must be listed


# -- programs -----------------------------------------------------------------------------------

PROGRAM_FAMILIES = [
    pytest.param(("flip", "insert", "delete", "repeat", "truncate", "control"), id="punctuation"),
    pytest.param(("value", "dupkey"), id="values"),
    pytest.param(("nest",), id="nesting"),
    pytest.param(("number",), id="numbers"),
    pytest.param(("encoding",), id="encodings"),
]


@pytest.mark.parametrize("family", PROGRAM_FAMILIES)
@settings(FUZZ, max_examples=150)
@given(rng=RNG)
def test_the_program_loader_raises_only_its_own_errors(
    family: Sequence[str], rng: random.Random
) -> None:
    case = cases.program_case(rng, cases.pick_ops(rng, family))
    verdict_ok(run.program(case), "program")


# -- the reader ---------------------------------------------------------------------------------

READER_FAMILIES = families(
    [
        ("intact", ("clean",), {}),
        ("punctuation", PUNCTUATION, {}),
        ("repeated-keys", ("dupkey",), {}),
        ("repeated-columns", ("dupcolumn",), {}),
        ("dates", ("date",), {}),
        ("out-of-range", ("range",), {}),
        ("numbers", ("number",), {}),
        ("nesting", ("nest",), {}),
        ("long-lines", ("long",), {}),
        ("semicolons", ("semicolon",), {}),
        ("spellings", ("spelling",), {}),
        ("bom", ("bom",), {}),
        ("encodings", ("encoding",), {}),
    ]
)


@pytest.mark.parametrize(("family", "fmt"), READER_FAMILIES)
@settings(FUZZ, max_examples=120)
@given(rng=RNG)
def test_the_reader_keeps_every_plain_pain(
    family: Sequence[str], fmt: str, rng: random.Random
) -> None:
    case = cases.log_case(rng, fmt, cases.pick_ops(rng, family))
    verdict_ok(run.reader(case), fmt)


# -- the store's import -------------------------------------------------------------------------

IMPORT_FAMILIES = families(
    [
        ("intact", ("clean",), {}),
        ("punctuation", PUNCTUATION, {}),
        ("repeats", ("dupkey", "dupcolumn"), {}),
        ("dates", ("date",), {}),
        ("out-of-range", ("range",), {}),
        ("semicolons", ("semicolon",), {}),
        ("encodings", ("bom", "encoding"), {}),
    ]
)


@pytest.mark.parametrize(("family", "fmt"), IMPORT_FAMILIES)
@settings(FUZZ, max_examples=15)
@given(rng=RNG)
def test_the_import_stores_every_plain_pain(
    family: Sequence[str], fmt: str, rng: random.Random
) -> None:
    case = cases.log_case(rng, fmt, cases.pick_ops(rng, family), rows=20, mutate_all=True)
    verdict_ok(run.import_(case), fmt)


# -- the column engine's reader -----------------------------------------------------------------

COLUMN_FAMILIES = [
    pytest.param(("clean",), id="intact"),
    pytest.param(PUNCTUATION, id="punctuation"),
    pytest.param(("dupkey",), id="repeated-keys"),
    pytest.param(("dupkey", "insert"), id="repeated-keys-and-tokens"),
    pytest.param(("number", "date"), id="numbers-and-dates"),
    pytest.param(("nest", "long"), id="nesting-and-long-lines"),
]


@pytest.mark.parametrize("family", COLUMN_FAMILIES)
@settings(FUZZ, max_examples=100)
@given(rng=RNG)
def test_the_column_reader_takes_only_lines_the_reader_reads_alike(
    family: Sequence[str], rng: random.Random
) -> None:
    pytest.importorskip("polars")
    case = cases.log_case(rng, "jsonl", cases.pick_ops(rng, family), mutate_all=True)
    verdict_ok(run.columns(case), "columns")
