"""Issue 5 end to end: backup peers, with real directory and peer processes on loopback.

Every integration test starts its own directory (SQLite in tmp_path, lease LEASE s, so peers
beat every LEASE/3 s and each holder is planned for at most that often) and `p2p serve` peers.
The rules these tests pin down are written out in directory_api/replication.py; in short: a
copy whose backup dies is planned again once the death is noticed (lease lapsed or probe
failed), not only after its deadline; a peer that drops a file never gets it copied back; a
withdrawal stops all re-replication of that sha256. The last tests drive an in-process app.
"""
import glob
import json
import os
import re
import time

import pytest
import requests

from peer_node import session
from tests.fixtures.directory import PeerClient, entry
from tests.fixtures.directory import sha as fake_sha
from tests.integration.helpers import holders_of, p2p, sha, wait_for_heartbeats, wait_until

pytestmark = pytest.mark.integration

LEASE = 2.0
PLANNED = re.compile(r"planned copy of (\S+) \((\w+)\) from (\S+) to (\S+)")


def api(directory, path):
    """GET one directory resource; None on 404."""
    r = requests.get(f"{directory.url}/api/v1{path}", timeout=5)
    if r.status_code == 404:
        return None
    r.raise_for_status()
    return r.json()


def replication_of(directory, digest):
    """The replication block of GET /files/{sha256}, or None when no live peer holds it."""
    detail = api(directory, f"/files/{digest}")
    return detail["replication"] if detail else None


def search_holders(directory, query):
    """peer_ids that GET /files?q= names as holders, per sha256."""
    results = api(directory, f"/files?q={query}")["results"]
    return {r["sha256"]: sorted(h["peer_id"] for h in r["holders"]) for r in results}


def plans(directory):
    """(name, from, to) of every copy the directory planned so far, from its log."""
    return [(m.group(1), m.group(3), m.group(4)) for m in map(PLANNED.search, directory.lines) if m]


def pushes(peer):
    """Lines in which a holder reports a push, done or failed."""
    return [line for line in peer.lines if "replicated " in line or "replication of " in line]


def logged_in(*peers):
    """Wait until every peer has logged in to its directory."""
    for peer in peers:
        peer.wait_for_output("logged in to", timeout=15)


def on_disk(peer, name):
    """The bytes of name in peer's shared folder, or None."""
    path = os.path.join(peer.folder, *name.split("/"))
    return open(path, "rb").read() if os.path.exists(path) else None


def session_token(peer):
    """The token of the running peer's directory session (what `p2p get --config` reuses)."""
    return session.read(peer.folder).token


