"""The `p2p` command: `serve` runs a peer; search, get, ls, put and peers are the client side."""
import functools
import json
import logging
import os
import signal
import sys
import threading
import time

import click

from peer_node.access import NEEDS_IDENTITY, TicketBook, client_login
from peer_node.client import PeerClient
from peer_node.config import SERVE_REQUIRED, load_config
from peer_node.directory import DirectoryClient
from peer_node.errors import ConfigError, Interrupted, P2PError, Unauthorized
from peer_node.folder import check_name
from peer_node.hashing import hash_file, is_sha256
from peer_node.memory import use_one_arena
from peer_node.progress import Progress, human_size
from peer_node.reports import SessionReporter
from peer_node.swarm_state import CancelToken
from peer_node.tls import use as use_tls
from peer_node.transfer import destination, download, find_file
from protos.rules import SHA256_RULE

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
STOP_POLL_S = 0.2  # how soon `serve` notices a signal (its handler sets a flag, see serve)


def _setup_logging(level):
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)
    # urllib3 logs each retry of the directory client as a warning; the command's own line
    # says what finally happened (-vv shows them).
    logging.getLogger("urllib3").setLevel(logging.WARNING if level <= logging.DEBUG else logging.ERROR)


def _user_errors(fn):
    """Our errors end the command with one line and exit code 1, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except P2PError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
    return wrapper


def _dials_peers(fn):
    """The command dials peers: [tls] of its --config (else P2P_CONFIG, ./peerConfig.ini) and P2P_TLS_*."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _user_errors(lambda: use_tls(load_config(kwargs.get("config_path"))))()
        return fn(*args, **kwargs)
    return wrapper


def _directory_options(fn):
    fn = click.option("--directory", "directory", metavar="URL",
                      help="Directory URL (several comma-separated); else P2P_DIRECTORY or the config.")(fn)
    fn = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                      help="peerConfig.ini to read (default: ./peerConfig.ini when present).")(fn)
    return fn


def _identity_options(fn):
    """--peer-id/--secret: who a client command is (else P2P_PEER_ID/P2P_SECRET, else the --config file)."""
    fn = click.option("--secret", help="The peer id's secret (else P2P_SECRET or the config).")(fn)
    fn = click.option("--peer-id", help="Ask for tickets as this peer id, in a client session that never "
                      "makes it look live (else P2P_PEER_ID or the config).")(fn)
    return fn


def _serve_metrics(cfg, node):
    """The peer's metrics server when [metrics] port is set; stops the node if the port is taken."""
    if cfg.metrics_port is None:
        return None
    from peer_node import metrics

    try:
        server, port = metrics.serve(cfg.host, cfg.metrics_port)
    except OSError as exc:
        node.stop()
        raise P2PError(f"cannot serve metrics on {cfg.host}:{cfg.metrics_port}: {exc.strerror or exc}") from None
    log.info("metrics on http://%s:%d/metrics", f"[{cfg.host}]" if ":" in cfg.host else cfg.host, port)
    return server


def _client_config(config_path, directory, **flags):
    cfg = load_config(config_path, {"directory": directory, **flags})
    use_tls(cfg)
    if not cfg.directory:
        raise ConfigError(cfg.source if cfg.source != "defaults" else "(no config file)",
                          "[directory] url", "missing (use --directory, P2P_DIRECTORY or the config)")
    return cfg


