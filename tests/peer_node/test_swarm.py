"""The swarm engine against in-process peers on loopback: many holders, bad ones, cancel and resume."""
import hashlib
import os
import random
import threading
import time
from concurrent import futures

import grpc
import pytest

from peer_node import swarm
from peer_node.client import RECEIVE_WINDOW, PeerClient
from peer_node.errors import Interrupted, NoHolders
from peer_node.servicer import SERVICE_NAME
from peer_node.swarm_state import CancelToken
from peer_node.transfer import Holder, download, partial_path, record_path
from peer_node.wire import encode_chunk
from protos import p2p_pb2
from tests.fixtures.peer import flip_bytes, freeze, hold_slot, record_of

PIECE = 64 * 1024  # the in-process peers' piece size
DATA = os.urandom(40 * PIECE + 999)
SHA = hashlib.sha256(DATA).hexdigest()


class Calls:
    """Thread-safe record of callback invocations."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []

    def __call__(self, holder, arg):
        with self.lock:
            self.calls.append((holder.peer_id, arg))

    @property
    def ids(self):
        return [pid for pid, _ in self.calls]


def start(factory, name="data.bin", data=DATA, **limits):
    return factory({name: data}, **limits)


def holder(peer, peer_id):
    return Holder(peer_id, peer.address)


def test_four_holders_one_corrupt_one_frozen_one_busy(inproc_peer_factory, tmp_path):
    good = start(inproc_peer_factory, chunk_size=16 * 1024, upload_rate_limit=2 * 1024 * 1024)
    corrupt = start(inproc_peer_factory, chunk_size=16 * 1024)
    flip_bytes(corrupt.folder.resolve("data.bin"), range(100, len(DATA), PIECE))  # every piece
    frozen = start(inproc_peer_factory)
    thaw = freeze(frozen)
    busy = start(inproc_peer_factory, max_transfers=1)
    slot = hold_slot(busy, SHA)
    corrupted, unreachable = Calls(), Calls()
    try:
        rec = record_of(good, "data.bin", [holder(corrupt, "corrupt"), holder(frozen, "frozen"),
                                           holder(busy, "busy"), holder(good, "good")])
        result = download(rec, str(tmp_path / "out.bin"), on_corrupt=corrupted,
                          on_unreachable=unreachable, stall_timeout=0.3)
    finally:
        slot.close()
        thaw()
    assert (tmp_path / "out.bin").read_bytes() == DATA
    assert set(result.banned) == {"corrupt"} and "failed verification" in result.banned["corrupt"]
    assert corrupted.calls == [("corrupt", SHA)]
    assert unreachable.ids == ["frozen"] and result.stalled == 1  # the download outlasts the stall
    assert result.busy >= 1 and result.holders["busy"]["verified"] == 0
    assert result.sources == ["good"] and result.holders["good"]["verified"] == len(DATA)
    assert result.fetched - len(DATA) <= 2 * PIECE  # at most the bad piece and one lost copy
    assert result.refetched["failed_verification"] == 1
    assert not os.path.exists(partial_path(str(tmp_path / "out.bin"), SHA))
    assert not os.path.exists(record_path(partial_path(str(tmp_path / "out.bin"), SHA)))


def test_one_holder_is_one_download_call(inproc_peer_factory, tmp_path):
    peer = start(inproc_peer_factory, chunk_size=48 * 1024)  # chunks straddle piece boundaries
    calls = []
    real = peer.service.download
    peer.service.download = lambda *a, **kw: calls.append(a) or real(*a, **kw)
    result = download(record_of(peer, "data.bin", [holder(peer, "p")]), str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == DATA
    assert calls == [(SHA, "", 0, len(DATA))]  # no per-piece round trips
    assert result.fetched == len(DATA) and result.sources == ["p"]


@pytest.mark.parametrize("holders, parallel, window", [(1, 4, RECEIVE_WINDOW), (2, 4, RECEIVE_WINDOW // 2),
                                                      (4, 4, RECEIVE_WINDOW // 4), (4, 1, RECEIVE_WINDOW)])
def test_the_sources_share_one_receive_window(inproc_peer_factory, tmp_path, monkeypatch, holders, parallel, window):
    windows = []

    class Spy(PeerClient):
        def __init__(self, *args, window, **kwargs):
            windows.append(window)
            super().__init__(*args, window=window, **kwargs)

    monkeypatch.setattr(swarm, "PeerClient", Spy)
    peers = [start(inproc_peer_factory, chunk_size=16 * 1024) for _ in range(holders)]
    result = download(record_of(peers[0], "data.bin", [holder(p, f"h{n}") for n, p in enumerate(peers)]),
                      str(tmp_path / "out"), parallel=parallel)
    assert (tmp_path / "out").read_bytes() == DATA and result.fetched >= len(DATA)
    assert windows and set(windows) == {window}


def test_faster_holders_take_more_pieces(inproc_peer_factory, tmp_path):
    fast = start(inproc_peer_factory, chunk_size=16 * 1024)
    slow = start(inproc_peer_factory, chunk_size=16 * 1024, upload_rate_limit=256 * 1024)
    result = download(record_of(fast, "data.bin", [holder(slow, "slow"), holder(fast, "fast")]),
                      str(tmp_path / "out"), parallel=2)
    assert (tmp_path / "out").read_bytes() == DATA
    assert result.holders["fast"]["verified"] > 4 * result.holders["slow"]["verified"]
    assert result.fetched - len(DATA) <= 2 * PIECE


def test_endgame_a_slow_last_piece_is_fetched_again_and_the_slow_copy_cancelled(inproc_peer_factory, tmp_path):
    fast = start(inproc_peer_factory, chunk_size=16 * 1024)
    slow = start(inproc_peer_factory, chunk_size=4 * 1024, upload_rate_limit=16 * 1024)  # 4 s a piece
    started = time.monotonic()
    result = download(record_of(fast, "data.bin", [holder(slow, "slow"), holder(fast, "fast")]),
                      str(tmp_path / "out"), parallel=2)
    assert (tmp_path / "out").read_bytes() == DATA
    assert time.monotonic() - started < 3.0  # nobody waited for the slow holder's piece
    assert result.holders["fast"]["verified"] == len(DATA)
    assert result.fetched - len(DATA) < PIECE  # the slow copy, cancelled part-way
    assert not result.failed  # losing a race is no failure


def test_lying_holder_is_banned_at_its_first_piece(inproc_peer_factory, tmp_path):
    other = os.urandom(len(DATA))
    liar = inproc_peer_factory({"data.bin": other}, chunk_size=16 * 1024)
    entry = liar.folder.by_name("data.bin")  # it claims DATA's digest for other bytes
    entry.sha256 = SHA
    good = start(inproc_peer_factory, chunk_size=16 * 1024, upload_rate_limit=4 * 1024 * 1024)
    corrupted = Calls()
    result = download(record_of(good, "data.bin", [holder(liar, "liar"), holder(good, "good")]),
                      str(tmp_path / "out"), on_corrupt=corrupted)
    assert (tmp_path / "out").read_bytes() == DATA
    assert corrupted.ids == ["liar"] and result.holders["liar"]["received"] <= PIECE


class BadPeer:
    """A P2PService of our own whose Download misbehaves in one way (below the layer under test)."""

    def __init__(self, mode):
        self.mode = mode
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                                  options=[("grpc.max_send_message_length", 64 * 1024 * 1024)])
        handler = grpc.unary_stream_rpc_method_handler(
            self.download, request_deserializer=p2p_pb2.DownloadRequest.FromString,
            response_serializer=lambda b: b)
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, {"Download": handler}),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def download(self, request, context):
        start, length = request.offset, request.length or len(DATA) - request.offset
        body = DATA[start:start + length]
        if self.mode == "misplaced":
            yield encode_chunk(start + 1, body[:1000])
        elif self.mode == "extra":
            yield encode_chunk(start, body + b"more than asked")
        elif self.mode == "oversize":
            yield encode_chunk(start, body + b"\0" * (8 * 1024 * 1024 + 1 - len(body)))
        elif self.mode == "over the limit":
            yield encode_chunk(start, b"\0" * (9 * 1024 * 1024))
        elif self.mode == "malformed":
            yield b"\x12\xff\xff\xff"  # a data field longer than the message
        else:
            raise AssertionError(self.mode)


@pytest.mark.parametrize("mode, reason", [
    ("misplaced", "at offset"),
    ("extra", "more bytes than asked"),
    ("oversize", "larger than a piece"),
    ("over the limit", "size limit"),
    ("malformed", "malformed FileChunk"),
])
def test_holder_breaking_the_protocol_is_banned(inproc_peer_factory, tmp_path, mode, reason):
    bad = BadPeer(mode)
    try:
        good = start(inproc_peer_factory, chunk_size=16 * 1024, upload_rate_limit=4 * 1024 * 1024)
        corrupted = Calls()
        rec = record_of(good, "data.bin", [Holder("bad", f"127.0.0.1:{bad.port}"), holder(good, "good")])
        result = download(rec, str(tmp_path / "out"), on_corrupt=corrupted)
    finally:
        bad.server.stop(0)
    assert (tmp_path / "out").read_bytes() == DATA
    assert corrupted.ids == ["bad"] and reason in result.banned["bad"]
    assert result.holders["bad"]["verified"] == 0


def test_busy_holder_is_retried_not_reported(inproc_peer_factory, tmp_path):
    peer = start(inproc_peer_factory, max_transfers=1)
    slot = hold_slot(peer, SHA)
    real = peer.service.download

    def slow_to_answer(*args, **kwargs):  # a loaded peer: each answer takes two thirds of the stall timeout
        time.sleep(0.2)
        return real(*args, **kwargs)

    peer.service.download = slow_to_answer
    unreachable = Calls()
    busy_since = []

    def on_progress(p):
        if dict((pid, state) for pid, state, _ in p.holders).get("p") == "busy":
            busy_since.append(busy_since[0] if busy_since else time.monotonic())
            if time.monotonic() - busy_since[0] > 1.0:  # busy for longer than the stall timeout
                slot.close()  # the other transfer ends: the next try gets the slot

    result = download(record_of(peer, "data.bin", [holder(peer, "p")]), str(tmp_path / "out"),
                      on_progress=on_progress, on_unreachable=unreachable, stall_timeout=0.3,
                      give_up_after=5.0)
    assert (tmp_path / "out").read_bytes() == DATA
    assert result.busy >= 3 and unreachable.calls == [] and not result.failed and result.stalled == 0


def test_nobody_delivering_ends_the_download_with_the_partial_kept(inproc_peer_factory, tmp_path):
    peer = start(inproc_peer_factory, max_transfers=1)
    slot = hold_slot(peer, SHA)
    started = time.monotonic()
    try:
        with pytest.raises(NoHolders, match="no holder sent anything for 1 s.*p busy.*resume"):
            download(record_of(peer, "data.bin", [holder(peer, "p")]), str(tmp_path / "out"),
                     give_up_after=1.0)
    finally:
        slot.close()
    assert time.monotonic() - started < 5
    assert os.path.exists(partial_path(str(tmp_path / "out"), SHA))


def test_frozen_only_holder_is_cancelled_and_reported(inproc_peer_factory, tmp_path):
    peer = start(inproc_peer_factory)
    thaw = freeze(peer)
    unreachable = Calls()
    try:
        with pytest.raises(NoHolders, match="p stalled"):
            download(record_of(peer, "data.bin", [holder(peer, "p")]), str(tmp_path / "out"),
                     on_unreachable=unreachable, stall_timeout=0.3)
    finally:
        thaw()
    assert unreachable.ids == ["p"] and "sent nothing for 0.3 s" in str(unreachable.calls[0][1])


def test_cancel_stops_within_a_second_and_keeps_the_partial(inproc_peer_factory, tmp_path):
    peer = start(inproc_peer_factory, chunk_size=8 * 1024, upload_rate_limit=256 * 1024)
    token = CancelToken()
    dest = str(tmp_path / "out")
    asked = {}

    def on_progress(p):
        if p.done >= 4 * PIECE and not token.cancelled:
            asked["at"] = time.monotonic()
            threading.Thread(target=token.cancel).start()  # from another thread, as a signal would

    with pytest.raises(Interrupted, match="kept in .*run the same command again") as caught:
        download(record_of(peer, "data.bin", [holder(peer, "p")]), dest, on_progress=on_progress,
                 cancel=token)
    assert time.monotonic() - asked["at"] < 1.0
    part = partial_path(dest, SHA)
    assert os.path.exists(part) and os.path.exists(record_path(part))
    kept = caught.value.result
    assert kept.fetched >= 4 * PIECE and not kept.failed  # nobody is blamed for our own cancel
    fast = start(inproc_peer_factory)
    again = download(record_of(fast, "data.bin", [holder(fast, "fast")]), dest)
    assert open(dest, "rb").read() == DATA and again.resumed_bytes >= 4 * PIECE


def test_interrupted_at_random_points_then_rerun_until_done(inproc_peer_factory, tmp_path):
    a = start(inproc_peer_factory, chunk_size=8 * 1024, upload_rate_limit=2 * 1024 * 1024)
    b = start(inproc_peer_factory, chunk_size=8 * 1024, upload_rate_limit=2 * 1024 * 1024)
    rec = record_of(a, "data.bin", [holder(a, "a"), holder(b, "b")])
    dest = str(tmp_path / "out")
    rng = random.Random(11)
    fetched, interruptions = 0, 0
    for _ in range(30):
        token = CancelToken()
        stop_at = rng.randrange(0, len(DATA) // 4)
        try:
            result = download(rec, dest, cancel=token, parallel=2,
                              on_progress=lambda p: p.done >= stop_at and token.cancel())
        except Interrupted as exc:
            interruptions += 1
            fetched += exc.result.fetched
            assert os.path.exists(record_path(partial_path(dest, SHA)))  # resumable
            continue
        fetched += result.fetched
        break
    assert open(dest, "rb").read() == DATA and interruptions >= 2
    assert fetched <= len(DATA) + 2 * PIECE * interruptions  # one piece per worker per interruption


def test_a_damaged_recorded_piece_is_fetched_again_alone(inproc_peer_factory, tmp_path):
    peer = start(inproc_peer_factory, chunk_size=8 * 1024, upload_rate_limit=1024 * 1024)
    rec = record_of(peer, "data.bin", [holder(peer, "p")])
    dest = str(tmp_path / "out")
    token = CancelToken()
    with pytest.raises(Interrupted):
        download(rec, dest, cancel=token, on_progress=lambda p: p.done >= 20 * PIECE and token.cancel())
    part = partial_path(dest, SHA)
    flip_bytes(part, [3 * PIECE + 5])  # a recorded piece rots
    progress = []
    result = download(rec, dest, on_progress=progress.append)
    assert open(dest, "rb").read() == DATA
    assert result.refetched == {"failed_verification": 0, "stale_record": 1}
    assert result.fetched == len(DATA) - result.resumed_bytes  # the rotten piece and the rest, no more
    assert result.resumed_bytes >= 19 * PIECE
    assert progress[-1].total == progress[-1].done == result.fetched  # this run's bytes only


def test_a_full_disk_ends_the_download_with_one_error_and_no_hang(inproc_peer_factory, tmp_path, monkeypatch):
    import errno

    import peer_node.writer
    from peer_node.errors import P2PError

    peer = start(inproc_peer_factory, chunk_size=16 * 1024)
    real = peer_node.writer.write_at
    written = []

    def fills_up(fd, offset, views):  # the disk, below the layer under test
        if len(written) >= 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(offset)
        real(fd, offset, views)

    monkeypatch.setattr(peer_node.writer, "write_at", fills_up)
    dest = str(tmp_path / "out")
    started = time.monotonic()
    with pytest.raises(P2PError, match="No space left on device; the verified pieces are kept"):
        download(record_of(peer, "data.bin", [holder(peer, "p")]), dest)
    assert time.monotonic() - started < 5
    monkeypatch.setattr(peer_node.writer, "write_at", real)
    again = download(record_of(peer, "data.bin", [holder(peer, "p")]), dest)
    assert again.resumed_bytes == 3 * PIECE and open(dest, "rb").read() == DATA
