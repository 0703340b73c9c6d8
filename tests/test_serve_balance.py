"""progressor.serve.balance in one process: the board's counters, the choice of a worker, and
a connection's descriptor passed from one worker's balancer to another's."""

from __future__ import annotations

import socket
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from progressor.serve.balance import Balancer, Board, least_loaded


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
