"""The `p2p` command: `serve` runs a peer; search, get, ls, put and peers are the client side."""
import functools
import json
import logging
import os
import signal
import sys
import threading

import click

from peer_node.client import PeerClient
from peer_node.config import SERVE_REQUIRED, load_config
from peer_node.directory import DirectoryClient
from peer_node.errors import ConfigError, NoHolders, P2PError
from peer_node.folder import WORK_DIR, check_name
from peer_node.hashing import hash_file
from peer_node.progress import Progress, human_size
from peer_node.transfer import destination, download, find_file

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _setup_logging(level):
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)


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


def _directory_options(fn):
    fn = click.option("--directory", "directory", metavar="URL",
                      help="Directory URL (several comma-separated); else P2P_DIRECTORY or the config.")(fn)
    fn = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                      help="peerConfig.ini to read (default: ./peerConfig.ini when present).")(fn)
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


def _client_config(config_path, directory):
    cfg = load_config(config_path, {"directory": directory})
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
@click.option("--upload-rate-limit", help="Bytes/s per outgoing transfer, 0 = unlimited.")
@click.option("--max-upload-bytes", help="Largest upload accepted, 0 = unlimited.")
@click.option("--accept-uploads/--no-accept-uploads", default=None, help="Accept Upload calls.")
@click.option("--rescan-interval", help="Seconds between folder rescans (default 5).")
@click.option("--metrics-port", help="Serve Prometheus metrics on this port (0 = any free one; default off).")
@click.pass_context
@_user_errors
def serve(ctx, config_path, **flags):
    """Run a peer: share the folder over gRPC and keep it registered at the directory."""
    cfg = load_config(config_path, flags, required=SERVE_REQUIRED)
    if ctx.obj["log_level"] > logging.INFO:
        _setup_logging(logging.INFO)  # a server logs its state changes by default
    stopping = threading.Event()

    def on_signal(signum, frame):
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stopping.set()

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
        while not stopping.wait(0.5) and node.fatal is None:
            pass
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        node.stop()
    if node.fatal is not None:
        raise P2PError(f"login refused: {node.fatal}; check peer_id and secret")
    log.info("stopped")


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
              help="Holders to fetch from at once (default: [transfer] parallel_sources, 1).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
@_directory_options
@_user_errors
def get(ref, out, parallel, as_json, config_path, directory):
    """Download a file by sha256 or exact name from its holders, verified, resumable."""
    cfg = _client_config(config_path, directory)
    dirclient = DirectoryClient(cfg.directory)
    record = find_file(dirclient, ref)
    if not record.holders:
        raise NoHolders(record.name, "no live holder right now; try again later")
    default_dir = cfg.folder if cfg.folder else os.getcwd()
    dest = destination(out, record.name, default_dir)
    bar = Progress(os.path.basename(dest))
    try:
        result = download(record, dest, on_progress=bar.update,
                          on_unreachable=_unreachable_reporter(dirclient, cfg),
                          parallel=parallel or cfg.parallel_sources)
    finally:
        bar.finish()
    if as_json:
        _echo_json({"path": result.path, "name": result.name, "size": result.size,
                    "sha256": result.sha256, "resumed_from": result.resumed_from,
                    "sources": result.sources, "failed": result.failed, "created": result.created})
    elif result.created:
        click.echo(f"saved {result.name} ({result.size} bytes, sha256 verified) to {result.path}")
    else:
        click.echo(f"{result.path} already holds {result.name} (sha256 verified)")


def _unreachable_reporter(dirclient, cfg):
    """A callback that reports a failed holder to the directory, with whatever auth we have."""
    state = {"ready": None}
    lock = threading.Lock()  # parallel downloads may report from several threads

    def authenticate():
        from peer_node.node import SESSION_FILE, advertised_address

        if cfg.folder:
            try:
                with open(os.path.join(cfg.folder, WORK_DIR, SESSION_FILE), encoding="utf-8") as f:
                    dirclient.token = json.load(f)["token"]
                    return True
            except (OSError, ValueError, KeyError):
                pass
        if cfg.peer_id and cfg.secret:
            address = advertised_address(cfg.host, cfg.port, cfg.advertise)
            dirclient.login(cfg.peer_id, cfg.secret, address)
            return True
        return False

    def report(holder, error):
        with lock:
            _report(holder)

    def _report(holder):
        try:
            if state["ready"] is None:
                state["ready"] = authenticate()
            if not state["ready"]:
                log.warning("not reporting %s as unreachable: no peer credentials "
                            "(give --config with [peer] peer_id and secret)", holder.peer_id)
                return
            try:
                verdict = dirclient.report_unreachable(holder.peer_id)
            except P2PError as exc:
                if getattr(exc, "status", None) != 401 or not (cfg.peer_id and cfg.secret):
                    raise
                from peer_node.node import advertised_address

                dirclient.login(cfg.peer_id, cfg.secret, advertised_address(cfg.host, cfg.port, cfg.advertise))
                verdict = dirclient.report_unreachable(holder.peer_id)
            log.info("reported %s unreachable; directory says %s", holder.peer_id, verdict)
        except P2PError as exc:
            log.warning("could not report %s as unreachable: %s", holder.peer_id, exc)

    return report


@main.command()
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
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.argument("address", metavar="HOST:PORT")
@click.option("--name", help="Name to store it under (default: the file's name).")
@_user_errors
def put(path, address, name):
    """Upload FILE to the peer at HOST:PORT (it checks size and sha256 before keeping it)."""
    name = check_name(name or os.path.basename(path))
    digest = hash_file(path)
    with PeerClient(address) as peer:
        stored = peer.upload(path, name, digest.size, digest.sha256)
    click.echo(f"uploaded {stored.name} ({stored.size} bytes, sha256 {stored.sha256}) to {address}")


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
