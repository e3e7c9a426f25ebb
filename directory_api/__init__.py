"""The directory of the P2P network: a Flask app built by create_app(config).

create_app only assembles; the entry points (``directory_api.wsgi`` for gunicorn,
``python -m directory_api``) read the settings and start the background threads.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from flask import Flask

from .config import DirectoryConfig
from .errors import ConfigError
from .views.api import API_PREFIX

log = logging.getLogger(__name__)

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
    clock_watch: Any = None
    signer: Any = None  # keys.TicketSigner: signs transfer tickets
    auditing: Any = None  # audits.Auditing: audits, verify orders, reports about holders
    audit_scheduler: Any = None

    def start(self) -> "DirectoryContext":
        """Start the background threads: this process's clock heartbeat, the lease writer, and
        the sweeper when configured."""
        if self.clock_watch is not None:
            self.clock_watch.start()
        self.leases.start()
        if self.sweeper is not None:
            self.sweeper.start()
        if self.audit_scheduler is not None:
            self.audit_scheduler.start()
        return self

    def close(self) -> None:
        """Stop the background threads (writing pending lease renewals) and close the database pool."""
        if self.audit_scheduler is not None:
            self.audit_scheduler.stop()
        if self.sweeper is not None:
            self.sweeper.stop()
        if self.leases is not None:
            self.leases.stop()
        if self.clock_watch is not None:
            self.clock_watch.stop()
        self.store.dispose()


def create_app(config: Mapping[str, Any] | DirectoryConfig, *, clock: Callable[[], float] = time.time) -> Flask:
    """Build the directory app from a DirectoryConfig or a dict of its fields; starts no thread.

    clock: the time source of liveness and planning (tests inject one). Call
    app.extensions["p2p"].start() to run the lease writer and the sweeper.
    """
    from . import auth
    from .audits import Auditing, AuditScheduler
    from .bodies import LIMITS_KEY, BodyLimits, BoundedRequest
    from .clocks import ClockWatch
    from .keys import load_signer
    from .liveness import LeaseRenewals, Liveness, Sweeper
    from .replication import Planner
    from .store import Store
    from .views import claims, dashboard, docs, files, meta, peers, replication, session, trust
    from .views.api import DirectoryOpenAPI
    from .views.problems import register_error_handlers

    cfg = config if isinstance(config, DirectoryConfig) else DirectoryConfig.from_mapping(config)
    app = DirectoryOpenAPI(__name__)
    app.request_class = BoundedRequest
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_body_bytes
    app.config[LIMITS_KEY] = BodyLimits(max_array_items=max(BodyLimits.max_array_items, cfg.max_files_per_call))
    app.json.sort_keys = False
    store = Store(cfg.database_url)
    store.create_schema()
    liveness = Liveness(cfg, clock=clock)
    signer = load_signer(cfg, store)
    ctx = DirectoryContext(cfg, store, liveness, Planner(cfg, store, liveness, signer=signer),
                           leases=LeaseRenewals(liveness, store, cfg.lease_flush_s),
                           clock_watch=ClockWatch(store, cfg.process_beat_s, clock=clock),
                           signer=signer)
    if cfg.sweep:
        ctx.sweeper = Sweeper(liveness, store, cfg.sweep_every_s, name=ctx.clock_watch.name)
    ctx.auditing = Auditing(cfg, store, liveness, ctx.signer)
    if ctx.auditing.enabled:
        ctx.audit_scheduler = AuditScheduler(ctx.auditing, name=ctx.clock_watch.name)
    app.extensions["p2p"] = ctx

    register_error_handlers(app)
    app.before_request(auth.enforce)
    for module in (session, peers, files, replication, meta, trust, claims):
        app.register_api(module.bp, url_prefix=API_PREFIX)
    app.register_blueprint(docs.bp, url_prefix=API_PREFIX)
    app.register_blueprint(dashboard.bp)  # at the root: the page people open
    if cfg.metrics:
        _add_metrics(app, ctx)
    log.info("directory ready: %s, lease %ss, replication %s", _safe_url(cfg.database_url), cfg.lease_s,
             cfg.replication)
    return app


def _add_metrics(app: Flask, ctx: DirectoryContext) -> None:
    """GET /metrics at the root, and the hooks that count every request."""
    from . import metrics
    from .views import metrics as metrics_view

    cfg, liveness = ctx.config, ctx.liveness

    def figures() -> dict:
        from .clocks import current_processes

        now = liveness.now()
        found = ctx.store.overview_counts(cfg.replication, liveness.live_since(now), now)
        processes = current_processes(ctx.store)
        found["directory_processes"] = len(processes)
        found["max_clock_skew"] = max((abs(p["skew_s"]) for p in processes), default=0.0)
        found["skewed_processes"] = sum(p["skewed"] for p in processes)
        return found

    app.extensions["p2p_metrics"] = collected = metrics.Metrics(metrics.StoreFigures(figures),
                                                                metrics.multiproc_dir())
    metrics.install(app, collected)
    app.register_blueprint(metrics_view.bp)


def _safe_url(url: str) -> str:
    # Never log a database password.
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"
