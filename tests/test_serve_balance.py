"""progressor.serve.balance in one process: the board's counters, the choice of a worker, and
a connection's descriptor passed from one worker's balancer to another's."""

from __future__ import annotations

import array
import asyncio
import os
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from progressor.serve.balance import (
    BALANCE_ENV,
    BalancedProtocol,
    Balancer,
    Board,
    _Member,
    join_board,
    least_loaded,
)


def test_a_connection_goes_to_the_least_loaded_worker_that_serves_fewer() -> None:
    assert least_loaded({1: 3, 2: 1}, mine=2) == 2
    assert least_loaded({1: 2, 2: 2}, mine=2) is None  # (as many: kept, no passing for nothing)
    assert least_loaded({1: 0, 2: 0}, mine=1) == 1  # (ties: the lowest slot)
    assert least_loaded({}, mine=5) is None  # (alone)


@given(st.integers(2, 6), st.lists(st.integers(0, 5), min_size=1, max_size=200))
def test_connections_accepted_anywhere_end_up_even(workers: int, accepted_by: list[int]) -> None:
    serving = [0] * workers
    for accepting in accepted_by:
        me = accepting % workers
        others = {slot: serving[slot] for slot in range(workers) if slot != me}
        chosen = least_loaded(others, serving[me])
        serving[me if chosen is None else chosen] += 1
    assert max(serving) - min(serving) <= 1


def _balancers(directory: Path, workers: int) -> list[Balancer]:
    board = Board(directory, workers)
    joined = [Balancer.join(board) for _ in range(workers)]
    assert all(b is not None for b in joined)
    return [b for b in joined if b is not None]


def test_every_slot_taken_once(tmp_path: Path) -> None:
    first, second = _balancers(tmp_path, 2)
    assert (first.slot, second.slot) == (0, 1)
    assert Balancer.join(Board(tmp_path, 2)) is None  # (both slots held)


def test_a_passed_connection_is_the_same_connection(tmp_path: Path) -> None:
    sender, receiver = _balancers(tmp_path, 2)
    sender.served(3)
    ours, theirs = socket.socketpair()
    assert sender.pass_on(ours.fileno(), serving=3)  # (the receiver serves 0)
    ours.close()  # (the sender's copy: the connection lives on in the receiver's)
    assert sender.loads() == {1: 1}  # (in flight: counted for the receiver at once)
    ((came_from, passed),) = receiver.received()
    assert came_from == sender.slot
    receiver.served(1, came_from)
    assert sender.loads() == {1: 1}  # (served now, no longer in flight: counted once)
    theirs.sendall(b"ping")
    assert passed.recv(4) == b"ping"
    passed.close()
    theirs.close()


def test_a_busier_worker_is_not_sent_more(tmp_path: Path) -> None:
    sender, receiver = _balancers(tmp_path, 2)
    receiver.served(5)
    ours, theirs = socket.socketpair()
    assert not sender.pass_on(ours.fileno(), serving=5)
    assert receiver.received() == []
    ours.close()
    theirs.close()


def test_a_gone_worker_is_not_sent_to_until_its_slot_is_taken_again(tmp_path: Path) -> None:
    board = Board(tmp_path, 2)
    sender, gone = _balancers(tmp_path, 2)
    gone.socket.close()  # (its process died: nobody reads its socket)
    ours, theirs = socket.socketpair()
    assert not sender.pass_on(ours.fileno(), serving=4)
    assert sender.loads() == {}
    gone._lock.close()  # (the kernel lets go of a dead process's lock)
    replaced = Balancer.join(board)
    assert replaced is not None and replaced.slot == gone.slot
    assert board.generation(replaced.slot) == 2
    assert sender.loads() == {1: 0}
    assert sender.pass_on(ours.fileno(), serving=4)
    ((_, passed),) = replaced.received()
    theirs.sendall(b"ok")
    assert passed.recv(2) == b"ok"
    for sock in (ours, theirs, passed):
        sock.close()


