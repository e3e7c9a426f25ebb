"""Audits (peer_node.audit): our copy against a target peer's range, over real gRPC on loopback."""
import hashlib
import logging
import os
import threading
from concurrent import futures

import grpc
import pytest

from peer_node import audit as audit_module
from peer_node.audit import AuditOrder, Auditor, audit
from peer_node.errors import DirectoryError
from peer_node.folder import SharedFolder
from peer_node.servicer import SERVICE_NAME
from peer_node.wire import encode_chunk
from protos import p2p_pb2
from tests.fixtures.peer import fill_folder, flip_bytes, freeze, hold_slot
from tests.integration.helpers import wait_until

PIECE = 64 * 1024
DATA = os.urandom(5 * PIECE + 321)
SHA = hashlib.sha256(DATA).hexdigest()


class FakeDirectory:
    """Records audit results and unreachable reports (the directory is below the layer under test)."""

    def __init__(self, error=None):
        self.results, self.unreachable, self.error = [], [], error

    def audit_result(self, audit_id, ok, detail=""):
        self.results.append((audit_id, ok, detail))
        if self.error is not None:
            raise self.error

    def report_unreachable(self, peer_id):
        self.unreachable.append(peer_id)
        return "alive"


@pytest.fixture
def mine(tmp_path):
    """The auditor's own folder, holding DATA."""
    folder = SharedFolder(fill_folder(str(tmp_path / "auditor"), {"data.bin": DATA}), PIECE)
    folder.scan()
    return folder


def order(target, offset=PIECE + 10, length=PIECE, audit_id=7, ticket="tkt", peer_id="target"):
    return AuditOrder(audit_id, SHA, peer_id, target if isinstance(target, str) else target.address,
                      offset, length, ticket)


@pytest.fixture
def auditor(mine):
    made = FakeDirectory()
    bad = []
    a = Auditor(mine, made, "auditor", bad.append)
    a.own_bad = bad
    return a


# -- the verdict ---------------------------------------------------------------------------------

def test_a_target_with_the_same_bytes_passes_and_the_result_is_posted(auditor, inproc_peer_factory):
    target = inproc_peer_factory({"copy.bin": DATA})
    verdict = auditor.run(order(target))
    assert verdict.ok is True and auditor.directory.results == [(7, True, verdict.detail)]
    assert f"{PIECE} bytes at offset {PIECE + 10} match" in verdict.detail


def test_a_target_with_rotted_bytes_in_the_range_fails(auditor, inproc_peer_factory):
    target = inproc_peer_factory({"copy.bin": DATA})
    flip_bytes(os.path.join(target.folder.root, "copy.bin"), [PIECE + 500])
    verdict = auditor.run(order(target))
    assert verdict.ok is False and f"from byte {PIECE + 500}" in verdict.detail
    assert auditor.directory.results == [(7, False, verdict.detail)]


def test_a_target_that_lists_the_file_but_lacks_it_fails(auditor, inproc_peer_factory):
    liar = inproc_peer_factory({"other.bin": b"not the file"})
    verdict = auditor.run(order(liar))
    assert verdict.ok is False and "refused a range" in verdict.detail
    assert [ok for _, ok, _ in auditor.directory.results] == [False]


def test_a_busy_target_is_inconclusive_and_nothing_is_posted(auditor, inproc_peer_factory):
    busy = inproc_peer_factory({"copy.bin": DATA}, max_transfers=1)
    slot = hold_slot(busy, SHA)
    try:
        verdict = auditor.run(order(busy))
    finally:
        slot.close()
    assert verdict.ok is None and "busy" in verdict.detail and auditor.directory.results == []


def test_an_unreachable_target_is_inconclusive_and_reported_unreachable(auditor, closed_port):
    verdict = auditor.run(order(f"127.0.0.1:{closed_port}"))
    assert verdict.ok is None and verdict.unreachable
    assert auditor.directory.results == [] and auditor.directory.unreachable == ["target"]


def test_a_frozen_target_meets_the_deadline(auditor, inproc_peer_factory, monkeypatch):
    monkeypatch.setattr(audit_module, "DEADLINE_BASE", 0.3)
    monkeypatch.setattr(audit_module, "DEADLINE_RATE", 10**12)
    frozen = inproc_peer_factory({"copy.bin": DATA})
    thaw = freeze(frozen)
    try:
        verdict = auditor.run(order(frozen))
    finally:
        thaw()
    assert verdict.ok is None and verdict.unreachable and auditor.directory.results == []
    assert "within the 0 s deadline" in verdict.detail or "deadline" in verdict.detail


def test_our_own_rotted_range_is_never_held_against_the_target(auditor, mine, inproc_peer_factory):
    target = inproc_peer_factory({"copy.bin": DATA})
    flip_bytes(os.path.join(mine.root, "data.bin"), [2 * PIECE + 1])  # in the second piece of the range
    verdict = auditor.run(order(target))
    assert verdict.ok is None and verdict.own_copy_bad and auditor.own_bad == [SHA]
    assert auditor.directory.results == []


@pytest.mark.parametrize("offset, length", [(0, PIECE + 1), (len(DATA) - 10, 11)])
def test_a_range_our_copy_cannot_vouch_for_is_skipped(auditor, inproc_peer_factory, offset, length):
    target = inproc_peer_factory({"copy.bin": DATA})
    verdict = auditor.run(order(target, offset=offset, length=length))
    assert verdict.ok is None and not verdict.own_copy_bad and auditor.directory.results == []


def test_an_audit_of_a_file_we_do_not_share_or_of_ourselves_is_skipped(auditor, inproc_peer_factory):
    target = inproc_peer_factory({"copy.bin": DATA})
    assert auditor.run(AuditOrder(1, "0" * 64, "target", target.address, 0, 10)) is None
    assert auditor.run(order(target, peer_id="auditor")) is None
    assert auditor.directory.results == []


