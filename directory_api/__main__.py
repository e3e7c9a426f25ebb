"""Command line: `python -m directory_api [options]` serves; `init-db` creates the schema; `forget-peer ID` releases a peer_id."""
from __future__ import annotations

import logging
import os
import sys

import click

from .config import SETTINGS, SETTINGS_BY_FIELD, DirectoryConfig, load_config, parse_switch
from .errors import ConfigError

log = logging.getLogger(__name__)

# Serving reads every setting of the table: a new setting gets its flag without a second list to keep in step.
SERVE_SETTINGS = tuple(setting.field for setting in SETTINGS)


def setting_options(fields):
    """Decorator: one click option per setting of the table (text; parsed by load_config)."""

    def decorate(f):
        for name in reversed(fields):
            setting = SETTINGS_BY_FIELD[name]
            # A switch given alone (--open-downloads) means on; --open-downloads off still works.
            bare = {"is_flag": False, "flag_value": "on"} if setting.parse is parse_switch else {}
            f = click.option(setting.flag, setting.field, default=None, metavar=setting.metavar,
                             help=setting.help_text, **bare)(f)
        return f

    return decorate


@click.group(invoke_without_command=True)
@setting_options(SERVE_SETTINGS)
@click.option("--dev", is_flag=True, default=False,
              help="serve with werkzeug's development server (one process; --workers and --threads do not apply)")
@click.pass_context
def cli(ctx, dev, **flags):
    """Run the directory of the P2P network (gunicorn; werkzeug's development server with --dev)."""
    if ctx.invoked_subcommand is not None:
        return
    code = serve(load_config(flags, os.environ, fields=SERVE_SETTINGS), dev=dev)
    if code:
        ctx.exit(code)


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


@cli.command("forget-peer")
@setting_options(("database_url",))
@click.argument("peer_id")
def forget_peer(peer_id, **flags):
    """Release PEER_ID: delete its secret, sessions and index, so that anyone may register it again.

    Sweeps never do this: a registered peer_id keeps its secret however long it stays away.
    """
    from .store import Store

    config = load_config(flags, os.environ, fields=("database_url",))
    store = Store(config.database_url)
    try:
        store.create_schema()
        if not store.forget_peer(peer_id):
            raise click.ClickException(f"no peer {peer_id!r} is registered in this database")
    finally:
        store.dispose()
    log.info("forgot peer %s", peer_id)
    click.echo(f"forgot peer {peer_id}: its peer_id is free to register again")


def serve(config: DirectoryConfig, dev: bool = False) -> int:
    """Serve on config.host:port until SIGTERM or SIGINT: gunicorn, or werkzeug with dev; the exit code."""
    from . import serving

    # Bind first: a busy port is then one clear error, before any database work, and port 0 is a
    # real port before any worker forks.
    try:
        sock = serving.bind(config.host, config.port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    if dev:
        return serving.serve_dev(config, sock)
    try:
        code = serving.serve_production(config, sock)
    finally:
        if sock.fileno() != -1:  # gunicorn never took it (the schema could not be created)
            sock.close()
    serving.exit_now(code)


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
