"""TLS between peers and to the directory: real handshakes on loopback, and one line when they fail."""
import http.server
import os
import shutil
import ssl
import threading

import pytest

import peer_node.cli as cli
from peer_node import certs, tls
from peer_node.client import PeerClient
from peer_node.config import PeerConfig, load_config
from peer_node.directory import DirectoryClient
from peer_node.errors import ConfigError, DirectoryUnavailable, TransportSecurityError
from peer_node.folder import SharedFolder
from peer_node.servicer import create_server, serve, stop
from peer_node.service import PeerService, ServiceLimits
from tests.fixtures.peer import fill_folder

DATA = b"over TLS, never in the clear\n" * 100


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Our network's CA with peer1, peer2; a stranger CA with its own peer1; a cert for another host."""
    root = tmp_path_factory.mktemp("pki")
    made = certs.write_network(str(root / "ours"), [], hosts=("peer.example.org",))[1]
    elsewhere = certs.Issued("elsewhere", str(root / "elsewhere.pem"), str(root / "elsewhere-key.pem"))
    shutil.copy(made.cert, elsewhere.cert)
    shutil.copy(made.key, elsewhere.key)
    ours = {i.name: i for i in certs.write_network(str(root / "ours"), ["peer1", "peer2"])}  # same CA
    ours["elsewhere"] = elsewhere
    theirs = {i.name: i for i in certs.write_network(str(root / "theirs"), ["peer1"])}
    return ours, theirs


@pytest.fixture(autouse=True)
def process_defaults():
    tls.reset()
    yield
    tls.reset()


def config(**fields):
    """A PeerConfig with only the given (TLS) settings."""
    return PeerConfig(**fields)


def dial(ca, pair=None):
    """The config of a client with [tls] ca (and a client pair), for tls.use."""
    return config(tls_ca=ca.cert, tls_client_cert=pair and pair.cert, tls_client_key=pair and pair.key)


@pytest.fixture
def start_peer(tmp_path):
    """start(pair=None, require_ca=None) -> address of an in-process peer sharing a.txt."""
    servers = []

    def start(pair=None, require_ca=None):
        root = fill_folder(tmp_path / f"peer{len(servers)}", {"a.txt": DATA})
        folder = SharedFolder(str(root), 64 * 1024)
        folder.scan()
        cfg = config(tls_cert=pair and pair.cert, tls_key=pair and pair.key,
                     tls_ca=require_ca and require_ca.cert, tls_require_client_cert=bool(require_ca))
        server, port = create_server("127.0.0.1:0", PeerService(folder, ServiceLimits()),
                                     credentials=tls.server_credentials(cfg))
        serve(server)
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        stop(server, grace=0)


def fetch(address, client_config):
    """ListFiles, the whole of a.txt and Health from address, dialed as client_config says."""
    tls.use(client_config)
    with PeerClient(address, timeout=5) as c:
        files = c.list_files()
        data = b"".join(bytes(chunk) for _, chunk in c.download(name="a.txt"))
        return files, data, c.health()


def test_a_tls_peer_serves_a_client_that_trusts_its_ca(pki, start_peer):
    ours, _ = pki
    files, data, health = fetch(start_peer(ours["peer1"]), dial(ours["ca"]))
    assert [f.name for f in files] == ["a.txt"] and data == DATA and health == "SERVING"


def test_mutual_tls_with_a_client_certificate_of_the_network(pki, start_peer):
    ours, _ = pki
    address = start_peer(ours["peer1"], require_ca=ours["ca"])
    _, data, _ = fetch(address, dial(ours["ca"], ours["peer2"]))
    assert data == DATA