def cpu_seconds(proc):
    """User + system CPU seconds the process has used so far (from /proc/PID/stat)."""
    with open(f"/proc/{proc.pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


# -- 1. the owner dies: the backup serves, the target is restored ---------------------------


def test_owner_crash_backup_serves_and_target_is_restored(directory_factory, peer_factory, tmp_path):
    directory = directory_factory(replication=2, lease=LEASE)
    data = os.urandom(300_000)
    digest = sha(data)
    b = peer_factory(directory.url, peer_id="b")
    c = peer_factory(directory.url, peer_id="c")
    logged_in(b, c)
    a = peer_factory(directory.url, files={"shared/report.pdf": data}, peer_id="a")
    holders = wait_until(lambda: len(h := holders_of(directory.url, digest)) == 2 and h, timeout=15)
    assert "a" in holders
    [backup] = [p for p in holders if p != "a"]
    third = "c" if backup == "b" else "b"
    peer = {"b": b, "c": c}
    assert on_disk(peer[backup], "shared/report.pdf") == data
    assert on_disk(peer[third], "shared/report.pdf") is None  # R = 2: one backup, not two
    a.wait_for_output(rf"replicated shared/report.pdf .* to {backup}", timeout=5)
    # The backup's copy is proven by the push it confirmed; the owner's claim is unproven.
    assert replication_of(directory, digest) == {"target": 2, "live_holders": 2, "pending": [],
                                                 "withdrawn": False, "proven": 1, "unproven": 1, "refuted": 0}

    a.kill()
    killed = time.monotonic()
    # Search filters by lease at query time: a is gone within one lease, with no sweep or report.
    survivors = wait_until(lambda: "a" not in (h := search_holders(directory, "report").get(digest, ["a"])) and h,
                           timeout=LEASE + 2)
    assert time.monotonic() - killed <= LEASE + 1.5
    assert backup in survivors and set(survivors) <= {"b", "c"}

    out = tmp_path / "fetched.pdf"
    r = p2p("get", digest, "--out", out, "--directory", directory.url, "--json",
            "--peer-id", "reader", "--secret", "reader-secret", cwd=tmp_path)  # a client session asks the ticket
    assert r.returncode == 0, r.stderr
    assert sha(out.read_bytes()) == digest
    assert "a" not in json.loads(r.stdout)["sources"]

    # No manual step: the surviving holder is told to copy the file to the third peer.
    wait_until(lambda: holders_of(directory.url, digest) == ["b", "c"], timeout=LEASE + 10)
    assert on_disk(peer[third], "shared/report.pdf") == data
    peer[backup].wait_for_output(rf"replicated shared/report.pdf .* to {third}", timeout=5)
    wait_until(lambda: replication_of(directory, digest)["pending"] == [], timeout=5)
    assert replication_of(directory, digest)["live_holders"] == 2
    assert sorted((src, to) for _, src, to in plans(directory)) == sorted([("a", backup), (backup, third)])


# -- 2. the backup dies mid-copy: planned again, completes elsewhere ------------------------


def test_backup_killed_mid_copy_is_replanned_and_completes_elsewhere(directory_factory, peer_factory):
    directory = directory_factory(replication=2, lease=LEASE)
    data = os.urandom(1_000_000)
    digest = sha(data)
    b = peer_factory(directory.url, peer_id="b")
    c = peer_factory(directory.url, peer_id="c")
    logged_in(b, c)
    # 64 KiB chunks at 250 KB/s: the push takes about 4 s, long enough to kill its target mid-way.
    a = peer_factory(directory.url, files={"big.bin": data}, peer_id="a",
                     args=("--upload-rate-limit", "250000", "--chunk-size", "65536"))
    state = wait_until(lambda: (s := replication_of(directory, digest)) and s["pending"] and s, timeout=15)
    assert state["target"] == 2 and state["live_holders"] == 1
    [copy] = state["pending"]
    assert copy["from_peer_id"] == "a" and copy["to_peer_id"] in ("b", "c")
    victim, other = (b, c) if copy["to_peer_id"] == "b" else (c, b)

    def partial_upload():
        return any(os.path.getsize(p) > 0 for p in glob.glob(os.path.join(victim.folder, ".p2p", "tmp", "upload-*")))

    wait_until(partial_upload, timeout=10, interval=0.02)
    assert replication_of(directory, digest)["pending"][0]["handed_at"] is not None
    victim.kill()
    assert on_disk(victim, "big.bin") is None

    # Rule: once the backup's lease lapses, its copy no longer counts and is planned again on
    # another live peer at the holder's next planning round, long before the copy's deadline.
    wait_until(lambda: holders_of(directory.url, digest) == sorted(["a", other.peer_id]), timeout=LEASE + 12)
    assert on_disk(other, "big.bin") == data
    assert [(src, to) for _, src, to in plans(directory)] == [("a", victim.peer_id), ("a", other.peer_id)]
    a.wait_for_output(rf"replication of {digest[:12]} to {victim.peer_id} failed", timeout=5)
    wait_until(lambda: replication_of(directory, digest)["pending"] == [], timeout=5)
    assert replication_of(directory, digest)["live_holders"] == 2


# -- 3. no eligible backup: under target, reported, no busy loop -----------------------------


@pytest.mark.parametrize("others", [
    pytest.param((), id="alone"),
    pytest.param((("b", ("--no-accept-uploads",)),), id="refuses-uploads"),
    pytest.param((("b", ("--max-upload-bytes", "1000")), ("c", ("--no-accept-uploads",))), id="no-room"),
])
def test_no_eligible_backup_stays_below_target_without_looping(directory_factory, peer_factory, others):
    directory = directory_factory(replication=2, lease=LEASE)
    data = os.urandom(5000)
    digest = sha(data)
    backups = [peer_factory(directory.url, peer_id=pid, args=args) for pid, args in others]
    logged_in(*backups)
    a = peer_factory(directory.url, files={"x.bin": data}, peer_id="a")
    wait_until(lambda: holders_of(directory.url, digest) == ["a"])
    logged_in(a)
    wait_for_heartbeats(directory.url, ["a"], 1)  # the first planning round for a's file
    cpu_before, start = cpu_seconds(directory), time.monotonic()
    # five heartbeats of every peer: a planning round for a at each one that is due
    wait_for_heartbeats(directory.url, ["a"] + [peer.peer_id for peer in backups], 5)
    cpu_used, window = cpu_seconds(directory) - cpu_before, time.monotonic() - start

    assert holders_of(directory.url, digest) == ["a"]
    assert replication_of(directory, digest) == {"target": 2, "live_holders": 1, "pending": [],
                                                 "withdrawn": False, "proven": 0, "unproven": 1, "refuted": 0}
    summary = api(directory, "/replication")
    assert (summary["files_total"], summary["below_target"], summary["at_target"], summary["unplaceable"],
            summary["pending_copies"]) == (1, 1, 0, 1, 0)
    assert plans(directory) == [] and pushes(a) == []  # not one copy handed out
    for peer in backups:
        assert on_disk(peer, "x.bin") is None and "stored x.bin" not in peer.output
    # A few heartbeats a second cost milliseconds; a planning loop would burn a whole core.
    assert cpu_used < 0.5 * window, f"directory used {cpu_used:.2f} s CPU in {window:.2f} s"


# -- 4. R = 1: replication is off -----------------------------------------------------------


def test_r1_copies_nothing(directory_factory, peer_factory):
    directory = directory_factory(replication=1, lease=LEASE)
    data = os.urandom(5000)
    digest = sha(data)
    b = peer_factory(directory.url, peer_id="b")
    logged_in(b)
    a = peer_factory(directory.url, files={"x.bin": data}, peer_id="a")
    wait_until(lambda: holders_of(directory.url, digest) == ["a"])
    wait_for_heartbeats(directory.url, ["a", "b"], 4)
    assert holders_of(directory.url, digest) == ["a"]
    assert on_disk(b, "x.bin") is None
    assert plans(directory) == [] and pushes(a) == []
    assert replication_of(directory, digest) == {"target": 1, "live_holders": 1, "pending": [],
                                                 "withdrawn": False, "proven": 0, "unproven": 1, "refuted": 0}
    summary = api(directory, "/replication")
    assert (summary["at_target"], summary["below_target"], summary["unplaceable"]) == (1, 0, 0)


# -- 5. the owner deletes its file: removed from its folder, DELETE, or withdrawal -----------


def _data_the_owner_would_get_back():
    """Random bytes whose rendezvous order is a > {b, c}: after a drops them, a would win the copy."""
    from directory_api.replication import rendezvous_score

    for _ in range(1000):
        data = os.urandom(20_000)
        score = {p: rendezvous_score(sha(data), p) for p in "abc"}
        if score["a"] > max(score["b"], score["c"]):
            return data
    raise AssertionError("no such data in 1000 tries")


@pytest.mark.parametrize("how, replicated_again", [
    ("folder", True),     # the user deletes the file; the peer's rescan publishes its index without it
    ("delete", True),     # DELETE /peers/a/files/{sha256}
    ("withdraw", False),  # DELETE ...?withdraw=true
], ids=["removed-from-folder", "delete", "withdraw"])
def test_owner_delete_and_withdrawal(directory_factory, peer_factory, how, replicated_again):
    directory = directory_factory(replication=2, lease=LEASE)
    data = _data_the_owner_would_get_back()
    digest = sha(data)
    b = peer_factory(directory.url, peer_id="b")
    c = peer_factory(directory.url, peer_id="c")
    logged_in(b, c)
    a = peer_factory(directory.url, files={"doc.txt": data}, peer_id="a")
    holders = wait_until(lambda: len(h := holders_of(directory.url, digest)) == 2 and h, timeout=15)
    [backup] = [p for p in holders if p != "a"]
    third = {"b": c, "c": b}[backup]

    if how != "folder":
        r = requests.delete(f"{directory.url}/api/v1/peers/a/files/{digest}",
                            params={"withdraw": "true"} if how == "withdraw" else None,
                            headers={"Authorization": f"Bearer {session_token(a)}"}, timeout=5)
        assert r.status_code == 204, r.text
    os.unlink(os.path.join(a.folder, "doc.txt"))  # a's next rescan publishes its index without it
    # a is gone from the holders and the copy stays, as the backup's own file. (When the file
    # is replicated again, the backup may copy it on at its very next heartbeat, so a state of
    # exactly [backup] can be too short to observe.)
    wait_until(lambda: (h := holders_of(directory.url, digest)) and "a" not in h and backup in h, timeout=5)

    if replicated_again:
        # The copy elsewhere is an ordinary file, kept at R like any other, but never on the
        # peer that dropped it: that would undo the user's delete.
        wait_until(lambda: holders_of(directory.url, digest) == sorted([backup, third.peer_id]),
                   timeout=LEASE + 8)
        assert on_disk(third, "doc.txt") == data
    else:
        wait_for_heartbeats(directory.url, [backup], 4)  # several planning rounds of the backup
        assert holders_of(directory.url, digest) == [backup]
        assert on_disk(third, "doc.txt") is None
        assert replication_of(directory, digest) == {"target": 2, "live_holders": 1, "pending": [],
                                                     "withdrawn": True, "proven": 1, "unproven": 0, "refuted": 0}
        summary = api(directory, "/replication")
        assert (summary["below_target"], summary["withdrawn"], summary["unplaceable"]) == (1, 1, 0)
    assert on_disk(a, "doc.txt") is None and "stored doc.txt" not in a.output
    assert [src for _, src, _ in plans(directory)] == (["a", backup] if replicated_again else ["a"])


# -- 6. the backup shares other bytes under the same name -----------------------------------


def test_copy_to_a_backup_with_a_clashing_name_is_stored_under_another_name(directory_factory, peer_factory):
    directory = directory_factory(replication=2, lease=LEASE)
    ours, theirs = os.urandom(5000), os.urandom(5000)
    b = peer_factory(directory.url, files={"notes.txt": theirs}, peer_id="b")
    logged_in(b)
    a = peer_factory(directory.url, files={"notes.txt": ours}, peer_id="a")
    # Each file has exactly one eligible backup: the other peer, where its name is taken.
    wait_until(lambda: holders_of(directory.url, sha(ours)) == ["a", "b"], timeout=LEASE + 8)
    wait_until(lambda: holders_of(directory.url, sha(theirs)) == ["a", "b"], timeout=LEASE + 8)
    assert on_disk(a, "notes.txt") == ours and on_disk(b, "notes.txt") == theirs  # nothing overwritten
    names = {e["sha256"]: e["name"] for e in api(directory, "/peers/b/files")["files"]}
    assert names[sha(theirs)] == "notes.txt" and names[sha(ours)] != "notes.txt"
    assert on_disk(b, names[sha(ours)]) == ours
    assert len(plans(directory)) == 2  # one copy each, no retry after a deadline


# -- 7. files that cannot be placed do not starve the others (in-process directory) ----------


def _entry_with_sha(name, size, wanted):
    """A FileEntry whose made-up sha256 satisfies wanted(sha256)."""
    n = next(i for i in range(10_000) if wanted(fake_sha(f"{name}-{i}")))
    return entry(name, n=f"{name}-{n}", size=size)


def test_unplaceable_files_do_not_starve_a_placeable_one(make_app):
    app = make_app(replication=2, replication_interval_s=0, max_plans_per_heartbeat=2, lease_s=30)
    client = app.test_client()
    # Six files too big for the only backup sort before the one small file that fits there.
    big = [_entry_with_sha(f"big{i}.iso", 10**9, lambda s: s < "8") for i in range(6)]
    small = _entry_with_sha("small.txt", 10, lambda s: s > "f")
    a = PeerClient(client, "a", files=big + [small])
    PeerClient(client, "b", free_bytes=1000)
    handed = []
    for _ in range(40):  # bounded: a starved file would never appear
        handed += a.heartbeat().get_json()["replicate"]
        if handed:
            break
    assert [(h["sha256"], h["to_peer_id"]) for h in handed] == [(small["sha256"], "b")]
    summary = client.get("/api/v1/replication").get_json()
    assert (summary["below_target"], summary["pending_copies"], summary["unplaceable"]) == (7, 1, 6)


def test_a_backup_that_logs_in_again_gets_its_copy_planned_again(make_app):
    client = make_app(replication=2, replication_interval_s=0, lease_s=30).test_client()
    a = PeerClient(client, "a", files=[entry("x.bin", n=1)])
    b = PeerClient(client, "b")
    assert [o["to_peer_id"] for o in a.heartbeat().get_json()["replicate"]] == ["b"]
    assert a.heartbeat().get_json()["replicate"] == []  # handed out once
    b.login()  # b restarted: the upload it was receiving died with the old process
    assert [o["to_peer_id"] for o in a.heartbeat().get_json()["replicate"]] == ["b"]
