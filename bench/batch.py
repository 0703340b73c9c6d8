"""Batch benchmark: the weekly recompute over partitioned datasets of growing size.

Run as `.venv/bin/python bench/batch.py [--sizes 10000,100000,1000000] [--workers N]`.
For each size it generates a synthetic cohort on the seed program (one week of outcomes
per patient), then measures in one run, on this machine:

- the per-patient and the column engine (`recompute --engine`), each a clean full run over
  the same data on fresh worker processes (one partition a task, as `run_local` runs them):
  patients per second and per CPU-second (what a busy machine moves least), the peak
  resident memory of each worker process and of all of them, the share of patients each
  path took, and whether the two engines' output is byte-identical;
- the I/O floor with the same reader: the input files split by patient as the run splits
  them, the enrollments and every record line read as the column engine reads them, and the
  bytes the run wrote written again, with no rules; the column engine's CPU over it;
- the stdlib I/O floor: every line decoded with json.loads, as many bytes written;
- an incremental re-run after 1 % of the patients got new data (appended to every
  partition's records): only the new lines are read and only their patients computed.

The embedded store (SQLite, the default path) is measured too, for the sizes in
`--store-sizes` (default 10k and 100k: filling a store goes at about 1,700 patients/s):
end to end `recompute` on all cores, and the same incremental re-run after `import` of a
pain report for 1 % of the patients; then each `--engine` (patients, columns) over a copy of
the same fresh store: patients per second and per CPU-second, the share each path took, and
whether the stored rows are the same. Each store run is timed in a process of its own, as
the command line runs it (its start and imports not counted). Figures go to standard output;
nothing is asserted.

`--memory` runs only each engine's full run at every size of `--sizes` and prints how flat
its peak memory a process is: the largest size's over the smallest's (e.g. `--memory
--sizes 10000,1000000`; a million patients need about 2 GB of disk for the cohort).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import progressor
from progressor.core.models import Enrollment
from progressor.dataset import (
    TABLES_OUT,
    compute_partition,
    part_name,
    partitions,
    run_local,
)
from progressor.dataset.files import scan
from progressor.dataset.partition import engine_for
from progressor.demo import shipped_text
from progressor.store.batch import Summary, recompute
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


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (a run's worker processes)."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _part_job(dataset: str, out: str, part: int, engine: str) -> tuple[dict[str, int], int, int]:
    """One partition computed in a worker (as run_local does): its paths, the worker's pid and
    its peak resident memory so far (KiB)."""
    summary = compute_partition(dataset, out, part, AS_OF, engine=engine)
    return summary.paths, os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@dataclass
class Run:
    """One full run of every partition: wall and CPU seconds, paths, peak RSS per worker."""

    wall: float
    cpu: float
    paths: dict[str, int]
    peaks_kib: dict[int, int]  # each worker process's peak resident memory

    def line(self, label: str, patients: int) -> str:
        per_process = max(self.peaks_kib.values()) / 1024
        total = sum(self.peaks_kib.values()) / 1024
        share = ", ".join(f"{path} {n / patients:.1%}" for path, n in self.paths.items())
        return (
            f"  {label:<20}{patients / self.wall:>9,.0f} patients/s {patients / self.cpu:>9,.0f}"
            f" patients/CPU-s   peak RSS {per_process:6.1f} MiB a process, {total:6.1f} MiB in"
            f" all ({len(self.peaks_kib)} workers)" + (f"; paths: {share}" if share else "")
        )


def run_engine(dataset: Path, out: Path, workers: int, engine: str) -> Run:
    """Every partition with `engine` on `workers` fresh worker processes (run_local's way)."""
    parts = partitions(str(dataset))
    peaks: dict[int, int] = {}
    paths: dict[str, int] = {}
    engine_for((), ())  # (built before the workers start, as run_local does)
    started, cpu = time.perf_counter(), cpu_seconds()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(_part_job, str(dataset), str(out), p, engine) for p in parts]
        for job in jobs:
            done, pid, peak = job.result()
            peaks[pid] = max(peaks.get(pid, 0), peak)
            for path, n in done.items():
                paths[path] = paths.get(path, 0) + n
    return Run(
        time.perf_counter() - started, cpu_seconds() - cpu, dict(sorted(paths.items())), peaks
    )