@pytest.mark.parametrize("server,client,words", [
    ("tls", "plaintext", r"serves TLS and we dialed plaintext: set \[tls\] ca"),
    ("plaintext", "tls", r"answers in plaintext, not TLS"),
    ("tls", "other CA", r"not signed by our CA \(\[tls\] ca .*theirs/ca.pem\)"),
    ("other CA", "tls", r"not signed by our CA"),
    ("other host", "tls", r"does not name 127.0.0.1 .*--host 127.0.0.1"),
    ("mutual", "tls", r"requires a client certificate \(mutual TLS\): set \[tls\] client_cert"),
    ("mutual", "stranger cert", r"refused our client certificate \(\[tls\] client_cert .*theirs/peer1.pem\)"),
])
def test_a_mismatch_fails_with_one_line_that_says_so(pki, start_peer, server, client, words):
    ours, theirs = pki
    address = start_peer(**{"tls": {"pair": ours["peer1"]}, "plaintext": {},
                            "other CA": {"pair": theirs["peer1"]}, "other host": {"pair": ours["elsewhere"]},
                            "mutual": {"pair": ours["peer1"], "require_ca": ours["ca"]}}[server])
    tls.use({"plaintext": config(), "tls": dial(ours["ca"]), "other CA": dial(theirs["ca"]),
             "stranger cert": dial(ours["ca"], theirs["peer1"])}[client])
    for call in (lambda c: c.list_files(), lambda c: list(c.download(name="a.txt")), lambda c: c.health()):
        with PeerClient(address, timeout=5) as c, pytest.raises(TransportSecurityError) as err:
            call(c)
        line = str(err.value)
        assert "\n" not in line and line.startswith(f"peer {address}: ")
        assert err.match(words)
        # our own settings are at fault: p2p get stops at once instead of trying every holder
        assert err.value.ours is ((server, client) in {("tls", "plaintext"), ("mutual", "tls"),
                                                       ("mutual", "stranger cert")})


def test_a_dead_peer_is_still_just_unavailable(closed_port, pki):
    ours, _ = pki
    for client_config in (config(), dial(ours["ca"])):
        tls.use(client_config)
        with PeerClient(f"127.0.0.1:{closed_port}", timeout=2) as c:
            with pytest.raises(Exception) as err:
                c.list_files()
        assert type(err.value).__name__ == "PeerUnavailable"


def test_reset_dials_plaintext_again(pki, start_peer):
    ours, _ = pki
    address = start_peer(ours["peer1"])
    assert fetch(address, dial(ours["ca"]))[1] == DATA
    tls.reset()
    with PeerClient(address, timeout=5) as c, pytest.raises(TransportSecurityError, match="dialed plaintext"):
        c.list_files()


# -- settings ------------------------------------------------------------------------------

def test_tls_paths_in_the_file_are_relative_to_it(tmp_path, pki):
    ours, _ = pki
    ini = tmp_path / "conf" / "peer.ini"
    ini.parent.mkdir()
    ini.write_text("[tls]\ncert = tls/peer1.pem\nkey = tls/peer1-key.pem\nca = tls/ca.pem\n"
                   "[directory]\nurl = https://127.0.0.1:1\nca = tls/ca.pem\n")
    cfg = load_config(str(ini), env={})
    assert cfg.tls_cert == str(tmp_path / "conf" / "tls" / "peer1.pem")
    assert cfg.directory_ca == str(tmp_path / "conf" / "tls" / "ca.pem")
    env = {"P2P_TLS_CA": ours["ca"].cert, "P2P_TLS_REQUIRE_CLIENT_CERT": "true"}
    cfg = load_config(None, env=env, default_path=None)
    assert cfg.tls_ca == ours["ca"].cert and cfg.tls_require_client_cert is True


@pytest.mark.parametrize("fields,words", [
    ({"tls_cert": "CERT"}, r"\[tls\] key \(P2P_TLS_KEY\): missing: \[tls\] cert is set"),
    ({"tls_key": "KEY"}, r"\[tls\] cert \(P2P_TLS_CERT\): missing: \[tls\] key is set"),
    ({"tls_cert": "CERT", "tls_key": "NOPE"}, r"\[tls\] key \(P2P_TLS_KEY\): .*NOPE: No such file"),
    ({"tls_cert": "KEY", "tls_key": "KEY"}, r"\[tls\] cert \(P2P_TLS_CERT\): .*not a PEM certificate"),
    ({"tls_cert": "CERT", "tls_key": "CERT"}, r"\[tls\] key \(P2P_TLS_KEY\): .*not a PEM private key"),
    ({"tls_cert": "CERT", "tls_key": "KEY", "tls_require_client_cert": True},
     r"require_client_cert \(P2P_TLS_REQUIRE_CLIENT_CERT\): needs \[tls\] cert, key and ca"),
])
def test_bad_server_settings_name_the_key(pki, fields, words):
    ours, _ = pki
    files = {"CERT": ours["peer1"].cert, "KEY": ours["peer1"].key}
    cfg = config(**{k: files.get(v, v) for k, v in fields.items()})
    with pytest.raises(ConfigError, match=words):
        tls.server_credentials(cfg)


