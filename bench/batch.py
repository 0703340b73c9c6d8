"""Batch benchmark: the weekly recompute over partitioned datasets of growing size.

Run as `.venv/bin/python bench/batch.py [--sizes 10000,100000,1000000] [--workers N]`.
For each size it generates a synthetic cohort on the seed program (one week of outcomes
per patient), then measures in one run, on this machine:

- end to end: patients per second of `run_local` (read, compute, write), all cores;
- the I/O-only floor: the same input rows read and JSON-decoded, and as many output rows
  written as the real run wrote, as many bytes in all, with no models and no rules;
- their ratio, and the peak resident memory of the worker processes;
- an incremental re-run after 1 % of the patients got new data (appended to every
  partition's records): only the new lines are read and only their patients computed.
- the per-patient and the column engine (`recompute --engine`), each a clean full run over
  the same data: patients per second and per CPU-second, the share of patients each path
  took, and whether the output is byte-identical.

The embedded store (SQLite, the default path) is measured too, for the sizes in
`--store-sizes` (default 10k and 100k: filling a store goes at about 1,700 patients/s):
end to end `recompute` on all cores, and the same incremental re-run after `import` of a
pain report for 1 % of the patients; then each `--engine` (patients, columns) over a copy of
the same fresh store: patients per second and per CPU-second, the share each path took, and
whether the stored rows are the same. Figures go to standard output; nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import progressor
from progressor.dataset import TABLES_OUT, merge_paths, part_name, partitions, run_local
from progressor.demo import shipped_text
from progressor.store.batch import recompute
from progressor.store.database import Store
from progressor.synth import DEFAULT_START, synthesize_dataset, synthesize_into_store

PATIENTS_PER_PARTITION = 5_000
AS_OF = DEFAULT_START + dt.timedelta(days=7)


def _generate_part(location: str, seed: int, part: int, count: int) -> None:
    """One partition's patients (named g<part>-p...) in a sub-dataset of its own."""
    engine = progressor.Engine()
    text = shipped_text("low-back-pain")
    compiled = engine.compile(progressor.parse_program(text))
    synthesize_dataset(location, [(compiled, text)], count, 1, seed, 1, prefix=f"g{part}-")


