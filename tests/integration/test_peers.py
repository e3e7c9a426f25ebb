"""Real `p2p serve` processes against a real directory: transfers, uploads, failures, lifecycle."""
import glob
import json
import os
import signal
import subprocess
import sys

import pytest

from peer_node.client import PeerClient
from peer_node.directory import DirectoryClient
from peer_node.errors import (AlreadyExists, Busy, ChecksumMismatch, InvalidRequest, NotFound,
                              OutOfRange, TicketRefused, UploadRejected)
from tests.fixtures.fake_directory import FakeDirectory
from tests.integration.helpers import (GRPCURL, clean_env, holders_of, live_peers, p2p, sha, wait_until,
                                       write_config)
from tests.procs import ROOT

pytestmark = pytest.mark.integration

SMALL = os.urandom(200_000)
CLIENT = ("--peer-id", "tester", "--secret", "tester-secret")  # a client session asks for the tickets


def test_grpcurl_list_health_listfiles(peer_factory):
    peer = peer_factory(files={"a.txt": b"abc"})
    out = subprocess.run([GRPCURL, "-plaintext", peer.address, "list"], capture_output=True, text=True,
                         timeout=20)
    assert "p2p.v1.P2PService" in out.stdout and "grpc.health.v1.Health" in out.stdout
    out = subprocess.run([GRPCURL, "-plaintext", peer.address, "grpc.health.v1.Health/Check"],
                         capture_output=True, text=True, timeout=20)
    assert '"status": "SERVING"' in out.stdout
    out = subprocess.run([GRPCURL, "-plaintext", peer.address, "p2p.v1.P2PService/ListFiles"],
                         capture_output=True, text=True, timeout=20)
    assert '"name": "a.txt"' in out.stdout
    out = subprocess.run([GRPCURL, "-plaintext", "-d", '{"name": "a.txt", "offset": 1}', peer.address,
                          "p2p.v1.P2PService/Download"], capture_output=True, text=True, timeout=20)
    # without a ticket (tests/integration/test_trust.py downloads with one)
    assert "Unauthenticated" in out.stderr and "only with a ticket" in out.stderr


def test_list_ranged_download_and_hostile_names_over_the_wire(peer_factory):
    fake = FakeDirectory()  # only gives the peer its ticket key: the test mints the tickets
    peer = peer_factory(fake.url, files={"small.bin": SMALL, "sub/x.txt": b"x"})
    peer.wait_for_output(r"logged in to", timeout=15)
    with PeerClient(peer.address, ticket=fake.mint.ticket(sha(SMALL))) as c:
        assert [(f.name, f.size) for f in c.list_files()] == [("small.bin", len(SMALL)), ("sub/x.txt", 1)]
        got = b"".join(d for _, d in c.download(sha256=sha(SMALL), offset=1000, length=5000))
        assert got == SMALL[1000:6000]
        assert b"".join(d for _, d in c.download(name="small.bin", offset=199_000)) == SMALL[199_000:]
        with pytest.raises(OutOfRange):
            list(c.download(name="small.bin", offset=len(SMALL) + 1))
        with pytest.raises(NotFound):
            list(c.download(sha256="0" * 64))
        for name in ("../etc/passwd", "/etc/passwd", "a\\b", ".p2p/hashcache.json", "a//b", "x" * 256):
            with pytest.raises(InvalidRequest, match="unsafe"):
                list(c.download(name=name))
    assert p2p("ls", peer.address, cwd=peer.folder).stdout.count("\n") == 2
    fake.close()


