"""The gRPC servicer in-process: every RPC, its status codes, health and reflection."""
import hashlib
import os

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import p2p_pb2, p2p_pb2_grpc
from tests.names import HOSTILE_NAMES

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def peer(inproc_peer_factory):
    return inproc_peer_factory({"data.bin": DATA, "docs/readme.txt": b"read me\n"},
                               chunk_size=64 * 1024, max_upload_bytes=1_000_000)


@pytest.fixture
def stub(peer):
    with grpc.insecure_channel(peer.address) as channel:
        yield p2p_pb2_grpc.P2PServiceStub(channel)


def fetch(stub, **req):
    return list(stub.Download(p2p_pb2.DownloadRequest(**req)))


def upload(stub, name, data, size=None, sha=None, header_first=True):
    header = p2p_pb2.UploadRequest(header=p2p_pb2.FileInfo(
        name=name, size=len(data) if size is None else size,
        sha256=hashlib.sha256(data).hexdigest() if sha is None else sha))
    parts = [p2p_pb2.UploadRequest(data=data[i:i + 50_000]) for i in range(0, len(data), 50_000)]
    msgs = [header] + parts if header_first else parts + [header]
    return stub.Upload(iter(msgs))


def code_of(fn):
    with pytest.raises(grpc.RpcError) as err:
        fn()
    return err.value.code(), err.value.details()


def test_list_files_with_prefix(stub):
    files = stub.ListFiles(p2p_pb2.ListFilesRequest()).files
    assert [(f.name, f.size) for f in files] == [("data.bin", len(DATA)), ("docs/readme.txt", 8)]
    assert [f.name for f in stub.ListFiles(p2p_pb2.ListFilesRequest(prefix="docs/")).files] == ["docs/readme.txt"]


def test_download_by_hash_and_by_name_in_chunks(stub):
    chunks = fetch(stub, sha256=SHA)
    assert b"".join(c.data for c in chunks) == DATA
    assert max(len(c.data) for c in chunks) == 64 * 1024
    assert [c.offset for c in chunks] == list(range(0, len(DATA), 64 * 1024))
    assert b"".join(c.data for c in fetch(stub, name="docs/readme.txt")) == b"read me\n"


def test_ranged_download(stub):
    chunks = fetch(stub, sha256=SHA, offset=1000, length=70_000)
    assert chunks[0].offset == 1000
    assert b"".join(c.data for c in chunks) == DATA[1000:71_000]
    assert b"".join(c.data for c in fetch(stub, name="data.bin", offset=len(DATA) - 5)) == DATA[-5:]
    assert fetch(stub, sha256=SHA, offset=len(DATA)) == []


@pytest.mark.parametrize("req,code", [
    ({"sha256": "0" * 64}, grpc.StatusCode.NOT_FOUND),
    ({"name": "nope.txt"}, grpc.StatusCode.NOT_FOUND),
    ({"sha256": "xyz"}, grpc.StatusCode.INVALID_ARGUMENT),
    ({}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"sha256": SHA, "offset": -1}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"sha256": SHA, "length": -1}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"sha256": SHA, "offset": len(DATA) + 1}, grpc.StatusCode.OUT_OF_RANGE),
    ({"sha256": SHA, "offset": 10, "length": len(DATA)}, grpc.StatusCode.OUT_OF_RANGE),
])
def test_download_errors(stub, req, code):
    assert code_of(lambda: fetch(stub, **req))[0] == code


