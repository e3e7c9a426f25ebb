"""Command line: `python -m directory_api [options]` serves; `python -m directory_api init-db` creates the schema."""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys

import click

from .config import SETTINGS_BY_FIELD, DirectoryConfig, load_config
from .errors import ConfigError

log = logging.getLogger(__name__)

SERVE_SETTINGS = ("host", "port", "database_url", "lease_s", "replication", "replication_deadline_s")


class _Stop(Exception):
    """Raised by the signal handler to leave serve_forever."""


def setting_options(fields):
    """Decorator: one click option per setting of the table (text; parsed by load_config)."""

    def decorate(f):
        for name in reversed(fields):
            setting = SETTINGS_BY_FIELD[name]
            f = click.option(setting.flag, setting.field, default=None, metavar=setting.metavar,
                             help=setting.help_text)(f)
        return f

    return decorate


@click.group(invoke_without_command=True)
@setting_options(SERVE_SETTINGS)
@click.pass_context
def cli(ctx, **flags):
    """Run the directory of the P2P network."""
    if ctx.invoked_subcommand is not None:
        return
    serve(load_config(flags, os.environ, fields=SERVE_SETTINGS))


@cli.command("init-db")
@setting_options(("database_url",))
def init_db(**flags):
    """Create the tables and indexes, then exit."""
    from .store import Store

    config = load_config(flags, os.environ, fields=("database_url",))
    store = Store(config.database_url)
    try:
        store.create_schema()
    finally:
        store.dispose()
    click.echo("schema ready")


def serve(config: DirectoryConfig) -> None:
    """Serve the app with werkzeug's threaded server on config.host:port until SIGTERM or SIGINT."""
    from werkzeug.serving import make_server

    from . import create_app

    host, port = config.host, config.port
    # Bind first: a busy port is then one clear error, before any database work, and
    # werkzeug (which would print its own message and exit) never sees the failure.
    try:
        sock = _bind(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        app = create_app(config)
    except BaseException:
        sock.close()
        raise
    context = app.extensions["p2p"].start()
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
        context.close()


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
