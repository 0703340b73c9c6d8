"""`make fuzz`: many mutated inputs through progressor's input edges, judged by one oracle.

Run as `.venv/bin/python -m bench.fuzz [--inputs 100000] [--seed 0] [--workers 2]` from the
repository's root. Four roads: the program loader (parse_program, load_program), the log
reader (read_log, load_log; JSONL and CSV), the store's import (import_records of files of
IMPORT_ROWS lines each, for an enrolled patient) and the column engine's reader
(progressor.columns.reading, JSONL: each line it takes must be one the log reader reads as
plain, to the same values; a line read otherwise counts as a pain lost). Inputs are
realistic programs and logs mutated as tests/fuzzing/cases.py does; the oracle is
tests/fuzzing/oracle.py's (the suite's tests/test_fuzz.py uses the same): only progressor's
own errors, each input under a second, and no pain >= 7 in a line's text unseen. For each
road it prints the inputs tried, the uncaught exceptions, the slowest input and the pains
lost, saves the first few findings of each kind to --out for `--replay`, and exits 1 if
anything was found.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fuzzing import cases, run

ROADS = ("program", "reader", "import", "columns")
IMPORT_ROWS = 50  # lines per imported file: the import is judged line by line
CHUNK = 250  # inputs per task (small: a few slow inputs must not leave a core idle)
EXAMPLES = 5  # findings of each kind kept per road
SLOW = 1.0  # seconds: an input slower than this (twice) is a finding


@dataclass
class Tally:
    """What one road made of its inputs."""

    road: str
    tried: int = 0
    refused: int = 0
    errors: int = 0
    losses: int = 0
    slow: int = 0
    slowest: float = 0.0
    slowest_case: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in ("tried", "refused", "errors", "losses", "slow"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.slowest > self.slowest:
            self.slowest, self.slowest_case = other.slowest, other.slowest_case
        for example in other.examples:
            if sum(e["kind"] == example["kind"] for e in self.examples) < EXAMPLES:
                self.examples.append(example)

    @property
    def found(self) -> int:
        return self.errors + self.losses + self.slow


def case_of(road: str, rng: random.Random) -> dict[str, Any]:
    """One input of `road`, as a replayable dict (road, fmt, text, encoding)."""
    if road == "program":
        program = cases.program_case(rng, cases.pick_ops(rng, cases.PROGRAM_ALL_OPS))
        return {"road": road, "fmt": "toml", "text": program.text, "encoding": program.encoding}
    if road == "columns":  # (JSON lines as a partition holds them: text, no file encoding)
        ops = cases.pick_ops(rng, cases.TEXT_OPS)
        log = cases.log_case(rng, "jsonl", ops, mutate_all=True)
        return {"road": road, "fmt": "jsonl", "text": log.text, "encoding": None, "ops": ops}
    fmt = rng.choice(("jsonl", "csv"))
    ops = cases.pick_ops(rng, cases.ALL_OPS)
    rows = IMPORT_ROWS if road == "import" else 0
    log = cases.log_case(rng, fmt, ops, rows=rows, mutate_all=road == "import")
    return {"road": road, "fmt": fmt, "text": log.text, "encoding": log.encoding, "ops": ops}


def judge(case: dict[str, Any]) -> run.Verdict:
    if case["road"] == "program":
        return run.program(cases.ProgramCase(case["text"], case["encoding"]))
    log = cases.LogCase(case["fmt"], case["text"], case["encoding"])
    roads = {"reader": run.reader, "import": run.import_, "columns": run.columns}
    return roads[case["road"]](log)


def chunk(task: tuple[str, int, int, int]) -> Tally:
    """`count` inputs of `road`, drawn from (seed, index): the same inputs on every run."""
    road, seed, index, count = task
    rng = random.Random(f"{seed}:{road}:{index}")
    tally = Tally(road)
    per_case = IMPORT_ROWS if road == "import" else 1
    for _ in range(0, count, per_case):
        case = case_of(road, rng)
        verdict = judge(case)
        if verdict.seconds > SLOW and verdict.error is None:
            verdict = judge(case)  # (a busy machine: a finding only if slow twice)
        tally.tried += per_case
        tally.refused += verdict.refused
        if verdict.seconds > tally.slowest:
            tally.slowest, tally.slowest_case = verdict.seconds, _brief(case)
        kinds = [("error", verdict.error)] if verdict.error else []
        kinds += [("loss", loss) for loss in verdict.losses]
        if verdict.seconds > SLOW and verdict.error is None:
            kinds.append(("slow", f"{verdict.seconds:.2f} s"))
        tally.errors += verdict.error is not None
        tally.losses += len(verdict.losses)
        tally.slow += any(kind == "slow" for kind, _ in kinds)
        for kind, finding in kinds:
            if sum(e["kind"] == kind for e in tally.examples) < EXAMPLES:
                tally.examples.append({**case, "kind": kind, "finding": finding})
    return tally


def _brief(case: dict[str, Any]) -> dict[str, Any]:
    text = str(case["text"])
    return {
        **case,
        "text": text[:200] + (f"... ({len(text)} characters)" if len(text) > 200 else ""),
    }


def tasks(roads: Sequence[str], inputs: int, seed: int) -> list[tuple[str, int, int, int]]:
    return [
        (road, seed, index, min(CHUNK, inputs - start))
        for road in roads
        for index, start in enumerate(range(0, inputs, CHUNK))
    ]


def report(tally: Tally, out: Path) -> None:
    print(f"{tally.road}: {tally.tried} inputs, {tally.refused} refused with progressor's errors")
    print(f"  uncaught exceptions: {tally.errors}")
    print(f"  pains lost: {tally.losses}")
    print(f"  slower than {SLOW:g} s: {tally.slow}; slowest {tally.slowest:.3f} s", end="")
    print(f" ({tally.slowest_case.get('fmt')}: {tally.slowest_case.get('text', '')[:80]!r})")
    for number, example in enumerate(tally.examples, start=1):
        path = out / f"{tally.road}-{example['kind']}-{number}.json"
        path.write_text(json.dumps(example, ensure_ascii=True), encoding="ascii")
        text = example["text"]
        shown = repr(text[:160]) + (f"... ({len(text)} characters)" if len(text) > 160 else "")
        print(f"  {example['kind']}: {example['finding']}\n    {shown}\n    saved as {path}")


def replay(paths: Sequence[str]) -> int:
    """Judge saved findings again (after a fix: each should now pass)."""
    failed = 0
    for name in paths:
        case = json.loads(Path(name).read_text(encoding="ascii"))
        verdict = judge(case)
        failed += not verdict.ok
        state = "ok" if verdict.ok else f"{verdict.error or ''} {verdict.losses}".strip()
        print(f"{name}: {state} ({verdict.seconds:.3f} s)")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs per road")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--roads", default=",".join(ROADS), help="e.g. reader,import")
    parser.add_argument("--out", type=Path, default=Path("out/fuzz"), help="findings' folder")
    parser.add_argument("--replay", nargs="+", metavar="FINDING", help="judge saved findings")
    args = parser.parse_args(argv)
    if args.replay:
        return replay(args.replay)
    roads = [road.strip() for road in args.roads.split(",") if road.strip()]
    tallies = {road: Tally(road) for road in roads}
    started = time.perf_counter()
    with multiprocessing.Pool(args.workers) as pool:
        for tally in pool.imap_unordered(chunk, tasks(roads, args.inputs, args.seed)):
            tallies[tally.road].add(tally)
    args.out.mkdir(parents=True, exist_ok=True)
    for tally in tallies.values():
        report(tally, args.out)
    found = sum(t.found for t in tallies.values())
    print(f"{time.perf_counter() - started:.0f} s, seed {args.seed}: {found} findings")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
