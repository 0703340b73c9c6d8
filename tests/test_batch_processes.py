"""Recompute as processes, through the real entry point: one run of a store at a time, a lock
that a kill -9 does not leave behind, workers that end with their run (kill -9, Ctrl-C), a
worker's death."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from progressor.errors import ProgressorError
from progressor.store.batch import recompute
from progressor.store.database import Store
from progressor.store.processes import RecomputeRunning, lock_path, run_lock
from tests.conftest import START
from tests.test_cli import run

WEEKS = 4
AS_OF = START + dt.timedelta(weeks=WEEKS)
PATIENTS = 1000  # a few seconds of computing: long enough to catch the run in the middle

on_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds worker processes through /proc"
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store that `progressor synth` filled with PATIENTS patients, none computed yet."""
    path = tmp_path_factory.mktemp("cohort") / "template.db"
    made = run("synth", "--patients", str(PATIENTS), "--weeks", str(WEEKS), "--store", str(path))
    assert made.returncode == 0, made.stderr
    return path


@pytest.fixture
def store(cohort: Path, tmp_path: Path) -> Path:
    path = tmp_path / "clinic.db"
    shutil.copy(cohort, path)
    return path


def _command(*args: str, prelude: str = "") -> list[str]:
    """The `progressor` command line, after `prelude` (Python run first in the same process)."""
    main = (
        "import sys; from progressor.cli.commands import main; sys.argv[0] = 'progressor'; main()"
    )
    return [sys.executable, "-c", f"{prelude}\n{main}", *args]


def _recompute(store: Path, *args: str, prelude: str = "") -> subprocess.Popen[str]:
    # (The per-patient engine: these runs must last while the test stops them, and the column
    # engine computes this store's patients in a moment. Its own killed runs:
    # tests/test_store_columns.py.)
    command = _command(
        "recompute",
        "--store",
        str(store),
        "--week",
        AS_OF.isoformat(),
        "--engine",
        "patients",
        *args,
        prelude=prelude,
    )
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, for the Ctrl-C test
    )


def _computed(stdout: str) -> int:
    found = re.search(r": (\d+) patients computed", stdout)
    assert found, stdout
    return int(found[1])


def _up_to_date(store: Path) -> int:
    with Store.open(store) as opened:
        return opened.status().up_to_date


# -- processes, as /proc shows them ---------------------------------------------------------