def test_get_by_hash_and_by_name_then_shared(directory_proc, peer_factory, tmp_path):
    peer_factory(directory_proc.url, files={"docs/small.bin": SMALL}, peer_id="src")
    dst = peer_factory(directory_proc.url, peer_id="dst")
    wait_until(lambda: holders_of(directory_proc.url, sha(SMALL)) == ["src"])
    listed = p2p("peers", "--directory", directory_proc.url, cwd=tmp_path)
    assert listed.returncode == 0 and "src" in listed.stdout and dst.address in listed.stdout
    search = p2p("search", "SMALL", "--directory", directory_proc.url, "--json", cwd=tmp_path)
    assert search.returncode == 0 and '"docs/small.bin"' in search.stdout
    out = tmp_path / "by-hash.bin"
    r = p2p("get", sha(SMALL), "--out", out, "--directory", directory_proc.url, *CLIENT, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == SMALL and str(out) in r.stdout
    # by name, into the other peer's folder (its config): it is then indexed and shared
    cfg = write_config(tmp_path / "dst.ini", dst, directory_proc.url)
    r = p2p("get", "docs/small.bin", "--config", cfg, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert open(os.path.join(dst.folder, "docs", "small.bin"), "rb").read() == SMALL
    wait_until(lambda: holders_of(directory_proc.url, sha(SMALL)) == ["dst", "src"])
    missing = p2p("get", "nothing-here.txt", "--directory", directory_proc.url, *CLIENT, cwd=tmp_path)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "no live peer shares" in missing.stderr


def test_resume_from_partial_keeps_its_verified_pieces(directory_proc, peer_factory, tmp_path):
    peer_factory(directory_proc.url, files={"small.bin": SMALL}, env={"P2P_PIECE_SIZE": "64KiB"})
    wait_until(lambda: holders_of(directory_proc.url, sha(SMALL)))
    part = tmp_path / ".p2p" / "partial" / f"{sha(SMALL)}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(SMALL[:123_456])  # one whole 64 KiB piece and part of the next
    r = p2p("-v", "get", sha(SMALL), "--directory", directory_proc.url, "--json", *CLIENT, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "resuming small.bin: 65536 of 200000 bytes already verified" in r.stderr
    assert json.loads(r.stdout)["fetched"] == 200_000 - 65_536
    assert (tmp_path / "small.bin").read_bytes() == SMALL and not part.exists()


def test_uploads_accepted_published_and_rejected(directory_proc, peer_factory, tmp_path):
    peer = peer_factory(directory_proc.url, args=("--max-upload-bytes", "100000"))
    wait_until(lambda: "peer0" in live_peers(directory_proc.url))
    data = os.urandom(50_000)
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    r = p2p("put", src, peer.address, "--name", "in/up.bin", "--directory", directory_proc.url, *CLIENT, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert open(os.path.join(peer.folder, "in", "up.bin"), "rb").read() == data
    wait_until(lambda: holders_of(directory_proc.url, sha(data)) == ["peer0"], timeout=5)
    assert p2p("put", src, peer.address, "--name", "in/up.bin", "--directory", directory_proc.url, *CLIENT,
               cwd=tmp_path).returncode == 0
    tester = DirectoryClient(directory_proc.url)
    tester.login(*CLIENT[1::2])  # a client session: asks for upload tickets to peer0

    def upload(path, name, size, digest):
        ticket, _ = tester.ticket(digest, "upload", "peer0", size)
        with PeerClient(peer.address, ticket=ticket) as c:
            return c.upload(str(path), name, size, digest)

    with pytest.raises(AlreadyExists):
        upload(src, "in/up.bin", 3, sha(b"abc"))
    with pytest.raises(ChecksumMismatch):
        upload(src, "bad-digest.bin", len(data), sha(b"other"))
    with PeerClient(peer.address, ticket=tester.ticket(sha(data), "upload", "peer0")[0]) as c, \
            pytest.raises(TicketRefused, match="another size"):
        c.upload(str(src), "bad-size.bin", len(data) - 1, sha(data))  # the ticket says the indexed size
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 150_000)
    with pytest.raises(Busy, match="accepts uploads up to 100000"):
        upload(big, "big.bin", 150_000, sha(b"\0" * 150_000))
    with pytest.raises(InvalidRequest, match="unsafe"):
        upload(src, "../escape.bin", len(data), sha(data))
    tester.close()
    assert sorted(os.listdir(peer.folder)) == [".p2p", "in"]
    # no refused upload left a temporary file (a rescan may be writing its hash cache there)
    assert [n for n in os.listdir(os.path.join(peer.folder, ".p2p", "tmp")) if n.startswith("upload-")] == []


def test_uploads_disabled(peer_factory, tmp_path):
    peer = peer_factory(args=("--no-accept-uploads",))
    src = tmp_path / "up.bin"
    src.write_bytes(b"data")
    with PeerClient(peer.address) as c, pytest.raises(UploadRejected, match="accept_uploads"):
        c.upload(str(src), "up.bin", 4, sha(b"data"))
    r = p2p("put", src, peer.address, cwd=tmp_path)
    assert r.returncode == 1 and "does not accept uploads" in r.stderr


def test_folder_changes_reach_the_directory(directory_proc, peer_factory):
    peer = peer_factory(directory_proc.url, files={"keep.txt": b"keep"})
    wait_until(lambda: holders_of(directory_proc.url, sha(b"keep")))
    with open(os.path.join(peer.folder, "new.txt"), "wb") as f:
        f.write(b"new file")
    wait_until(lambda: holders_of(directory_proc.url, sha(b"new file")) == ["peer0"])
    os.unlink(os.path.join(peer.folder, "keep.txt"))
    wait_until(lambda: holders_of(directory_proc.url, sha(b"keep")) == [])


def received(folder):
    """Bytes of the partial downloads under folder's work area so far."""
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(folder, ".p2p", "partial", "*")))


def test_holder_killed_mid_download(directory_proc, peer_factory, tmp_path):
    data = os.urandom(3 * 1024 * 1024)
    slow = ("--chunk-size", "64KiB", "--upload-rate-limit", "1MiB")
    pieces = {"P2P_PIECE_SIZE": "256KiB"}
    a = peer_factory(directory_proc.url, files={"big.bin": data}, peer_id="a", args=slow, env=pieces)
    b = peer_factory(directory_proc.url, files={"big.bin": data}, peer_id="b", args=slow, env=pieces)
    wait_until(lambda: holders_of(directory_proc.url, sha(data)) == ["a", "b"])
    cfg = tmp_path / "client.ini"
    cfg.write_text(f"[peer]\npeer_id = b\nsecret = b-secret\nfolder = {b.folder}\n"
                   f"[directory]\nurl = {directory_proc.url}\n")
    out = tmp_path / "got.bin"
    client = subprocess.Popen(
        [sys.executable, "-m", "peer_node", "-v", "get", sha(data), "--out", str(out), "--config", str(cfg),
         "--json"],
        cwd=tmp_path, env=clean_env(PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    first = wait_until(lambda: next((p for p in (a, b) if "sending big.bin" in p.output), None), timeout=15)
    wait_until(lambda: received(tmp_path) >= 128 * 1024, timeout=15, interval=0.02)  # some bytes arrived
    first.kill()
    stdout, stderr = client.communicate(timeout=30)
    assert client.returncode == 0, stderr
    assert out.read_bytes() == data
    other = b if first is a else a
    assert f"holder {first.peer_id}" in stderr and "its pieces go to other holders" in stderr
    assert f"reported {first.peer_id} unreachable" in stderr
    result = json.loads(stdout)
    assert result["holders"][other.peer_id]["verified"] > 0 and result["failed"] == [first.peer_id]
    assert result["fetched"] - len(data) < 2 * 256 * 1024  # only pieces in flight are fetched twice


def test_directory_restart_peer_logs_in_again(directory_factory, peer_factory, tmp_path):
    first = directory_factory()
    port = first.url.rsplit(":", 1)[1]
    peer = peer_factory(first.url, files={"a.txt": b"survives restarts"})
    peer.wait_for_output("logged in to", timeout=10)
    first.stop()
    peer.wait_for_output("directory unreachable", timeout=10)  # its heartbeats fail: it keeps serving
    with PeerClient(peer.address) as c:
        assert [f.name for f in c.list_files()] == ["a.txt"]
    second = directory_factory(extra_args=("--port", port))  # fresh database: our token is unknown
    wait_until(lambda: holders_of(second.url, sha(b"survives restarts")) == ["peer0"], timeout=20)
    assert sum("logged in to" in line for line in peer.lines) >= 2
    # One line per state change, not one per try: "unreachable" never follows itself.
    states = [line for line in peer.lines
              if any(m in line for m in ("unreachable", "answers again", "directory error", "logged in to"))]
    assert any("unreachable" in line for line in states), peer.output
    assert not any("unreachable" in a and "unreachable" in b for a, b in zip(states, states[1:])), peer.output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_logs_out(directory_proc, peer_factory, signum):
    peer = peer_factory(directory_proc.url, files={"a.txt": b"a"})
    wait_until(lambda: live_peers(directory_proc.url) == ["peer0"])
    peer.signal(signum)
    assert peer.proc.wait(timeout=15) == 0
    assert "logged out" in peer.output
    assert live_peers(directory_proc.url) == []
    assert holders_of(directory_proc.url, sha(b"a")) == []


def test_a_burst_of_signals_still_shuts_down_cleanly(directory_proc, peer_factory):
    """Ctrl-C twice, or SIGTERM to a process group whose wrapper passes it on: more signals come
    while the first is handled. (A handler that took a lock could deadlock there; scripts/cluster.py
    did, under make: test_cluster_script. This burst does not hit that window reliably.)"""
    peer = peer_factory(directory_proc.url, files={"a.txt": b"twice"})
    wait_until(lambda: live_peers(directory_proc.url) == ["peer0"])
    for n in range(200):  # a burst, so that some land while the handler of an earlier one runs
        try:
            os.kill(peer.pid, signal.SIGINT if n % 2 else signal.SIGTERM)
        except ProcessLookupError:
            break  # it is gone already
    assert peer.proc.wait(timeout=15) == 0
    assert "logged out" in peer.output
    assert live_peers(directory_proc.url) == []


def test_directory_fail_over_to_the_next_url(directory_proc, peer_factory):
    peer = peer_factory(f"http://127.0.0.1:9,{directory_proc.url}", files={"a.txt": b"fail-over"})
    peer.wait_for_output(f"logged in to {directory_proc.url}", timeout=15)
    wait_until(lambda: holders_of(directory_proc.url, sha(b"fail-over")) == ["peer0"])


def test_wrong_secret_stops_serve_with_one_line(directory_proc, peer_factory, tmp_path):
    """A peer_id registered by someone else cannot be taken over: serve ends with one clear line."""
    owner = peer_factory(directory_proc.url, peer_id="owner")
    owner.wait_for_output("logged in to", timeout=15)
    (tmp_path / "impostor").mkdir()
    r = p2p("serve", "--peer-id", "owner", "--secret", "not-the-secret", "--host", "127.0.0.1",
            "--port", "0", "--folder", tmp_path / "impostor", "--directory", directory_proc.url,
            cwd=tmp_path, timeout=30)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: login refused") and "check peer_id and secret" in last, r.stderr
    assert "Traceback" not in r.stderr
    assert live_peers(directory_proc.url) == ["owner"]
