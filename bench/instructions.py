"""Instructions, not time: bench/step.py's step and read counted by valgrind.

Run as `.venv/bin/python bench/instructions.py [--seeds 1,2,3] [--calls 200]`. The machines
here are shared and their speed moves by a third within minutes; an instruction count does
not move with the load. For each hash seed (Python's hash seed moves the counts by up to
10 % from one process to the next), valgrind's callgrind counts the instructions of a
process that does the seed week's step (or read_log of its 21 lines) `calls` times, and of
the same process doing it no time; the difference divided by `calls` is one call. Prints
each seed's figures and their mean. Needs valgrind (Debian: apt-get install valgrind); takes
about a minute per figure and seed. Compare two versions in their own checkouts.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def child(what: str, calls: int) -> None:
    """The measured process: set up the seed week, then `calls` steps or reads."""
    sys.path.insert(0, str(HERE))
    import json

    from step import SEED, START, week_of_outcomes

    import progressor
    from progressor.reading import read_log

    compiled = progressor.Engine().compile(progressor.load_program(SEED))
    enrollment = progressor.Enrollment(patient="anna", program=compiled.program.id, start=START)
    prescription = compiled.first_week(enrollment)
    lines = [json.dumps(row) for row in week_of_outcomes(START)]
    records = list(read_log(lines, "bench", "jsonl").records)
    compiled.step(prescription, records)
    for _ in range(calls):
        if what == "step":
            compiled.step(prescription, records)
        else:
            read_log(lines, "bench", "jsonl")


def counted(what: str, calls: int, seed: int) -> int:
    """The instructions valgrind counts in a child process doing `what` `calls` times."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        what,
        "--calls",
        str(calls),
    ]
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise SystemExit(f"valgrind printed no count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--child", choices=("step", "read"))
    args = parser.parse_args()
    if args.child:
        child(args.child, args.calls)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("bench/instructions.py needs valgrind (apt-get install valgrind)")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    print(f"python: {sys.executable}; {args.calls} calls; hash seeds {seeds}")
    for what, label in (("step", "(a) step"), ("read", "(b) read_log of the week")):
        per_call = []
        for seed in seeds:
            base = counted(what, 0, seed)
            per_call.append((counted(what, args.calls, seed) - base) / args.calls)
        figures = ", ".join(f"{n / 1000:,.0f} k" for n in per_call)
        mean = sum(per_call) / len(per_call)
        print(f"{label}: {mean / 1000:,.0f} k instructions a call (seeds: {figures})")


if __name__ == "__main__":
    main()