@pytest.mark.parametrize("name,reason", HOSTILE_NAMES)
def test_hostile_names_refused_on_download_and_upload(stub, name, reason):
    assert code_of(lambda: fetch(stub, name=name))[0] == grpc.StatusCode.INVALID_ARGUMENT
    code, detail = code_of(lambda: upload(stub, name, b"x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "unsafe" in detail


@pytest.mark.parametrize("name", ["/".join(["é" * 127] * 16), "/".join(["😀" * 63] * 16)])
def test_a_long_unknown_name_is_not_found_not_busy(stub, name):
    # the status message quotes the name: at 4 KiB of non-ASCII it would overflow the trailer
    code, detail = code_of(lambda: fetch(stub, name=name))
    assert code == grpc.StatusCode.NOT_FOUND and "no shared file named" in detail
    assert len(detail.encode("utf-8")) <= 1024


def test_symlink_escape_refused_over_the_wire(peer, stub, tmp_path):
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(tmp_path / "outside.txt", os.path.join(peer.folder.root, "leak.txt"))
    peer.folder.scan()
    assert code_of(lambda: fetch(stub, name="leak.txt"))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: upload(stub, "leak.txt", b"x"))[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_upload_accepted_indexed_and_idempotent(peer, stub):
    data = os.urandom(120_000)
    answer = upload(stub, "in/new.bin", data)
    assert (answer.file.name, answer.file.size) == ("in/new.bin", len(data))
    assert open(os.path.join(peer.folder.root, "in", "new.bin"), "rb").read() == data
    assert peer.folder.by_name("in/new.bin").sha256 == hashlib.sha256(data).hexdigest()
    assert upload(stub, "in/new.bin", data).file.sha256 == answer.file.sha256  # same again: fine
    code, detail = code_of(lambda: upload(stub, "in/new.bin", b"different"))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "different content" in detail


@pytest.mark.parametrize("kwargs,code", [
    ({"sha": "0" * 64}, grpc.StatusCode.DATA_LOSS),
    ({"size": 10}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"size": 200_000}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"size": 2_000_000}, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ({"sha": "nothex"}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"size": -1}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"header_first": False}, grpc.StatusCode.INVALID_ARGUMENT),
])
def test_upload_rejected_leaves_nothing(peer, stub, kwargs, code):
    data = os.urandom(100_000)
    assert code_of(lambda: upload(stub, "rejected.bin", data, **kwargs))[0] == code
    assert not os.path.exists(os.path.join(peer.folder.root, "rejected.bin"))
    assert os.listdir(peer.folder.tmp_dir) == []


def test_upload_refused_when_disabled(inproc_peer_factory):
    peer = inproc_peer_factory({}, accept_uploads=False)
    with grpc.insecure_channel(peer.address) as channel:
        code, detail = code_of(lambda: upload(p2p_pb2_grpc.P2PServiceStub(channel), "a", b"a"))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "accept_uploads" in detail


def test_too_many_transfers(inproc_peer_factory):
    peer = inproc_peer_factory({"f": b"x" * 200_000}, max_transfers=1, chunk_size=1024,
                               upload_rate_limit=100_000)
    with grpc.insecure_channel(peer.address) as channel:
        stub = p2p_pb2_grpc.P2PServiceStub(channel)
        slow = stub.Download(p2p_pb2.DownloadRequest(name="f"))
        next(slow)  # holds the only slot
        assert code_of(lambda: fetch(stub, name="f"))[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
        slow.cancel()


def test_health_and_reflection(peer):
    with grpc.insecure_channel(peer.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "p2p.v1.P2PService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = [s.name for a in answers for s in a.list_services_response.service]
        assert "p2p.v1.P2PService" in names and "grpc.health.v1.Health" in names


def test_rate_limit_slows_download(inproc_peer_factory):
    import time
    peer = inproc_peer_factory({"f": b"x" * 100_000}, chunk_size=10_000, upload_rate_limit=400_000)
    with grpc.insecure_channel(peer.address) as channel:
        t0 = time.monotonic()
        list(p2p_pb2_grpc.P2PServiceStub(channel).Download(p2p_pb2.DownloadRequest(name="f")))
        assert time.monotonic() - t0 >= 0.2


def test_the_rate_limit_is_the_peers_for_all_its_streams_together(inproc_peer_factory):
    """Four downloads at once share one upload_rate_limit: together they take four times one alone."""
    from tests.fixtures.threads import run_together
    peer = inproc_peer_factory({"f": b"x" * 100_000}, chunk_size=10_000, upload_rate_limit=400_000)
    with grpc.insecure_channel(peer.address) as channel:
        stub = p2p_pb2_grpc.P2PServiceStub(channel)
        sizes = []

        def download():
            sizes.append(sum(len(c.data) for c in stub.Download(p2p_pb2.DownloadRequest(name="f"), timeout=30)))

        took = run_together(download, 4)
    assert sizes == [100_000] * 4
    assert took >= 0.9  # 400 kB at 400 kB/s; a limit per stream would let them finish in 0.25 s


def test_upload_under_a_file_used_as_directory_is_invalid(peer, stub):
    code, detail = code_of(lambda: upload(stub, "data.bin/inner.txt", b"x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "cannot store" in detail
    assert os.listdir(peer.folder.tmp_dir) == []
