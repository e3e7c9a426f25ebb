"""The directory of the P2P network: a Flask app built by create_app(config)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping

from flask import Flask

from .config import ConfigError, DirectoryConfig

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

__all__ = ["create_app", "DirectoryConfig", "ConfigError", "API_PREFIX"]


@dataclass
class DirectoryContext:
    """What the views need, kept in app.extensions["p2p"]."""

    config: Any
    store: Any
    liveness: Any
    planner: Any
    leases: Any = None
    sweeper: Any = None

    def close(self) -> None:
        """Stop the background threads (writing pending lease renewals) and close the database pool."""
        if self.sweeper is not None:
            self.sweeper.stop()
        if self.leases is not None:
            self.leases.stop()
        self.store.dispose()


def create_app(config: Mapping[str, Any] | DirectoryConfig | None = None) -> Flask:
    """Build the directory app; config is a dict of DirectoryConfig fields, or None to read P2P_* env vars."""
    from .errors import register_error_handlers
    from .liveness import LeaseRenewals, Liveness, Sweeper
    from .replication import Planner
    from .store import Store
    from .views import files, meta, peers, replication, session

    if config is None:
        cfg = DirectoryConfig.from_env(os.environ)
    elif isinstance(config, DirectoryConfig):
        cfg = config
    else:
        cfg = DirectoryConfig.from_mapping(config)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_body_bytes
    app.json.sort_keys = False
    store = Store(cfg.database_url)
    store.create_schema()
    liveness = Liveness(cfg)
    ctx = DirectoryContext(cfg, store, liveness, Planner(cfg, store, liveness),
                           leases=LeaseRenewals(liveness, store, cfg.lease_flush_s).start())
    if cfg.sweep:
        ctx.sweeper = Sweeper(liveness, store, cfg.sweep_every_s).start()
    app.extensions["p2p"] = ctx

    register_error_handlers(app)
    for module in (session, peers, files, replication, meta):
        app.register_blueprint(module.bp, url_prefix=API_PREFIX)
    log.info("directory ready: %s, lease %ss, replication %s", _safe_url(cfg.database_url), cfg.lease_s,
             cfg.replication)
    return app


def _safe_url(url: str) -> str:
    # Never log a database password.
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"