def _echo_json(data):
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def main(ctx, verbose):
    """Share a folder with other peers and fetch files from them."""
    ctx.ensure_object(dict)
    ctx.obj["log_level"] = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    _setup_logging(ctx.obj["log_level"])


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="peerConfig.ini to read (default: ./peerConfig.ini when present).")
@click.option("--peer-id", help="This peer's name in the network.")
@click.option("--secret", help="Password that protects the peer id at the directory.")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", help="gRPC port; 0 picks a free one (default 50051).")
@click.option("--folder", help="The shared folder.")
@click.option("--directory", metavar="URL", help="Directory URL (several comma-separated).")
@click.option("--advertise", metavar="HOST:PORT", help="Address others dial, when not host:port.")
@click.option("--chunk-size", help="Bytes per streamed message (default 1MiB).")
@click.option("--upload-rate-limit", help="Bytes/s for all of this peer's uploads together, 0 = unlimited.")
@click.option("--max-upload-bytes", help="Largest upload accepted (default 4GiB; 0 = as large as the disk allows).")
@click.option("--accept-uploads/--no-accept-uploads", default=None, help="Accept Upload calls.")
@click.option("--rescan-interval", help="Seconds between folder rescans (default 5).")
@click.option("--metrics-port", help="Serve Prometheus metrics on this port (0 = any free one; default off).")
@click.pass_context
@_user_errors
def serve(ctx, config_path, **flags):
    """Run a peer: share the folder over gRPC and keep it registered at the directory."""
    cfg = load_config(config_path, flags, required=SERVE_REQUIRED)
    use_tls(cfg)  # replication pushes dial other peers with [tls] ca
    if ctx.obj["log_level"] > logging.INFO:
        _setup_logging(logging.INFO)  # a server logs its state changes by default
    if cfg.tls_cert and not cfg.tls_ca:
        log.warning("serving TLS, but without [tls] ca this peer dials others in plaintext: "
                    "its replicas cannot reach TLS peers")
    # The handler only sets the token's attributes: one that took a lock (Event.set, logging)
    # deadlocked when a second signal landed inside the first handler (Ctrl-C twice, or a
    # SIGTERM to the process group that a wrapper such as make also passes on).
    stopping = CancelToken()

    def on_signal(signum, frame):
        stopping.cancel(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    from peer_node.node import PeerNode  # the server side: only `serve` pays for its imports

    try:
        node = PeerNode(cfg)
        node.start()
    except OSError as exc:
        raise P2PError(f"cannot share {cfg.folder}: {exc.strerror or exc}") from None
    metrics_server = _serve_metrics(cfg, node)
    click.echo(f"peer {cfg.peer_id} serving on {cfg.host}:{node.port}")
    sys.stdout.flush()
    try:
        while not stopping.cancelled and node.fatal is None:
            time.sleep(STOP_POLL_S)
        if stopping.cancelled:
            log.info("received %s; shutting down", signal.Signals(stopping.signum).name)
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        node.stop()
    if node.fatal is not None:
        raise P2PError(f"login refused: {node.fatal}; check peer_id and secret")
    log.info("stopped")


@main.command()
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--peers", "count", type=click.IntRange(0, 1000), default=3, show_default=True,
              help="Peer certificates to make: peer1..peerN.")
@click.option("--host", "hosts", multiple=True, metavar="NAME|IP",
              help="Another host name or address the certificates are valid for (repeatable); "
                   "127.0.0.1, ::1 and localhost always are.")
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True, help="Validity.")
@_user_errors
def certs(folder, count, hosts, days):
    """Make a local CA and TLS certificates for a directory and N peers in DIR (a test network)."""
    from peer_node import certs as local_ca  # cryptography: only this command pays for it

    try:
        issued = local_ca.write_network(folder, [f"peer{n}" for n in range(1, count + 1)],
                                        hosts=(*local_ca.DEFAULT_HOSTS, *hosts), days=days)
    except OSError as exc:
        raise P2PError(f"cannot write certificates to {folder}: {exc.strerror or exc}") from None
    for item in issued:
        click.echo(f"{item.name:<12} {item.cert}  {item.key}")
    click.echo(f"peers: [tls] cert/key = DIR/peerN.pem, DIR/peerN-key.pem and ca = {issued[0].cert}; "
               f"directory: --certfile {issued[1].cert} --keyfile {issued[1].key}")


