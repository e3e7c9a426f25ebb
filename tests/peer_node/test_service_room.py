"""Upload bounds: max_upload_bytes by default, and a free-disk reserve that counts the uploads under way."""
import hashlib
import threading

import pytest

from peer_node.config import PeerConfig
from peer_node.errors import QuotaExceeded
from peer_node.folder import SharedFolder
from peer_node.service import PeerService, ServiceLimits
from tests.fixtures.peer import fill_folder

GiB = 1024**3


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def make_service(tmp_path):
    def make(free, **limits):
        folder = SharedFolder(fill_folder(str(tmp_path / "f"), {}), 64 * 1024)
        folder.scan()
        folder.free_bytes = lambda: free  # the disk, not our code
        return PeerService(folder, ServiceLimits(**limits))
    return make


def test_defaults_bound_uploads():
    assert ServiceLimits().max_upload_bytes == PeerConfig().max_upload_bytes == 4 * GiB
    assert ServiceLimits().min_free_bytes == PeerConfig().min_free_bytes == GiB


def test_the_default_limit_refuses_a_5_gib_upload(make_service):
    service = make_service(free=100 * GiB)
    with pytest.raises(QuotaExceeded, match="accepts uploads up to 4294967296 bytes"):
        service.receive("big.bin", 5 * GiB, "a" * 64, iter(()))


@pytest.mark.parametrize("free,size,ok", [
    (GiB + 100, 100, True),
    (GiB + 100, 101, False),
    (GiB, 1, False),
    (10, 1, False),
])
def test_the_reserve_stays_free(make_service, free, size, ok):
    service = make_service(free=free)
    data = b"x" * size
    if ok:
        assert service.receive("a.bin", size, sha(data), iter([data])).size == size
    else:
        with pytest.raises(QuotaExceeded, match=r"bytes must stay free \(min_free_bytes\)"):
            service.receive("a.bin", size, sha(data), iter([data]))


def test_uploads_under_way_count_against_the_room(make_service):
    service = make_service(free=1000, min_free_bytes=0)
    first, second = b"a" * 600, b"b" * 600
    started, release = threading.Event(), threading.Event()

    def slow():
        yield first[:100]
        started.set()
        release.wait(10)
        yield first[100:]

    t = threading.Thread(target=service.receive, args=("one.bin", 600, sha(first), slow()))
    t.start()
    try:
        assert started.wait(10)
        # 100 bytes of the first are on disk (the fake disk does not shrink, so 500 are still booked)
        with pytest.raises(QuotaExceeded, match="uploads under way take 500 more"):
            service.receive("two.bin", 600, sha(second), iter([second]))
    finally:
        release.set()
        t.join(10)
    assert service._incoming_bytes == 0
    assert service.receive("two.bin", 600, sha(second), iter([second])).size == 600
