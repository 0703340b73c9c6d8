"""Connections shared out evenly between `progressor serve`'s worker processes.

uvicorn's workers accept from one listening socket, and the worker that wakes first takes
every connection waiting (its event loop accepts until none is left). A client that opens
its keep-alive connections at once, as a practice-management system's pool or a load test
does, can so put 19 of 32 on one worker, or all of them: that worker's queue, not the
machine, then sets the tail latency (docs/performance.md, "the connection split").

Here each worker publishes how many connections it serves, on a board in shared memory,
and a worker that accepts a connection while another serves fewer passes it on: the
connection's descriptor goes to that worker over a Unix socket (SCM_RIGHTS) before a byte
of it is read, and the other worker serves it as if it had accepted it. A connection is
passed at most once, when it is accepted, never in the middle of a request; when passing
fails the worker serves it itself, and sends no more to that worker: for a second when its
queue stayed full (it is busy), until another process takes its slot when it has died.
A worker that is stopping (a restart, SIGTERM) withdraws from the board, and a connection
that reaches it on its way is passed on once more, to a worker that stays. The board has
twice as many slots as workers: uvicorn starts each new worker of a rolling restart
before it stops the old one; a worker that finds every slot held tries again a moment later.

The board holds, for each worker's slot: a generation (bumped each time a worker process
takes the slot, so that a restarted worker starts from nothing), the connections it
serves, and how many it has received from each other slot. A sender counts what it sent to
each slot, so that connections in flight count for their receiver at once (a burst of 32
accepted by one worker is shared out 16/16, not all sent to the one that has none yet).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import gc
import logging
import mmap
import os
import socket
import time
from pathlib import Path
from typing import IO, Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

#: How `progressor serve` tells its workers where the board is: "DIRECTORY:SLOTS:PID" (board_for).
BALANCE_ENV = "PROGRESSOR_SERVE_BALANCE"

_INT = 8  # bytes of one counter on the board
_WAIT_S = 0.05  # the longest a worker waits to pass a connection on, before serving it
_REST_S = 1.0  # how long a worker that made it wait so is not sent to
_WATCH_S = 0.1  # how often a worker looks whether it is stopping, or may join the board
_RETRY_EVERY = 10  # watches between tries to join when every slot was held (a second)
STOPPING = 1 << 62  # the count a stopping worker publishes: no connection is passed to it
_log = logging.getLogger("progressor.serve")


class Board:
    """The shared counters of `slots` slots, in the file DIRECTORY/board."""

    def __init__(self, directory: Path, slots: int) -> None:
        self.directory = directory
        self.slots = slots
        size = slots * (2 + slots) * _INT
        path = directory / "board"
        with open(path, "a+b") as handle:
            if os.fstat(handle.fileno()).st_size < size:
                handle.truncate(size)
            self._map = mmap.mmap(handle.fileno(), size)
        self._cells = memoryview(self._map).cast("q")

    def _at(self, slot: int, column: int) -> int:
        return slot * (2 + self.slots) + column

    def generation(self, slot: int) -> int:
        return int(self._cells[self._at(slot, 0)])

    def serving(self, slot: int) -> int:
        return int(self._cells[self._at(slot, 1)])

    def received(self, slot: int, sender: int) -> int:
        return int(self._cells[self._at(slot, 2 + sender)])

    def socket_path(self, slot: int) -> str:
        return str(self.directory / f"slot-{slot}.sock")

    # (Each slot's cells are written by the one process that holds its lock.)
    def take(self, slot: int) -> None:
        for column in range(1, 2 + self.slots):
            self._cells[self._at(slot, column)] = 0
        self._cells[self._at(slot, 0)] = self.generation(slot) + 1

    def publish(self, slot: int, serving: int) -> None:
        self._cells[self._at(slot, 1)] = serving

    def count_received(self, slot: int, sender: int) -> None:
        self._cells[self._at(slot, 2 + sender)] += 1


def least_loaded(loads: dict[int, int], mine: int) -> int | None:
    """The slot a new connection goes to, among the others' loads: the least loaded one
    when it serves fewer than this worker (ties to the lowest slot), else None (kept)."""
    if not loads:
        return None
    slot = min(loads, key=lambda s: (loads[s], s))
    return slot if loads[slot] < mine else None


class Balancer:
    """One worker's side: its slot on the board, its Unix socket, what it sent to whom."""

    def __init__(self, board: Board, slot: int, lock: IO[bytes]) -> None:
        self.board = board
        self.slot = slot
        self.stopping = False
        self._lock = lock  # (held while the process lives: the slot is this worker's)
        self._sent: dict[int, tuple[int, int]] = {}  # slot -> (its generation, sent: _sent_to)
        # slot -> the generation a passing to it failed in: not sent to again until another
        # process takes the slot (uvicorn replaces a worker that stops answering)
        self._dead: dict[int, int] = {}
        self._resting: dict[int, float] = {}  # slot -> until when a busy one is not sent to
        path = board.socket_path(slot)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(path)
        self.socket.setblocking(False)
        # Sent from a socket of its own, which waits a moment for room: a receiver's queue
        # holds few datagrams (net.unix.max_dgram_qlen, 10 on many systems), and a burst of
        # connections fills it faster than the receiver's loop, on another core, empties it.
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.settimeout(_WAIT_S)

    @classmethod
    def join(cls, board: Board) -> Balancer | None:
        """This worker's balancer on the first free slot (None when every slot is held).
        Its socket is bound before the slot's new generation is published: no worker sends
        to it before it can receive."""
        for slot in range(board.slots):
            lock = open(board.directory / f"slot-{slot}.lock", "a+b")  # noqa: SIM115 (kept open)
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                continue
            try:
                joined = cls(board, slot, lock)
            except OSError:
                lock.close()
                raise
            board.take(slot)
            return joined
        return None

    def loads(self) -> dict[int, int]:
        """Each other live slot's connections, with those sent to it and not yet received
        (a worker that is stopping is left out)."""
        found = {}
        for slot in range(self.board.slots):
            generation = self.board.generation(slot)
            if slot == self.slot or generation == 0 or self._dead.get(slot) == generation:
                continue
            if self._resting.get(slot, 0.0) > time.monotonic():
                continue
            serving = self.board.serving(slot)
            if serving >= STOPPING:
                continue
            pending = max(0, self._sent_to(slot, generation) - self.board.received(slot, self.slot))
            found[slot] = serving + pending
        return found

    def pass_on(self, descriptor: int, serving: int) -> bool:
        """Send a just-accepted connection to a worker that serves fewer; whether it went."""
        slot = least_loaded(self.loads(), serving)
        if slot is None:
            return False
        generation = self.board.generation(slot)
        try:
            # (sendmsg itself: socket.send_fds drops its address argument before Python 3.13)
            self._sender.sendmsg(
                [self.slot.to_bytes(2, "big")],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [descriptor]))],
                0,
                self.board.socket_path(slot),
            )
        except TimeoutError:  # (that worker is busy: this one serves, and waits no more)
            self._resting[slot] = time.monotonic() + _REST_S
            return False
        except OSError:  # (that worker is gone: the next in its slot will be another)
            self._dead[slot] = generation
            return False
        self._sent[slot] = (generation, self._sent_to(slot, generation) + 1)
        return True

    def _sent_to(self, slot: int, generation: int) -> int:
        """What this worker has sent to `slot`'s worker, counted from what that worker had
        received from this slot when this one first saw it: the earlier holders of this
        slot (a worker replaced, a rolling restart) sent it connections too."""
        seen, sent = self._sent.get(slot, (None, 0))
        if seen != generation:
            sent = self.board.received(slot, self.slot)
            self._sent[slot] = (generation, sent)
        return sent

    def received(self) -> list[tuple[int, socket.socket]]:
        """The connections other workers have passed to this one since the last call, each
        with its sender's slot (counted received once it is served: `served`)."""
        found: list[tuple[int, socket.socket]] = []
        while True:
            try:
                message, descriptors, _, _ = socket.recv_fds(self.socket, 16, 8)
            except (BlockingIOError, InterruptedError):
                return found
            sender = int.from_bytes(message, "big") if len(message) == 2 else None
            for descriptor in descriptors:
                try:
                    sock = socket.socket(fileno=descriptor)
                except OSError:  # (not a socket)
                    os.close(descriptor)
                    continue
                if sender is not None and sender < self.board.slots:
                    found.append((sender, sock))
                else:  # (not from a worker of this service)
                    sock.close()

    def served(self, serving: int, sender: int | None = None) -> None:
        """Publish this worker's count; a connection from `sender` is now in it. (Published
        before it is counted received: a moment counted twice, never missed.)"""
        self.board.publish(self.slot, STOPPING if self.stopping else serving)
        if sender is not None:
            self.board.count_received(self.slot, sender)

    def withdraw(self) -> None:
        """This worker is stopping: no connection is passed to it any more."""
        self.stopping = True
        self.board.publish(self.slot, STOPPING)


class BalancedProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol, which passes a just-accepted connection on to a worker that
    serves fewer (see the module's docstring); a passed connection is served as usual."""

    balancer: Balancer | None = None  # (this worker's, once it has joined the board)
    passed_from: int | None = None  # (the slot of the worker that passed it to this one)
    passed_on = False

    def connection_made(self, transport: asyncio.Transport) -> None:
        balancer = BalancedProtocol.balancer
        if balancer is not None and self.passed_from is None:
            sock = transport.get_extra_info("socket")
            if sock is not None and balancer.pass_on(sock.fileno(), len(self.connections)):
                self.passed_on = True
                transport.abort()  # (this worker's copy only: the other holds the connection)
                return
        super().connection_made(transport)
        if balancer is not None:
            balancer.served(len(self.connections), self.passed_from)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.passed_on:
            return
        super().connection_lost(exc)
        if BalancedProtocol.balancer is not None:
            BalancedProtocol.balancer.served(len(self.connections))


def board_for(workers: int, directory: str) -> str:
    """What `progressor serve` puts in BALANCE_ENV for its workers: the board's directory,
    its slots (twice the workers: in a rolling restart, uvicorn starts each new worker
    before it stops the old one) and the serving process, whose workers alone may join."""
    return f"{directory}:{2 * workers}:{os.getpid()}"


def join_board() -> None:
    """In a worker (from the app's factory, in its event loop): take a slot on the board
    `progressor serve` named, and serve the connections other workers pass to this one.
    Nothing happens without the board, or without uvicorn's server in this process."""
    named = os.environ.get(BALANCE_ENV, "")
    directory, _, rest = named.partition(":")
    slots, _, parent = rest.partition(":")
    if not (slots.isdigit() and parent.isdigit()) or os.getppid() != int(parent):
        return  # (no board, or another server's)
    server = _uvicorn_server()
    if server is not None:
        _Member(server, Board(Path(directory), int(slots))).watch()


class _Member:
    """A worker on the board: it joins (again a moment later when every slot is held, as
    in a rolling restart), serves what is passed to it, and withdraws when it is stopping."""

    def __init__(self, server: Any, board: Board) -> None:
        self.server = server
        self.board = board
        self.loop = asyncio.get_running_loop()
        self.balancer: Balancer | None = None
        self.tries = 0
        self.serving: set[asyncio.Task[None]] = set()  # (held until done: loops keep weak ones)

    def watch(self) -> None:
        if self.balancer is None and not self.server.should_exit and self.tries >= 0:
            self._join()
        elif self.balancer is not None and self.server.should_exit:
            if not self.balancer.stopping:
                self.balancer.withdraw()
            self.serve_received()  # (passed on to a worker that stays, now)
        self.loop.call_later(_WATCH_S, self.watch)

    def _join(self) -> None:
        self.tries += 1
        if self.tries > 1 and self.tries % _RETRY_EVERY:
            return  # (every slot was held: tried again each second)
        try:
            self.balancer = Balancer.join(self.board)
        except OSError as exc:  # (no board to share: this worker serves what it accepts)
            _log.warning(
                "progressor serve: the workers cannot share connections out (%s); each "
                "serves what it accepts",
                exc,
            )
            self.tries = -1  # (not tried again)
            return
        if self.balancer is not None:
            self.loop.add_reader(self.balancer.socket.fileno(), self.serve_received)
            BalancedProtocol.balancer = self.balancer

    def serve_received(self) -> None:
        balancer = self.balancer
        assert balancer is not None
        for sender, sock in balancer.received():
            if self.server.should_exit:  # (stopping: to a worker that stays, or closed)
                balancer.pass_on(sock.fileno(), STOPPING)
                sock.close()
                balancer.board.count_received(balancer.slot, sender)
                continue
            sock.setblocking(False)
            task = self.loop.create_task(self._serve(sender, sock))
            self.serving.add(task)
            task.add_done_callback(self.serving.discard)

    def _protocol(self, sender: int) -> asyncio.Protocol:
        server = self.server
        one: BalancedProtocol = server.config.http_protocol_class(
            config=server.config, server_state=server.server_state, app_state=server.lifespan.state
        )
        one.passed_from = sender
        return one

    async def _serve(self, sender: int, sock: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: self._protocol(sender), sock)
        except OSError:  # (the client left while the connection was being passed)
            sock.close()
            assert self.balancer is not None
            self.balancer.board.count_received(self.balancer.slot, sender)


def _uvicorn_server() -> Any | None:
    """This process's uvicorn server (the one running the app being made), if one is."""
    from uvicorn.server import Server

    found = [o for o in gc.get_objects() if isinstance(o, Server)]
    return found[0] if len(found) == 1 else None


def connections_held(pid: int, port: int) -> int:
    """How many established TCP connections to this machine's `port` the process `pid`
    holds (Linux: from /proc; what the tests and bench/serve.py count each worker's share by)."""
    inodes = set()
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in descriptors:
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01" and fields[9] in inodes:
                    count += 1  # (01: established)
    return count