@main.command()
@click.argument("query")
@click.option("--limit", type=int, default=None, help="At most this many results.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_directory_options
@_user_errors
def search(query, limit, as_json, config_path, directory):
    """Find shared files whose name contains QUERY (case-insensitive)."""
    cfg = _client_config(config_path, directory)
    results = DirectoryClient(cfg.directory).search(query, limit)
    if as_json:
        _echo_json(results)
        return
    if not results:
        click.echo(f"no live peer shares a file matching {query!r}")
        return
    for r in results:
        holders = ", ".join(h.get("peer_id", "?") for h in r.get("holders", []))
        click.echo(f"{r['sha256']}  {human_size(r['size']):>10}  {r['name']}  [{holders}]")


@main.command()
@click.argument("ref", metavar="SHA256|NAME")
@click.option("--out", type=click.Path(), help="Output file or directory (default: the config's "
              "shared folder, else the current directory).")
@click.option("--parallel", type=click.IntRange(1, 16), default=None,
              help="Holders to fetch pieces from at once (default: [transfer] parallel_sources, 4).")
@click.option("--stall-timeout", type=click.FloatRange(0.1, 3600), default=None,
              help="Seconds without a byte before a holder is dropped (default: [transfer] stall_timeout, 10).")
@click.option("--force", is_flag=True, help="Replace an existing file with other content, once the "
              "download is verified.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
@_directory_options
@_identity_options
@_user_errors
def get(ref, out, parallel, stall_timeout, force, as_json, config_path, directory, peer_id, secret):
    """Download a file by sha256 or exact name from its holders, verified piece by piece, resumable."""
    use_one_arena()  # before any thread of the download allocates (peer_node/memory.py)
    cfg = _client_config(config_path, directory, parallel_sources=parallel, stall_timeout=stall_timeout,
                         peer_id=peer_id, secret=secret)
    token = CancelToken()
    restore = _cancel_on_signals(token)
    try:
        dirclient = DirectoryClient(cfg.directory)
        client_login(dirclient, cfg.peer_id, cfg.secret)
        record = find_file(dirclient, ref)
        ticket = TicketBook(dirclient, record.sha256)  # asked when the download starts, renewed as it goes
        default_dir = cfg.folder if cfg.folder else os.getcwd()
        dest = destination(out, record.name, default_dir)
        bar = Progress(os.path.basename(dest), record.size)
        reporter = _reporter(cfg)
        try:
            result = download(record, dest, on_progress=bar.swarm,
                              on_unreachable=reporter, on_corrupt=reporter.corrupt,
                              parallel=cfg.parallel_sources, stall_timeout=cfg.stall_timeout,
                              force=force, cancel=token, ticket=ticket)
        finally:
            bar.finish()
    except (Interrupted, _Signalled) as exc:
        signum = exc.signum or signal.SIGINT
        if as_json and getattr(exc, "result", None) is not None:
            _echo_json({**exc.result.to_json(), "interrupted": signal.Signals(signum).name})
        line = str(exc) if isinstance(exc, Interrupted) else "interrupted (a partial download is kept)"
        click.echo(f"{signal.Signals(signum).name}: {line}", err=True)
        log.debug("exiting with %d", 128 + signum)
        sys.exit(128 + signum)
    finally:
        restore()
    reporter.verified(result)
    if as_json:
        _echo_json(result.to_json())
    elif result.replaced:
        click.echo(f"replaced {result.path} with {result.name} ({result.size} bytes, sha256 verified)")
    elif result.created:
        click.echo(f"saved {result.name} ({result.size} bytes, sha256 verified) to {result.path}")
    else:
        click.echo(f"{result.path} already holds {result.name} (sha256 verified)")


class _Signalled(Exception):
    """SIGINT/SIGTERM arrived while no download was running to cancel."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _cancel_on_signals(token):
    """SIGINT and SIGTERM cancel the running download (or end the command before it starts).

    The handler only sets the token's attributes: the download's supervisor sees them within
    a tick, so the signal never lands in the middle of a lock or a gRPC call. Returns the
    function that puts the previous handlers back.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_signal(signum, frame):
        if token.cancelled:
            return  # already stopping (within a second): a second Ctrl-C must not cut that short
        token.cancel(signum)
        if not token.running:
            raise _Signalled(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(s, h) for s, h in previous.items()]


def _reporter(cfg):
    """What `p2p get` reports holders through: for now a running peer's session (peer_node/reports.py).

    The one place that decides it, so a client session of the command's own can replace it.
    """
    return SessionReporter(cfg)


@main.command()
@_dials_peers
@click.argument("address", metavar="HOST:PORT")
@click.option("--prefix", default="", help="Only names starting with this.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_user_errors
def ls(address, prefix, as_json):
    """List the files one peer shares, asking it directly over gRPC."""
    with PeerClient(address) as peer:
        files = peer.list_files(prefix)
    if as_json:
        _echo_json([{"name": f.name, "size": f.size, "sha256": f.sha256} for f in files])
        return
    if not files:
        click.echo(f"{address} shares no files" + (f" starting with {prefix!r}" if prefix else ""))
    for f in files:
        click.echo(f"{f.sha256}  {human_size(f.size):>10}  {f.name}")


@main.command()
@_dials_peers
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.argument("address", metavar="HOST:PORT")
@click.option("--name", help="Name to store it under (default: the file's name).")
@click.option("--holder", metavar="PEER_ID", help="The target's peer id (default: the live peer the directory "
              "lists at HOST:PORT).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
@_directory_options
@_identity_options
@_user_errors
def put(path, address, name, holder, as_json, config_path, directory, peer_id, secret):
    """Upload FILE to the peer at HOST:PORT with an upload ticket (it checks size and sha256 before keeping it)."""
    name = check_name(name or os.path.basename(path))
    digest = hash_file(path)
    cfg = load_config(config_path, {"directory": directory, "peer_id": peer_id, "secret": secret})
    ticket = _upload_ticket(cfg, address, holder, digest) if cfg.directory else None
    if ticket is None:
        log.info("no directory configured: uploading without a ticket (a peer that asks for one refuses)")
    bar = Progress(name, digest.size)
    meter = _SentMeter(bar)
    try:
        with PeerClient(address, ticket=ticket) as peer:
            stored = peer.upload(path, name, digest.size, digest.sha256, rate_limiter=meter)
        bar.update(digest.size)
    finally:
        bar.finish()
    if as_json:
        _echo_json({"name": stored.name, "size": stored.size, "sha256": stored.sha256, "address": address,
                    "sent": meter.sent})
        return
    click.echo(f"uploaded {stored.name} ({stored.size} bytes, sha256 {stored.sha256}) to {address}")


class _SentMeter:
    """Counts the bytes an upload hands to gRPC: PeerClient.upload calls throttle(n) before each chunk."""

    def __init__(self, bar):
        self.bar, self.sent = bar, 0

    def take(self, n):
        """Count n more bytes (nothing is slowed down, unlike the TokenBucket it stands in for)."""
        self.bar.update(self.sent)  # what went before this chunk: it is on its way
        self.sent += n


def _upload_ticket(cfg, address, holder, digest):
    """An upload ticket for digest to the peer at address (or holder), asked in a client session."""
    dirclient = DirectoryClient(cfg.directory)
    try:
        if client_login(dirclient, cfg.peer_id, cfg.secret) is None:
            raise P2PError(f"an upload needs a ticket from the directory: {NEEDS_IDENTITY}")
        holder = holder or _peer_at(dirclient, address)
        ticket, _ = dirclient.ticket(digest.sha256, "upload", holder, digest.size)
        return ticket
    finally:
        dirclient.close()


def _peer_at(dirclient, address):
    """The peer_id of the live peer at grpc address, by the directory; P2PError when there is none."""
    for p in dirclient.peers():
        if p.get("grpc_address") == address:
            return p.get("peer_id")
    raise P2PError(f"no live peer is listed at {address} by the directory: give its peer id with --holder")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_directory_options
@_user_errors
def peers(as_json, config_path, directory):
    """List the live peers the directory knows."""
    cfg = _client_config(config_path, directory)
    found = DirectoryClient(cfg.directory).peers()
    if as_json:
        _echo_json(found)
        return
    if not found:
        click.echo("no live peers")
    for p in found:
        files = p.get("files")
        count = len(files) if isinstance(files, list) else files
        click.echo(f"{p.get('peer_id')}  {p.get('grpc_address')}  files: {count}  last seen: {p.get('last_seen')}")


@main.command("ticket")
@click.argument("sha256", metavar="SHA256")
@click.option("--purpose", type=click.Choice(["download", "upload"]), default="download", show_default=True)
@click.option("--holder", metavar="PEER_ID", help="The peer that serves (download) or receives (upload) it; "
              "required for an upload.")
@click.option("--size", type=click.IntRange(0), help="Upload: the file's size, when the directory does not know it yet.")
@click.option("--json", "as_json", is_flag=True, help="Print {ticket, expires_at}.")
@_directory_options
@_identity_options
@_user_errors
def ticket_command(sha256, purpose, holder, size, as_json, config_path, directory, peer_id, secret):
    """Print a transfer ticket for SHA256, e.g. for grpcurl -H "authorization: Bearer $TICKET"."""
    if not is_sha256(sha256):
        raise click.BadParameter(f"must be {SHA256_RULE}", param_hint="SHA256")
    if purpose == "upload" and not holder:
        raise click.UsageError("an upload ticket names its target: give --holder PEER_ID")
    cfg = _client_config(config_path, directory, peer_id=peer_id, secret=secret)
    dirclient = DirectoryClient(cfg.directory)
    try:
        if client_login(dirclient, cfg.peer_id, cfg.secret) is None and purpose == "upload":
            raise P2PError(f"an upload ticket needs a logged-in peer: {NEEDS_IDENTITY}")
        try:
            text, expires_at = dirclient.ticket(sha256, purpose, holder, size)
        except Unauthorized as exc:
            raise P2PError(f"the directory refused a ticket ({exc.detail or exc.title}): {NEEDS_IDENTITY}") from None
    finally:
        dirclient.close()
    if as_json:
        _echo_json({"ticket": text, "expires_at": expires_at})
    else:
        click.echo(text)