def _same_reader_part(dataset: str, reference: str, out: str, part: int) -> int:
    """The I/O of one partition with the column engine's own reading and no rules: the input
    files split by patient (files.scan), every record line read into columns
    (progressor.columns.reading), and the bytes the real run wrote, written again."""
    import polars as pl

    from progressor.columns.reading import PlainColumns

    name = f"{part_name(part)}.jsonl"
    enrollments = scan(f"{dataset}/enrollments/{name}")
    records = scan(f"{dataset}/records/{name}")
    assert enrollments is not None and records is not None
    everyone = sorted(enrollments.lines)
    lines = [line for patient in everyone for line in records.lines.get(patient, [])]
    for patient in everyone:
        for line in enrollments.lines[patient]:
            Enrollment.model_validate_json(line)
    PlainColumns().read(pl.Series(lines, dtype=pl.String))
    for table in TABLES_OUT:
        Path(out, table).mkdir(parents=True, exist_ok=True)
        data = Path(reference, table, name).read_bytes()
        Path(out, table, name).write_bytes(data)
    return len(lines)


def same_reader_floor(
    dataset: Path, reference: Path, out: Path, workers: int
) -> tuple[float, float]:
    """Wall and CPU seconds of the same-reader I/O floor (_same_reader_part), every
    partition on `workers` processes."""
    parts = partitions(str(dataset))
    started, cpu = time.perf_counter(), cpu_seconds()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [
            pool.submit(_same_reader_part, str(dataset), str(reference), str(out), p) for p in parts
        ]
        for job in jobs:
            job.result()
    return time.perf_counter() - started, cpu_seconds() - cpu


def same_bytes(dataset: Path, out: Path, reference: Path) -> bool:
    return all(
        (out / t / f"{part_name(p)}.jsonl").read_bytes()
        == (reference / t / f"{part_name(p)}.jsonl").read_bytes()
        for t in TABLES_OUT
        for p in partitions(str(dataset))
    )


def parquet_input(
    dataset: Path,
    root: Path,
    patients: int,
    workers: int,
    reference: Path,
    engines: tuple[str, ...],
) -> None:
    """The same cohort as Parquet partitions (progressor.dataset.parquet.to_parquet), a full
    run with each engine (the column engine reads the rows in columns, the per-patient one
    through the record reader, row by row): patients per second and per CPU-second, and
    whether the output is the JSONL run's."""
    from progressor.dataset.parquet import to_parquet

    as_parquet = root / "in-parquet"
    to_parquet(str(dataset), str(as_parquet))
    for engine in engines:
        out = root / f"out-parquet-{engine}"
        started, cpu = time.perf_counter(), cpu_seconds()
        run_local(str(as_parquet), str(out), AS_OF, workers, engine=engine)
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        same = all(  # (a set-aside row names its file: .parquet where the reference: .jsonl)
            (out / t / f"{part_name(p)}.jsonl").read_bytes().replace(b'.parquet"', b'.jsonl"')
            == (reference / t / f"{part_name(p)}.jsonl").read_bytes()
            for t in TABLES_OUT
            for p in partitions(str(dataset))
        )
        print(
            f"  Parquet input       {patients / wall:>9,.0f} patients/s {patients / cpu:>9,.0f}"
            f" patients/CPU-s   (--engine {engine}; same output: {'yes' if same else 'NO'})"
        )


def measure(patients: int, workers: int, root: Path, compare: bool = True) -> None:
    """A cohort's full run with each engine, the two I/O floors, and the 1 % re-run."""
    dataset, floor_out = root / "in", root / "floor"
    started = time.perf_counter()
    parts = generate(dataset, patients, workers)
    generated = time.perf_counter() - started
    print(f"{patients:>9,} patients ({parts} partitions, generated in {generated:.1f} s)")
    engines = ("patients", "columns") if compare else ("patients",)
    runs = {}
    for engine in engines:
        runs[engine] = run_engine(dataset, root / f"out-{engine}", workers, engine)
        print(runs[engine].line(f"--engine {engine}", patients))
    best = engines[-1]
    reference = root / f"out-{best}"
    if compare:
        same = same_bytes(dataset, root / "out-columns", root / "out-patients")
        print(f"  same output from both engines: {'yes' if same else 'NO'}")
        wall, cpu = same_reader_floor(dataset, reference, root / "floor-same", workers)
        print(
            f"  I/O floor, same reader{patients / wall:>7,.0f} patients/s {patients / cpu:>9,.0f}"
            " patients/CPU-s   (scan, the column reader, the run's bytes written; no rules)"
        )
        ratio = runs["columns"].cpu / cpu
        print(f"  columns / that floor {ratio:>8.2f} x CPU        (target <= 1.5 x)")
    floor = io_floor(dataset, reference, floor_out, workers)
    print(
        f"  I/O floor, stdlib json{patients / floor:>7,.0f} patients/s"
        f"                          (json.loads of every line, as many bytes written)"
    )
    parquet_input(dataset, root, patients, workers, root / "out-patients", engines)
    touched = touch_one_percent(dataset, reference, patients)
    started, cpu = time.perf_counter(), cpu_seconds()
    again = "auto" if compare else best  # (auto: the few changed patients go per-patient)
    run_local(str(dataset), str(reference), AS_OF, workers, engine=again)
    incremental, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    full = runs[best].wall
    print(
        f"  1 % new data      {incremental:>10.2f} s = {incremental / full:.1%} of full "
        f"(--engine {again} after {best}; {touched} of {parts} partitions changed; "
        "target <= 3 %)"
    )
    # (In CPU seconds too: a short run's wall time moves most on a busy machine.)
    print(f"  1 % new data, CPU {cpu:>8.2f} s = {cpu / runs[best].cpu:.1%} of full's CPU")
    sys.stdout.flush()