def generate(location: Path, patients: int, workers: int) -> int:
    """A one-week cohort of `patients` patients, PATIENTS_PER_PARTITION per partition."""
    parts = max(1, patients // PATIENTS_PER_PARTITION)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = []
        for part in range(parts):
            count = patients // parts + (1 if part < patients % parts else 0)
            jobs.append(pool.submit(_generate_part, str(location / f"g{part}"), 11, part, count))
        for job in jobs:
            job.result()
    # Each generated sub-dataset holds one partition: give each its own partition number.
    for folder in ("enrollments", "records", "programs"):
        (location / folder).mkdir(parents=True, exist_ok=True)
    for part in range(parts):
        source = location / f"g{part}"
        for folder in ("enrollments", "records"):
            (source / folder / "part-00000.jsonl").rename(
                location / folder / f"{part_name(part)}.jsonl"
            )
        shutil.copy(source / "programs" / "low-back-pain.toml", location / "programs")
        shutil.rmtree(source)
    return parts


def _written(out: Path, part: int) -> tuple[int, int]:
    """The rows and bytes a real run wrote for one partition, over its output tables."""
    rows = size = 0
    for table in TABLES_OUT:
        data = (out / table / f"{part_name(part)}.jsonl").read_bytes()
        rows, size = rows + data.count(b"\n"), size + len(data)
    return rows, size


def _io_part(dataset: str, out: str, part: int, rows_out: int, bytes_out: int) -> int:
    name = f"{part_name(part)}.jsonl"
    rows = 0
    patients = set()
    with open(f"{dataset}/records/{name}", encoding="utf-8") as handle:
        for line in handle:
            patients.add(json.loads(line)["patient"])
            rows += 1
    with open(f"{dataset}/enrollments/{name}", encoding="utf-8") as handle:
        for line in handle:
            json.loads(line)
    # The rows a real run writes, as many and as long in all (its prescriptions, decisions,
    # alerts and set-aside rows), each JSON-encoded.
    empty = {"patient": "p", "reason": "", "dose": {"reps": 5}}
    width = max(bytes_out // max(rows_out, 1) - len(json.dumps(empty)) - 1, 1)
    row = {**empty, "reason": "x" * width}
    Path(out).mkdir(parents=True, exist_ok=True)
    with open(f"{out}/{name}", "w", encoding="utf-8") as handle:
        for _ in range(rows_out):
            handle.write(json.dumps(row) + "\n")
    return rows


def io_floor(dataset: Path, out: Path, floor_out: Path, workers: int) -> float:
    """Seconds to read and decode every input row and write as many rows and bytes as the
    real run wrote to `out`, with no models and no rules, on the same number of workers."""
    parts = partitions(str(dataset))
    written = [_written(out, part) for part in parts]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(
            pool.map(
                _io_part,
                [str(dataset)] * len(parts),
                [str(floor_out)] * len(parts),
                parts,
                [rows for rows, _ in written],
                [size for _, size in written],
            )
        )
    return time.perf_counter() - started


def decode_us() -> float:
    """Microseconds this machine takes to decode one record line with the standard library:
    machines here differ severalfold in speed from day to day, and this tells runs apart."""
    line = json.dumps(
        {"date": "2026-01-06", "exercise": "pelvic-tilt", "reps": [8], "hold_s": 5.0}
        | {"pain_before": 1.0, "pain_during": 1.0, "pain_after": 1.0, "rpe": 4.0}
        | {"patient": "p0001", "kind": "outcome"},
        separators=(",", ":"),
    )
    rounds = 100_000
    started = time.perf_counter()
    for _ in range(rounds):
        json.loads(line)
    return (time.perf_counter() - started) / rounds * 1e6


def touch_one_percent(dataset: Path, out: Path, patients: int) -> int:
    """Append a pain report for 1 % of the patients (every partition changes)."""
    touched: set[int] = set()
    step = 100
    for part in partitions(str(dataset)):
        path = dataset / "enrollments" / f"{part_name(part)}.jsonl"
        ids = [json.loads(line)["patient"] for line in path.read_text().splitlines()]
        chosen = ids[::step]
        if not chosen:
            continue
        with open(dataset / "records" / f"{part_name(part)}.jsonl", "a", encoding="utf-8") as f:
            for patient in chosen:
                f.write(
                    json.dumps(
                        {
                            "kind": "pain",
                            "patient": patient,
                            "pain": 3,
                            "date": (DEFAULT_START + dt.timedelta(days=6)).isoformat(),
                        }
                    )
                    + "\n"
                )
        touched.add(part)
    return len(touched)


def peak_rss_mib() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(children, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (a run's worker processes)."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def compare_engines(
    dataset: Path, root: Path, patients: int, workers: int, reference: Path
) -> None:
    """The per-patient engine and the column engine (`--engine`) over the same dataset, in
    patients per second and per CPU-second (what a busy machine moves least), the share of
    patients each path took, and whether the output is the same bytes as `reference`'s."""
    for engine in ("patients", "columns"):
        out = root / f"out-{engine}"
        started, cpu = time.perf_counter(), cpu_seconds()
        summaries = run_local(str(dataset), str(out), AS_OF, workers, engine=engine)
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        paths = merge_paths(summaries) or {"patients": patients}
        share = ", ".join(f"{path} {n / patients:.1%}" for path, n in paths.items())
        same = all(
            (out / t / f"{part_name(p)}.jsonl").read_bytes()
            == (reference / t / f"{part_name(p)}.jsonl").read_bytes()
            for t in TABLES_OUT
            for p in partitions(str(dataset))
        )
        print(
            f"  --engine {engine:<9}{patients / wall:>9,.0f} patients/s  "
            f"{patients / cpu:>9,.0f} patients/CPU-s   paths: {share}; "
            f"same output: {'yes' if same else 'NO'}; peak RSS so far {peak_rss_mib():.1f} MiB"
        )


def measure(patients: int, workers: int, root: Path, compare: bool = True) -> None:
    dataset, out, floor_out = root / "in", root / "out", root / "floor"
    started = time.perf_counter()
    parts = generate(dataset, patients, workers)
    generated = time.perf_counter() - started
    started, cpu = time.perf_counter(), cpu_seconds()
    run_local(str(dataset), str(out), AS_OF, workers)
    full, full_cpu = time.perf_counter() - started, cpu_seconds() - cpu
    rss = peak_rss_mib()
    floor = io_floor(dataset, out, floor_out, workers)
    touched = touch_one_percent(dataset, out, patients)
    started = time.perf_counter()
    run_local(str(dataset), str(out), AS_OF, workers)
    incremental = time.perf_counter() - started
    print(f"{patients:>9,} patients ({parts} partitions, generated in {generated:.1f} s)")
    print(
        f"  end to end        {patients / full:>10,.0f} patients/s   ({full:.2f} s; "
        f"{patients / full_cpu:,.0f} patients/CPU-s)"
    )
    print(f"  I/O-only floor    {patients / floor:>10,.0f} patients/s   ({floor:.2f} s)")
    print(f"  ratio to floor    {full / floor:>10.2f} x          (target <= 1.5 x)")
    print(f"  peak RSS (max)    {rss:>10.1f} MiB")
    print(
        f"  1 % new data      {incremental:>10.2f} s = {incremental / full:.1%} of full "
        f"({touched} of {parts} partitions changed; target <= 3 %)"
    )
    if compare:  # (on the data with the 1 % appended: the reference is the re-run's output)
        compare_engines(dataset, root, patients, workers, out)
    sys.stdout.flush()


def measure_store(patients: int, workers: int, root: Path) -> None:
    """The embedded store: a full recompute, then one after 1 % of the patients got new data."""
    path = root / "clinic.db"
    text = shipped_text("low-back-pain")
    compiled = progressor.Engine().compile(progressor.parse_program(text))
    started = time.perf_counter()
    with Store.init(path) as store:
        synthesize_into_store(store, [(compiled, text)], patients, 1, 11)
    generated = time.perf_counter() - started
    fresh = root / "fresh.db"
    shutil.copy(path, fresh)
    started = time.perf_counter()
    full_summary = recompute(path, as_of=AS_OF, workers=workers)
    full = time.perf_counter() - started
    with sqlite3.connect(path) as db:  # the patients' ids (read-only)
        ids = [patient for (patient,) in db.execute("SELECT patient FROM patients ORDER BY 1")]
    with Store.open(path) as store:
        day = (DEFAULT_START + dt.timedelta(days=6)).isoformat()
        report = {"kind": "pain", "pain": 3, "date": day}
        store.import_records(
            [json.dumps({**report, "patient": p}) for p in ids[::100]], "bench", "jsonl"
        )
    started = time.perf_counter()
    again = recompute(path, as_of=AS_OF, workers=workers)
    incremental = time.perf_counter() - started
    print(f"{patients:>9,} patients in the store (filled in {generated:.1f} s)")
    print(f"  end to end        {full_summary.computed / full:>10,.0f} patients/s   ({full:.2f} s)")
    print(
        f"  1 % new data      {incremental:>10.2f} s = {incremental / full:.1%} of full "
        f"({again.computed} patients computed; target <= 3 %)"
    )
    compare_store_engines(fresh, root, workers)
    sys.stdout.flush()


def compare_store_engines(fresh: Path, root: Path, workers: int) -> None:
    """`recompute --engine` patients and columns, each over a copy of the fresh store."""
    dumps = {}
    for engine in ("patients", "columns"):
        path = root / f"{engine}.db"
        shutil.copy(fresh, path)
        started, cpu = time.perf_counter(), cpu_seconds()
        summary = recompute(path, as_of=AS_OF, workers=workers, engine=engine)
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        with Store.open(path) as store:
            dumps[engine] = list(store.dump_results())
        done = summary.computed
        share = ", ".join(f"{p} {n / max(done, 1):.1%}" for p, n in summary.paths.items())
        same = (
            ""
            if engine == "patients"
            else f"; same rows: {_yes(dumps[engine] == dumps['patients'])}"
        )
        print(
            f"  --engine {engine:<9}{done / wall:>9,.0f} patients/s  "
            f"{done / cpu:>9,.0f} patients/CPU-s   paths: {share}{same}"
        )


def _yes(same: bool) -> str:
    return "yes" if same else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--store-sizes", default="10000,100000")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--no-engines",
        action="store_true",
        help="skip the comparison of --engine patients and --engine columns",
    )
    args = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, {args.workers} workers, {os.cpu_count()} cores; "
        "seed program, one week of outcomes per patient; target >= 50,000 patients/s at 100k"
    )
    print(f"this machine decodes a record line (json.loads) in {decode_us():.2f} us")
    for size in (int(s) for s in args.sizes.split(",") if s):
        with tempfile.TemporaryDirectory(prefix="progressor-bench-") as root:
            measure(size, args.workers, Path(root), not args.no_engines)
    print("the embedded store (SQLite):")
    for size in (int(s) for s in args.store_sizes.split(",") if s):
        with tempfile.TemporaryDirectory(prefix="progressor-bench-") as root:
            measure_store(size, args.workers, Path(root))


if __name__ == "__main__":
    main()