@pytest.mark.parametrize("fields,words", [
    ({"tls_ca": "KEY"}, r"\[tls\] ca \(P2P_TLS_CA\): .*not a PEM certificate"),
    ({"tls_client_cert": "CERT", "tls_client_key": "KEY"}, r"\[tls\] ca \(P2P_TLS_CA\): missing: a client certificate"),
    ({"tls_ca": "CERT", "tls_client_cert": "CERT"}, r"\[tls\] client_key \(P2P_TLS_CLIENT_KEY\): missing"),
    ({"directory_ca": "NOPE"}, r"\[directory\] ca \(P2P_DIRECTORY_CA\): NOPE: No such file"),
])
def test_bad_dial_settings_name_the_key(pki, fields, words):
    ours, _ = pki
    files = {"CERT": ours["peer1"].cert, "KEY": ours["peer1"].key}
    with pytest.raises(ConfigError, match=words):
        tls.use(config(**{k: files.get(v, v) for k, v in fields.items()}))


# -- the directory over HTTPS --------------------------------------------------------------

@pytest.fixture
def https_directory(pki):
    """An HTTPS server with the network's directory certificate answering GET /api/v1/peers."""
    ours, _ = pki

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'[{"peer_id": "peer1", "grpc_address": "127.0.0.1:1"}]'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(ours["directory"].cert, ours["directory"].key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_directory_client_verifies_https_against_directory_ca(pki, https_directory):
    ours, theirs = pki
    assert DirectoryClient(https_directory, verify=ours["ca"].cert).peers()[0]["peer_id"] == "peer1"
    tls.use(config(directory_ca=ours["ca"].cert))
    assert DirectoryClient(https_directory).peers()[0]["peer_id"] == "peer1"
    for verify in (theirs["ca"].cert, True):  # another CA; the system store does not know ours
        with pytest.raises(DirectoryUnavailable, match=r"did not verify: .*set \[directory\] ca") as err:
            DirectoryClient(https_directory, verify=verify).peers()
        assert "\n" not in str(err.value)


# -- the command line ----------------------------------------------------------------------

def test_p2p_certs_makes_a_network_that_handshakes(runner, tmp_path, start_peer):
    result = runner.invoke(cli.main, ["certs", "tls", "--peers", "2", "--host", "peer.example.org"])
    assert result.exit_code == 0, result.output
    made = sorted(os.listdir(tmp_path / "tls"))
    assert made == sorted(f"{n}{s}.pem" for n in ("ca", "directory", "peer1", "peer2") for s in ("", "-key"))
    assert "--certfile" in result.output
    pair = certs.Issued("peer1", str(tmp_path / "tls" / "peer1.pem"), str(tmp_path / "tls" / "peer1-key.pem"))
    address = start_peer(pair)
    assert fetch(address, config(tls_ca=str(tmp_path / "tls" / "ca.pem")))[1] == DATA


def test_p2p_ls_fails_in_one_line_without_the_ca_and_works_with_it(runner, pki, start_peer, monkeypatch):
    ours, _ = pki
    address = start_peer(ours["peer1"])
    result = runner.invoke(cli.main, ["ls", address])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: peer {address}: serves TLS and we dialed plaintext: set [tls] ca (P2P_TLS_CA) "
        "to the network's CA certificate"]
    monkeypatch.setenv("P2P_TLS_CA", ours["ca"].cert)
    result = runner.invoke(cli.main, ["ls", address])
    assert result.exit_code == 0 and "a.txt" in result.output


def test_p2p_certs_into_a_file_fails_with_one_line(runner, tmp_path):
    (tmp_path / "taken").write_text("in the way\n")
    result = runner.invoke(cli.main, ["certs", "taken/tls", "--peers", "1"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: cannot write certificates to taken/tls: Not a directory"]


def test_p2p_serve_with_half_a_tls_pair_fails_with_one_line(runner, pki, tmp_path):
    ours, _ = pki
    (tmp_path / "shared").mkdir()
    result = runner.invoke(cli.main, ["serve", "--peer-id", "p", "--secret", "s", "--folder", "shared",
                                      "--port", "0", "--directory", "http://127.0.0.1:9"],
                           env={"P2P_TLS_CERT": ours["peer1"].cert})
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: settings: [tls] key (P2P_TLS_KEY): missing: [tls] cert is set, and serving TLS needs both")
