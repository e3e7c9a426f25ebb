"""The directory and the peer judge every file name alike: one table, both sides, one verdict."""
import pytest

from directory_api.bodies import SURROGATE_REFUSAL
from peer_node.errors import UnsafeName
from peer_node.folder import SharedFolder, check_name
from tests.fixtures.directory import entry
from tests.names import NAME_VERDICT_IDS, NAME_VERDICTS, PARTIAL


def directory_verdict(peer, name):
    """None when the directory indexes name, else the problem's detail."""
    r = peer.put_files([entry(name, n="content")])  # n: a surrogate cannot be hashed into a digest
    if r.status_code == 200:
        listed = [f["name"] for f in peer.client.get(f"/api/v1/peers/{peer.peer_id}/files").get_json()["files"]]
        assert listed == [name]
        return None
    problem = r.get_json()
    assert r.status_code == 400 and problem["field"] == "files[0].name", problem
    return problem["detail"]


def peer_verdict(check, name):
    """None when check(name) accepts name, else the UnsafeName's reason."""
    try:
        check(name)
    except UnsafeName as exc:
        return exc.reason
    return None


@pytest.mark.parametrize("name,reason", NAME_VERDICTS, ids=NAME_VERDICT_IDS)
def test_directory_and_peer_reach_the_same_verdict(peer_client, tmp_path, name, reason):
    directory = directory_verdict(peer_client("a"), name)
    checked = peer_verdict(check_name, name)
    resolved = peer_verdict(SharedFolder(str(tmp_path / "share")).resolve, name)
    if reason is None:
        assert (directory, checked, resolved) == (None, None, None)
    else:
        assert checked is not None and reason in checked
        assert resolved == checked
        if any("\ud800" <= c <= "\udfff" for c in name):
            # refused by the body limits (directory_api/bodies.py) before the name rule runs: no
            # string of any body may hold a lone surrogate
            assert directory == f"files[0].name: {SURROGATE_REFUSAL}"
        else:
            assert directory == f"files[0].name: the name {checked}"


@pytest.mark.parametrize("name", [".p2p/partial/" + PARTIAL, "sub/.p2p/partial/" + PARTIAL, "a/b/.P2P/x"])
def test_every_file_entry_refuses_work_area_names(client, peer_client, name):
    a = peer_client("a", files=[entry("kept")])
    files = [entry("fine.txt"), entry(name)]
    login = client.post("/api/v1/login", json={"peer_id": "a", "secret": a.secret, "grpc_address": a.address,
                                               "files": files})
    for r in (login, a.put_files(files), a.add_files(files)):
        assert r.status_code == 400 and r.get_json()["field"] == "files[1].name", r.get_json()
        assert "work area" in r.get_json()["detail"]
    assert [f["name"] for f in client.get("/api/v1/peers/a/files").get_json()["files"]] == ["kept"]