def _state_and_parent(pid: int) -> tuple[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone
        return None
    state, parent = text.rsplit(")", 1)[1].split()[:2]  # the name in (...) may hold spaces
    return state, int(parent)


def _alive(pid: int) -> bool:
    found = _state_and_parent(pid)
    return found is not None and found[0] != "Z"  # a zombie has ended: it only awaits reaping


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        process = _state_and_parent(int(entry.name)) if entry.name.isdigit() else None
        if process is not None and process[0] != "Z" and process[1] == pid:
            found.add(int(entry.name))
    return found


def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition()` (generously: the machine is shared) until true, else fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.05)


class Runs:
    """The recompute processes a test starts, and their workers: any still running when the
    test ends (it failed) are killed, so that no test leaves a process behind."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []
        self.workers: set[int] = set()

    def start(self, store: Path, *args: str, prelude: str = "") -> subprocess.Popen[str]:
        self.started.append(_recompute(store, *args, prelude=prelude))
        return self.started[-1]

    def workers_of(self, process: subprocess.Popen[str], count: int = 2) -> set[int]:
        """The worker processes of a recompute, once it has started them all."""
        found: set[int] = set()

        def started() -> bool:
            assert process.poll() is None, process.communicate()
            found.clear()
            found.update(_children(process.pid))
            return len(found) >= count

        _until(started, 60, f"{count} workers started")
        self.workers |= found
        return found

    def end(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=30)
        for pid in self.workers:
            if _alive(pid) and b"progressor.cli.commands" in _command_line(
                pid
            ):  # (not a pid reused)
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def runs() -> Iterator[Runs]:
    started = Runs()
    yield started
    started.end()


# -- one run at a time -----------------------------------------------------------------------


def test_two_runs_started_together_compute_each_patient_once(store: Path, runs: Runs) -> None:
    together = [runs.start(store, "--workers", "2", "--wait", "300") for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in together]
    assert [p.returncode for p in together] == [0, 0], outputs
    # The second waited for the first, then found nobody due.
    assert sorted(_computed(out) for out, _ in outputs) == [0, PATIENTS]
    assert _up_to_date(store) == PATIENTS


def test_a_run_while_another_holds_the_lock_does_nothing_and_says_so(store: Path) -> None:
    with run_lock(store):
        busy = run("recompute", "--store", str(store), "--week", AS_OF.isoformat())
        assert busy.returncode == 6 and busy.stdout == ""
        assert f"another recompute of {store} is running (pid {os.getpid()} since " in busy.stderr
        assert "--wait SECONDS" in busy.stderr and "Traceback" not in busy.stderr
        waited = run(
            "recompute", "--store", str(store), "--week", AS_OF.isoformat(), "--wait", "0.5"
        )
        assert waited.returncode == 6 and "running after waiting 0.5 s" in waited.stderr
        with pytest.raises(RecomputeRunning, match="is running"):
            recompute(store, as_of=AS_OF)  # the library refuses the same way
    assert _up_to_date(store) == 0  # nothing was computed while the lock was held
    done = run("recompute", "--store", str(store), "--week", AS_OF.isoformat(), "--workers", "1")
    assert done.returncode == 0 and _computed(done.stdout) == PATIENTS
    assert lock_path(store).exists()  # left on disk, and harmless: the lock is the kernel's


def test_a_lock_passed_in_must_be_the_stores_own(store: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    shutil.copy(store, other)
    with run_lock(other) as lock, pytest.raises(ProgressorError, match="not the run lock"):
        recompute(store, as_of=AS_OF, lock=lock)


def test_there_is_no_lock_file_where_there_is_no_store(tmp_path: Path) -> None:
    done = run("recompute", "--store", str(tmp_path / "none.db"))
    assert done.returncode == 1 and "no store here" in done.stderr
    assert list(tmp_path.iterdir()) == []


# -- a run killed with kill -9: its workers end, its lock does not block --------------------

#: Python run before the command line: no prctl, so that the portable fallback (a thread of
#: each worker watching its parent) is what ends the workers.
WITHOUT_PRCTL = "import progressor.store.processes as p; p._parent_death_signal = lambda: False"


@on_proc
@pytest.mark.parametrize("prelude", ["", WITHOUT_PRCTL], ids=["prctl", "watching-thread"])
def test_kill_9_of_a_run_ends_its_workers_and_leaves_no_lock(
    store: Path, runs: Runs, prelude: str
) -> None:
    killed = runs.start(store, "--workers", "2", prelude=prelude)
    workers = runs.workers_of(killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    # At once, without waiting: neither the lock file nor a worker still alive blocks it.
    after = run("recompute", "--store", str(store), "--week", AS_OF.isoformat())
    assert after.returncode == 0, after.stderr
    assert _up_to_date(store) == PATIENTS
    _until(lambda: not any(_alive(w) for w in workers), 20, f"workers {workers} ended")


@on_proc
def test_a_worker_killed_is_a_clear_error_and_the_next_run_does_the_rest(
    store: Path, runs: Runs
) -> None:
    running = runs.start(store, "--workers", "2")
    os.kill(min(runs.workers_of(running)), signal.SIGKILL)
    out, err = running.communicate(timeout=120)
    assert running.returncode == 1 and out == ""
    assert "error: a recompute worker process ended unexpectedly" in err
    assert "Traceback" not in err
    again = run("recompute", "--store", str(store), "--week", AS_OF.isoformat())
    assert again.returncode == 0, again.stderr
    assert _up_to_date(store) == PATIENTS


@on_proc
def test_ctrl_c_stops_the_run_without_a_traceback_from_each_worker(store: Path, runs: Runs) -> None:
    running = runs.start(store, "--workers", "2")
    workers = runs.workers_of(running)
    os.killpg(running.pid, signal.SIGINT)  # what a terminal sends its foreground group
    _, err = running.communicate(timeout=120)
    assert running.returncode == 1 and "Aborted!" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    _until(lambda: not any(_alive(w) for w in workers), 20, f"workers {workers} ended")
