"""Command line: `python -m directory_api [options]` serves; `python -m directory_api init-db` creates the schema."""
from __future__ import annotations

import logging
import signal
import socket
import sys

import click

from .config import DEFAULT_DATABASE_URL, DEFAULT_REPLICATION, ConfigError, DirectoryConfig

log = logging.getLogger(__name__)


class _Stop(Exception):
    """Raised by the signal handler to leave serve_forever."""


def _database_option(f):
    return click.option("--database", "database", envvar="P2P_DATABASE_URL", default=DEFAULT_DATABASE_URL,
                        show_default=True, help="SQLAlchemy URL (sqlite:///... or postgresql+psycopg://...)")(f)


@click.group(invoke_without_command=True)
@click.option("--host", envvar="P2P_HOST", default="127.0.0.1", show_default=True, help="address to bind")
@click.option("--port", envvar="P2P_PORT", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="port to bind (0 = any free port)")
@_database_option
@click.option("--lease", envvar="P2P_LEASE_S", type=click.FloatRange(min=0, min_open=True), default=45.0,
              show_default=True, help="lease in seconds: a peer is live while last_seen + lease >= now")
@click.option("--replication", envvar="P2P_REPLICATION", type=click.IntRange(min=1),
              default=DEFAULT_REPLICATION, show_default=True, help="copies wanted of each file (1 = off)")
@click.option("--replication-deadline", "replication_deadline", envvar="P2P_REPLICATION_DEADLINE_S",
              type=click.FloatRange(min=0, min_open=True), default=None,
              help="seconds a planned copy may take before it is planned again [default: max(30, 3 x lease)]")
@click.pass_context
def cli(ctx, host, port, database, lease, replication, replication_deadline):
    """Run the directory of the P2P network."""
    if ctx.invoked_subcommand is not None:
        return
    serve(host, port, DirectoryConfig(database_url=database, lease_s=lease, replication=replication,
                                      replication_deadline_s=replication_deadline))


@cli.command("init-db")
@_database_option
def init_db(database):
    """Create the tables and indexes, then exit."""
    from .store import Store

    store = Store(database)
    try:
        store.create_schema()
    finally:
        store.dispose()
    click.echo("schema ready")


def serve(host: str, port: int, config: DirectoryConfig) -> None:
    """Serve the app with werkzeug's threaded server until SIGTERM or SIGINT."""
    from werkzeug.serving import make_server

    from . import create_app

    # Bind first: a busy port is then one clear error, before any database work, and
    # werkzeug (which would print its own message and exit) never sees the failure.
    try:
        sock = _bind(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    app = create_app(config)
    bound_port = sock.getsockname()[1]
    server = make_server(host, bound_port, app, threaded=True, fd=sock.fileno())

    def _on_signal(signum, _frame):
        # Ignore repeats so a second signal cannot interrupt the cleanup below.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise _Stop(signum)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    shown = f"[{host}]" if ":" in host else host
    try:
        # Inside the try: a signal may arrive as soon as the ready line is out.
        click.echo(f"directory listening on http://{shown}:{bound_port}")
        sys.stdout.flush()
        server.serve_forever()
    except _Stop:
        log.info("stopping")
    finally:
        server.server_close()
        sock.close()
        app.extensions["p2p"].close()


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 = any free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def main(argv: list[str] | None = None) -> None:
    """Entry point of `p2p-directory` and `python -m directory_api`."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        code = cli.main(args=argv, prog_name="p2p-directory", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        click.echo(f"p2p-directory: {exc.format_message()}", err=True)
        code = exc.exit_code
    except click.exceptions.Abort:
        click.echo("p2p-directory: aborted", err=True)
        code = 1
    except ConfigError as exc:
        click.echo(f"p2p-directory: {exc}", err=True)
        code = 2
    except Exception as exc:  # e.g. the database cannot be reached: one line, no traceback
        click.echo(f"p2p-directory: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