def test_a_worker_that_does_not_take_its_connections_is_left_to_rest(tmp_path: Path) -> None:
    sender, busy = _balancers(tmp_path, 2)
    pairs = [socket.socketpair() for _ in range(40)]
    sent = [sender.pass_on(ours.fileno(), serving=100) for ours, _ in pairs]
    # (its queue is full after a few: the sender waited once, then serves the rest itself)
    assert sent[0] and not all(sent)
    stopped = sent.index(False)
    assert not any(sent[stopped:])
    assert sender.loads() == {}
    assert len(busy.received()) == stopped
    for pair in pairs:
        for sock in pair:
            sock.close()


def test_a_stopping_worker_is_not_sent_to(tmp_path: Path) -> None:
    sender, stopping = _balancers(tmp_path, 2)
    stopping.withdraw()
    stopping.served(0)  # (a connection of its own closing: it stays withdrawn)
    assert sender.loads() == {}
    ours, theirs = socket.socketpair()
    assert not sender.pass_on(ours.fileno(), serving=30)
    for sock in (ours, theirs):
        sock.close()


def test_a_connection_reaching_a_stopping_worker_goes_on_to_one_that_stays(
    tmp_path: Path,
) -> None:
    sender, stopping, staying = _balancers(tmp_path, 3)
    sender.served(3)
    staying.served(2)  # (the stopping worker, with 0, is the least loaded)
    ours, theirs = socket.socketpair()
    assert sender.pass_on(ours.fileno(), serving=3)
    ours.close()

    class Stopping:
        should_exit = True

    async def stop() -> None:
        member = _Member(Stopping(), stopping.board)
        member.balancer = stopping
        member.watch()  # (withdraws, and passes on what reached it)

    asyncio.run(stop())
    assert stopping.loads()[staying.slot] == 3  # (counted for the one that stays, in flight)
    assert sender.loads() == {2: 2}  # (the stopping one left out)
    ((came_from, passed),) = staying.received()
    assert came_from == stopping.slot
    theirs.sendall(b"still here")
    assert passed.recv(10) == b"still here"
    for sock in (theirs, passed):
        sock.close()


def test_what_is_not_a_connection_from_a_worker_is_closed(tmp_path: Path) -> None:
    receiver = _balancers(tmp_path, 1)[0]
    reading, writing = os.pipe()
    stranger = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours, theirs = socket.socketpair()
    path = receiver.board.socket_path(receiver.slot)
    for message, descriptor in ((b"\x00\x00", reading), (b"who?", ours.fileno())):
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [descriptor]))]
        stranger.sendmsg([message], rights, 0, path)
    assert receiver.received() == []  # (a pipe; a message from no worker)
    for closed in (reading, writing):
        os.close(closed)
    for sock in (stranger, ours, theirs):
        sock.close()


def test_a_board_of_another_server_is_not_joined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BalancedProtocol, "balancer", None)
    monkeypatch.setenv(BALANCE_ENV, f"{tmp_path}:4:{os.getppid() + 1}")  # (not our parent)
    join_board()
    assert BalancedProtocol.balancer is None
    assert not (tmp_path / "board").exists()


def test_a_replaced_sender_counts_what_it_sends_from_what_its_slot_had_sent(
    tmp_path: Path,
) -> None:
    board = Board(tmp_path, 2)
    sender, receiver = _balancers(tmp_path, 2)
    pairs = [socket.socketpair() for _ in range(4)]
    for ours, _ in pairs[:3]:
        assert sender.pass_on(ours.fileno(), serving=10)
    for came_from, _ in receiver.received():
        receiver.served(1, came_from)  # (three received from slot 0, serving 1 each time)
    sender._lock.close()  # (the sender's process ends; another takes its slot)
    replaced = Balancer.join(board)
    assert replaced is not None and replaced.slot == sender.slot
    assert replaced.pass_on(pairs[3][0].fileno(), serving=10)
    assert replaced.loads() == {receiver.slot: 2}  # (serving 1, and the one on its way)
    for pair in pairs:
        for sock in pair:
            sock.close()
