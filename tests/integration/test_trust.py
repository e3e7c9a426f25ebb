"""Issue 12 against real directory processes: the login limiter across processes, HTTPS under gunicorn."""
import pytest
import requests

pytestmark = pytest.mark.integration


def test_brute_force_gets_429_across_processes_and_workers(tmp_path, directory_factory):
    """Two directories of two gunicorn workers each on one database: five wrong secrets in all, then 429."""
    db = f"sqlite:///{tmp_path}/shared.db"
    urls = [directory_factory(database=db, workers=2).url + "/api/v1" for _ in range(2)]
    good = {"peer_id": "victim", "secret": "right", "grpc_address": "127.0.0.1:50051"}
    assert requests.post(f"{urls[0]}/login", json=good, timeout=10).status_code == 200
    codes = []
    for attempt in range(8):  # a fresh connection each: any worker of either process may answer
        r = requests.post(f"{urls[attempt % 2]}/login", json={**good, "secret": f"guess-{attempt}"}, timeout=10)
        codes.append(r.status_code)
    assert codes == [401] * 5 + [429] * 3
    refused = requests.post(f"{urls[1]}/login", json=good, timeout=10)
    assert refused.status_code == 429 and refused.headers["Content-Type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


# --- HTTPS under gunicorn ----------------------------------------------------------------------

HTTPS_READY = r"directory listening on (https://\S+)"


@pytest.fixture
def network_certs(tmp_path):
    """A local CA and the directory's certificate (peer_node/certs.py), and a second, foreign CA."""
    from peer_node import certs

    ca, directory = certs.write_network(tmp_path / "certs", [])[:2]
    foreign = certs.write_network(tmp_path / "foreign", [])[0]
    return {"ca": ca.cert, "cert": directory.cert, "key": directory.key, "foreign_ca": foreign.cert}


def _https_directory(tmp_path, network_certs, *extra):
    from tests.procs import ServerProcess, python_module

    proc = ServerProcess(python_module("directory_api", "--host", "127.0.0.1", "--port", "0",
                                       "--database", f"sqlite:///{tmp_path}/tls.db", "--workers", "1",
                                       "--certfile", network_certs["cert"], "--keyfile", network_certs["key"],
                                       *extra), HTTPS_READY)
    proc.url = proc.match.group(1)
    return proc


def test_the_directory_serves_https_verified_against_the_network_ca(tmp_path, network_certs):
    proc = _https_directory(tmp_path, network_certs)
    try:
        api = proc.url + "/api/v1"
        assert requests.get(f"{api}/health", verify=network_certs["ca"], timeout=10).json() == {"status": "ok"}
        login = requests.post(f"{api}/login", json={"peer_id": "tls-peer", "secret": "s"},
                              verify=network_certs["ca"], timeout=10)
        assert login.status_code == 200 and login.json()["client"] is True
        with requests.Session() as kept:  # kept-alive TLS connections serve request after request
            for _ in range(3):
                assert kept.get(f"{api}/keys", verify=network_certs["ca"], timeout=10).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{api}/health", verify=network_certs["foreign_ca"], timeout=10)
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(api.replace("https://", "http://") + "/health", timeout=10)
    finally:
        assert proc.stop() == 0, proc.output
    assert "Traceback" not in proc.output, proc.output


def test_stalled_handshakes_hold_no_thread(tmp_path, network_certs):
    """A client that opens a TLS connection and never finishes its handshake holds no request thread."""
    import socket

    proc = _https_directory(tmp_path, network_certs, "--threads", "1")
    host, port = proc.url.removeprefix("https://").rsplit(":", 1)
    stalled = []
    try:
        for _ in range(8):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(b"\x16\x03\x01\x00")  # the first bytes of a ClientHello, then nothing
            stalled.append(sock)
        answer = requests.get(f"{proc.url}/api/v1/health", verify=network_certs["ca"], timeout=5)
        assert answer.status_code == 200
    finally:
        for sock in stalled:
            sock.close()
        assert proc.stop() == 0, proc.output


def test_a_certificate_that_does_not_load_is_one_line(tmp_path, network_certs):
    import subprocess

    from tests.procs import python_module

    done = subprocess.run(python_module("directory_api", "--port", "0", "--database", f"sqlite:///{tmp_path}/x.db",
                                        "--certfile", network_certs["cert"], "--keyfile", network_certs["ca"]),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("p2p-directory: --certfile") and "cannot load" in line
