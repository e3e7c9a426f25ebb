"""Tickets over gRPC, in-process: Download and Upload need one, ListFiles and Health do not, refusals say why."""
import hashlib
import os
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from peer_node.client import PeerClient
from peer_node.errors import TicketRefused, TicketRequired
from protos import p2p_pb2, p2p_pb2_grpc, tickets
from tests.fixtures.tickets import Mint

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
NEW = b"a new file\n"
NEW_SHA = hashlib.sha256(NEW).hexdigest()


@pytest.fixture
def peer(inproc_peer_factory, admission):
    return inproc_peer_factory({"data.bin": DATA}, chunk_size=64 * 1024, max_transfers=2,
                               admission=admission, max_upload_bytes=1_000_000)


@pytest.fixture
def channel(peer):
    with grpc.insecure_channel(peer.address) as channel:
        yield channel


def fetch(channel, bearer=None, **req):
    stub = p2p_pb2_grpc.P2PServiceStub(channel)
    md = (("authorization", bearer),) if bearer else None
    return b"".join(c.data for c in stub.Download(p2p_pb2.DownloadRequest(**req), metadata=md))


def upload(channel, bearer=None, data=NEW, name="new.txt", size=None, header=True):
    stub = p2p_pb2_grpc.P2PServiceStub(channel)
    md = (("authorization", bearer),) if bearer else None
    head = [p2p_pb2.UploadRequest(header=p2p_pb2.FileInfo(
        name=name, size=len(data) if size is None else size, sha256=hashlib.sha256(data).hexdigest()))]
    return stub.Upload(iter((head if header else []) + [p2p_pb2.UploadRequest(data=data)]), metadata=md, timeout=10)


def status(fn):
    with pytest.raises(grpc.RpcError) as err:
        fn()
    return err.value.code(), err.value.details()


def test_list_files_and_health_need_no_ticket(channel):
    files = p2p_pb2_grpc.P2PServiceStub(channel).ListFiles(p2p_pb2.ListFilesRequest()).files
    assert [f.name for f in files] == ["data.bin"]
    answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("req", [{"sha256": SHA}, {"name": "data.bin"}, {"sha256": "0" * 64}, {"name": "nope"}])
def test_download_without_a_ticket_is_unauthenticated_before_any_lookup(channel, req):
    code, detail = status(lambda: fetch(channel, **req))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "only with a ticket" in detail and "authorization: Bearer" in detail


def test_download_with_a_ticket_by_hash_and_by_name(channel, mint):
    assert fetch(channel, mint.bearer(SHA), sha256=SHA) == DATA
    assert fetch(channel, mint.bearer(SHA), name="data.bin", offset=10, length=5) == DATA[10:15]


@pytest.mark.parametrize("make,reason", [
    (lambda m: m.bearer(NEW_SHA), "another file"),
    (lambda m: m.bearer(SHA, ttl=-100), "expired"),
    (lambda m: Mint().bearer(SHA), "does not know"),
    (lambda m: m.bearer(SHA, tickets.UPLOAD, aud="me"), "another purpose"),
    (lambda m: m.bearer(SHA, aud="other-peer"), "another peer"),
])
@pytest.mark.parametrize("by", ["sha256", "name"])
def test_download_with_a_bad_ticket_is_permission_denied(channel, mint, make, reason, by):
    req = {"sha256": SHA} if by == "sha256" else {"name": "data.bin"}
    code, detail = status(lambda: fetch(channel, make(mint), **req))
    assert code == grpc.StatusCode.PERMISSION_DENIED and reason in detail


def test_upload_without_a_ticket_is_refused_at_once_and_stores_nothing(channel, peer):
    for header in (True, False):  # without a header too: a stranger does not get to wait for one
        started = time.monotonic()
        code, detail = status(lambda: upload(channel, header=header))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "only with a ticket" in detail
        assert time.monotonic() - started < 2
    assert not os.path.exists(os.path.join(peer.folder.root, "new.txt"))
    assert os.listdir(peer.folder.tmp_dir) == []


@pytest.mark.parametrize("make,size,reason", [
    (lambda m: m.bearer(NEW_SHA, tickets.UPLOAD, aud="someone-else", size=len(NEW)), None, "another peer"),
    (lambda m: m.bearer(NEW_SHA, tickets.UPLOAD, size=len(NEW)), None, "another peer"),
    (lambda m: m.bearer(SHA, tickets.UPLOAD, aud="me", size=len(NEW)), None, "another file"),
    (lambda m: m.bearer(NEW_SHA, tickets.UPLOAD, aud="me", size=len(NEW) + 1), None, "another size"),
    (lambda m: m.bearer(NEW_SHA, tickets.UPLOAD, aud="me", size=len(NEW)), len(NEW) + 1, "another size"),
    (lambda m: m.bearer(NEW_SHA, aud="me"), None, "another purpose"),
    (lambda m: m.bearer(NEW_SHA, tickets.UPLOAD, aud="me", size=len(NEW), ttl=-100), None, "expired"),
])
def test_upload_with_a_bad_ticket_is_permission_denied(channel, peer, mint, make, size, reason):
    code, detail = status(lambda: upload(channel, make(mint), size=size))
    assert code == grpc.StatusCode.PERMISSION_DENIED and reason in detail
    assert not os.path.exists(os.path.join(peer.folder.root, "new.txt"))


def test_upload_with_its_ticket_is_stored(channel, peer, mint):
    answer = upload(channel, mint.bearer(NEW_SHA, tickets.UPLOAD, aud="me", size=len(NEW)))
    assert answer.file.sha256 == NEW_SHA
    with open(os.path.join(peer.folder.root, "new.txt"), "rb") as f:
        assert f.read() == NEW


def test_refused_tickets_take_no_transfer_slot(channel, peer, mint):
    for _ in range(10):
        status(lambda: fetch(channel, Mint().bearer(SHA), sha256=SHA))
        status(lambda: upload(channel, mint.bearer(NEW_SHA, tickets.UPLOAD, aud="x", size=len(NEW))))
    assert peer.service._slots._value == 2
    assert fetch(channel, mint.bearer(SHA), sha256=SHA) == DATA


def test_peer_client_sends_its_ticket_and_translates_refusals(peer, mint):
    with PeerClient(peer.address) as c, pytest.raises(TicketRequired, match="only with a ticket"):
        list(c.download(sha256=SHA))
    with PeerClient(peer.address, ticket=mint.ticket(NEW_SHA)) as c, pytest.raises(TicketRefused, match="another file"):
        list(c.download(sha256=SHA))
    renewed = []
    with PeerClient(peer.address, ticket=lambda: renewed.append(1) or mint.ticket(SHA)) as c:
        assert b"".join(bytes(d) for _, d in c.download(sha256=SHA)) == DATA
        assert b"".join(bytes(d) for _, d in c.download(sha256=SHA, length=3)) == DATA[:3]
    assert renewed == [1, 1]  # asked once per call