@pytest.mark.parametrize("status", [404, 409, 500])
def test_a_refused_result_is_logged_not_raised(mine, inproc_peer_factory, status, caplog):
    target = inproc_peer_factory({"copy.bin": DATA})
    directory = FakeDirectory(DirectoryError("http://d", status, "no"))
    with caplog.at_level(logging.INFO, logger="peer_node.audit"):
        assert Auditor(mine, directory, "auditor", print).run(order(target)).ok is True
    assert "audit 7" in caplog.text


class ScriptedPeer:
    """A P2PService whose Download answers as scripted and records the call's metadata."""

    def __init__(self, mode="honest"):
        self.mode, self.metadata = mode, []
        self.lock, self.running, self.most = threading.Lock(), 0, 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.unary_stream_rpc_method_handler(
            self.download, request_deserializer=p2p_pb2.DownloadRequest.FromString,
            response_serializer=lambda b: b)
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, {"Download": handler}),))
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def download(self, request, context):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            yield from self._answer(request, context)
        finally:
            with self.lock:
                self.running -= 1

    def _answer(self, request, context):
        self.metadata.append(dict(context.invocation_metadata()))
        start, body = request.offset, DATA[request.offset:request.offset + request.length]
        if self.mode == "honest":
            yield encode_chunk(start, body[:1000])
            yield encode_chunk(start + 1000, body[1000:])
        elif self.mode == "misplaced":
            yield encode_chunk(start + 1, body)
        elif self.mode == "extra":
            yield encode_chunk(start, body + b"more")
        elif self.mode == "short":
            yield encode_chunk(start, body[:-1])
        elif self.mode == "malformed":
            yield b"\x12\xff\xff\xff"


@pytest.fixture
def scripted():
    made = []

    def make(mode="honest"):
        made.append(ScriptedPeer(mode))
        return made[-1]

    yield make
    for peer in made:
        peer.server.stop(grace=None)


def test_the_ticket_travels_as_bearer_metadata(mine, scripted):
    peer = scripted()
    assert audit(mine, order(peer.address, ticket="the-ticket")).ok is True
    assert peer.metadata[0]["authorization"] == "Bearer the-ticket"


@pytest.mark.parametrize("mode, reason", [("misplaced", "at offset"), ("extra", "more bytes than asked"),
                                          ("short", f"sent {PIECE - 1} of {PIECE} bytes"),
                                          ("malformed", "broke the protocol")])
def test_a_target_that_breaks_the_protocol_fails(mine, scripted, mode, reason):
    verdict = audit(mine, order(scripted(mode).address))
    assert verdict.ok is False and reason in verdict.detail


# -- orders ---------------------------------------------------------------------------------------

GOOD = {"audit_id": 3, "sha256": SHA, "target_peer_id": "t", "target_address": "127.0.0.1:1",
        "offset": 0, "length": 10, "ticket": "x"}


@pytest.mark.parametrize("change", [
    {"audit_id": None}, {"sha256": "A" * 64}, {"target_peer_id": "bad id"}, {"target_address": ""},
    {"offset": -1}, {"length": 0}, {"length": True}, {"offset": "0"}, {"length": None},
])
def test_malformed_orders_are_refused(change):
    with pytest.raises(ValueError):
        AuditOrder.parse({**GOOD, **change})


def test_a_good_order_parses_and_the_ticket_is_optional():
    assert AuditOrder.parse(GOOD).ticket == "x"
    assert AuditOrder.parse({**GOOD, "ticket": None}).ticket is None
    with pytest.raises(ValueError):
        AuditOrder.parse(["not", "an", "object"])


def test_orders_run_one_at_a_time_once_each_in_the_background(mine, scripted):
    peer = scripted()
    directory = FakeDirectory()
    a = Auditor(mine, directory, "auditor", print)
    a.start()
    try:
        items = [{**GOOD, "audit_id": n, "target_address": peer.address} for n in range(5)]
        a.order(items + items + [{"junk": 1}])  # repeats and junk are skipped
        wait_until(lambda: len(directory.results) == 5, timeout=10)
    finally:
        a.stop()
    assert sorted(r[0] for r in directory.results) == [0, 1, 2, 3, 4] and peer.most == 1
    assert all(ok for _, ok, _ in directory.results)
    assert len(peer.metadata) == 5


def test_more_orders_than_the_queue_holds_are_left_for_later(mine, caplog, monkeypatch):
    monkeypatch.setattr(audit_module, "MAX_PENDING", 2)
    a = Auditor(mine, FakeDirectory(), "auditor", print)  # not started: nothing is taken off the queue
    with caplog.at_level(logging.INFO, logger="peer_node.audit"):
        a.order([{**GOOD, "audit_id": n} for n in range(4)])
    assert a._orders.qsize() == 2 and caplog.text.count("left for later") == 2


def test_stop_cancels_the_audit_in_flight_and_answers_nothing(mine, inproc_peer_factory):
    import time

    frozen = inproc_peer_factory({"copy.bin": DATA})
    thaw = freeze(frozen)
    directory = FakeDirectory()
    a = Auditor(mine, directory, "auditor", print)
    a.start()
    try:
        a.order([{**GOOD, "sha256": SHA, "offset": 0, "length": PIECE, "target_address": frozen.address}])
        wait_until(lambda: a._current is not None, timeout=5)
        started = time.monotonic()
        a.stop(timeout=5)
        assert time.monotonic() - started < 2 and not a._thread.is_alive()
    finally:
        thaw()
    assert directory.results == [] and directory.unreachable == []