def _store_run(path: str, workers: int, engine: str) -> tuple[float, float, Summary]:
    """One recompute of the store at `path`: its wall and CPU seconds (its worker processes'
    too) and summary."""
    started, cpu = time.perf_counter(), cpu_seconds()
    summary = recompute(path, as_of=AS_OF, workers=workers, engine=engine)
    return time.perf_counter() - started, cpu_seconds() - cpu, summary


def store_run(path: Path, workers: int, engine: str) -> tuple[float, float, Summary]:
    """_store_run in a process of its own, as the command line runs each recompute: one that
    has not run polars before, so recompute forks its workers. (In this process, after a
    first run that chose the column engine, polars is imported and recompute spawns them,
    each importing everything again: about a second of CPU more a run here.)"""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_store_run, str(path), workers, engine).result()


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
    # (As the command line runs it: --engine auto, its default.)
    full, _, full_summary = store_run(path, workers, "auto")
    with sqlite3.connect(path) as db:  # the patients' ids (read-only)
        ids = [patient for (patient,) in db.execute("SELECT patient FROM patients ORDER BY 1")]
    with Store.open(path) as store:
        day = (DEFAULT_START + dt.timedelta(days=6)).isoformat()
        report = {"kind": "pain", "pain": 3, "date": day}
        store.import_records(
            [json.dumps({**report, "patient": p}) for p in ids[::100]], "bench", "jsonl"
        )
    incremental, _, again = store_run(path, workers, "auto")
    print(f"{patients:>9,} patients in the store (filled in {generated:.1f} s)")
    print(
        f"  end to end        {full_summary.computed / full:>10,.0f} patients/s   ({full:.2f} s;"
        " --engine auto, the command line's default)"
    )
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
        wall, cpu, summary = store_run(path, workers, engine)
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


def measure_memory(sizes: list[int], workers: int) -> None:
    """Memory flat: each engine's full run at every size, its peak RSS a process, and the
    largest size's peak over the smallest's (target <= 1.2 x, at most 300 MiB a process)."""
    peaks: dict[str, list[float]] = {"patients": [], "columns": []}
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="progressor-bench-") as root:
            dataset = Path(root) / "in"
            started = time.perf_counter()
            parts = generate(dataset, size, workers)
            print(
                f"{size:>9,} patients ({parts} partitions, generated in "
                f"{time.perf_counter() - started:.1f} s)"
            )
            for engine, found in peaks.items():
                run = run_engine(dataset, Path(root) / f"out-{engine}", workers, engine)
                print(run.line(f"--engine {engine}", size), flush=True)
                found.append(max(run.peaks_kib.values()) / 1024)
    for engine, found in peaks.items():
        print(
            f"  memory, --engine {engine:<9} {found[-1]:6.1f} MiB a process at {sizes[-1]:,}, "
            f"{found[-1] / found[0]:.2f} x the peak at {sizes[0]:,} "
            "(target <= 1.2 x, <= 300 MiB)"
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
    parser.add_argument(
        "--memory",
        action="store_true",
        help="only each engine's full run at every size, and how flat its peak memory is",
    )
    args = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, {args.workers} workers, {os.cpu_count()} cores; "
        "seed program, one week of outcomes per patient; target >= 50,000 patients/s at 100k"
    )
    print(f"this machine decodes a record line (json.loads) in {decode_us():.2f} us")
    if args.memory:
        measure_memory([int(s) for s in args.sizes.split(",") if s], args.workers)
        return
    for size in (int(s) for s in args.sizes.split(",") if s):
        with tempfile.TemporaryDirectory(prefix="progressor-bench-") as root:
            measure(size, args.workers, Path(root), not args.no_engines)
    print("the embedded store (SQLite):")
    for size in (int(s) for s in args.store_sizes.split(",") if s):
        with tempfile.TemporaryDirectory(prefix="progressor-bench-") as root:
            measure_store(size, args.workers, Path(root))


if __name__ == "__main__":
    main()
