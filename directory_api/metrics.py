"""The directory's Prometheus metrics: requests and latency per route, and figures read from the store.

Counters and histograms are kept per process. Under gunicorn, ``python -m directory_api`` runs
prometheus_client's multiprocess mode: it gives every start a fresh ``PROMETHEUS_MULTIPROC_DIR``
before anything imports prometheus_client, each worker writes its values to files there, and a
scrape answered by any worker sums them all (``serving.py`` forgets a dead worker's files for
live gauges). The dev server is one process and reads its own values.

Figures that live in the database (live peers, files, files below target, copies in flight) are
not kept per process: whoever answers the scrape asks the store, and keeps the answer for a
few seconds so that a dashboard and a scraper together cost a query or two per interval.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

from flask import Flask, request
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily

from .shared_read import SharedRead

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"  # the route label of a request no URL rule matched (a 404)
# A *_created series per label set doubles the exposition for nothing a dashboard uses.
disable_created_metrics()
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# registry=None: they are not in prometheus_client's global registry; each app's Metrics
# collects them itself (or, in multiprocess mode, from the files every process writes).
REQUESTS = Counter("p2p_directory_requests", "HTTP requests answered, by URL rule, method and status",
                   ["route", "method", "status"], registry=None)
LATENCY = Histogram("p2p_directory_request_seconds", "Seconds from routing a request to its answer, by URL rule",
                    ["route", "method"], buckets=LATENCY_BUCKETS, registry=None)
LOGINS_REFUSED = Counter("p2p_directory_logins_refused",
                         "Logins refused: 401 (wrong secret) or 429 (too many failed attempts)", ["status"],
                         registry=None)
AUDITS = Counter("p2p_directory_audits", "Audits of what peers claim to hold, by outcome", ["outcome"],
                 registry=None)
COUNTERS = (REQUESTS, LATENCY, LOGINS_REFUSED, AUDITS)

# A client chooses the method: anything else is counted as "other", or each made-up method
# would add time series without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
LOGIN_ENDPOINT = "session.login"
REFUSED_LOGIN_STATUSES = frozenset({401, 429})


def count_audit(outcome: str) -> None:
    """Count one audit of a peer with its outcome (e.g. "passed", "failed", "unreachable")."""
    AUDITS.labels(outcome).inc()


def count_login_refused(status: int) -> None:
    """Count one refused login by its HTTP status."""
    LOGINS_REFUSED.labels(str(status)).inc()


class StoreFigures:
    """A prometheus_client collector of the figures the store holds, cached for cache_s seconds."""

    def __init__(self, read: Callable[[], dict], cache_s: float = 2.0, clock: Callable[[], float] = time.monotonic):
        """read: answers {live_peers, files, below_target, copies_in_flight, target} from the store."""
        self.cache_s = cache_s
        self._shared = SharedRead(read, clock=clock)  # longer than cache_s when the read is slow

    def figures(self) -> dict | None:
        """The cached figures, read again when older than cache_s; None when the store does not answer."""
        try:
            return self._shared.get(min_age_s=self.cache_s)
        except Exception as exc:  # a scrape must still answer while the database is away
            log.warning("metrics: the store does not answer: %s", type(exc).__name__)
            return None

    def collect(self):
        """Yield one gauge per figure, and p2p_directory_store_up."""
        figures = self.figures()
        yield GaugeMetricFamily("p2p_directory_store_up", "1 when the store answered the last read of these figures",
                                value=0 if figures is None else 1)
        if figures is None:
            return
        for name, key, help_text in (
            ("p2p_directory_live_peers", "live_peers", "Peers whose lease is current"),
            ("p2p_directory_files", "files", "Distinct files (by sha256) held by at least one live peer"),
            ("p2p_directory_files_below_target", "below_target",
             "Files held by fewer live peers than the replication target"),
            ("p2p_directory_copies_in_flight", "copies_in_flight", "Planned copies not yet done and not expired"),
            ("p2p_directory_replication_target", "target", "Copies wanted of every file"),
            ("p2p_directory_processes", "directory_processes", "Directory processes that wrote their clock lately"),
            ("p2p_directory_clock_skew_seconds", "max_clock_skew",
             "The largest difference between a directory process's clock and the database's"),
            ("p2p_directory_processes_skewed", "skewed_processes",
             "Directory processes whose clock is more than a second off the database's"),
        ):
            if key in figures:
                yield GaugeMetricFamily(name, help_text, value=figures[key])


class Metrics:
    """One app's metrics: the per-process counters (or every worker's) and the store's figures."""

    def __init__(self, figures: StoreFigures, multiproc_dir: str | None = None):
        """multiproc_dir: the directory every gunicorn worker writes its values to; None for one process."""
        self.figures = figures
        self.registry = CollectorRegistry(auto_describe=False)
        if multiproc_dir:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self.registry, path=multiproc_dir)
        else:
            for metric in COUNTERS:
                self.registry.register(metric)
        self.registry.register(figures)
        self._children: dict[tuple, tuple[Any, Any]] = {}

    def render(self) -> bytes:
        """The Prometheus text exposition of everything."""
        return generate_latest(self.registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            # labels() takes a lock and builds a key each time: keep the children per label set.
            children = (REQUESTS.labels(route, method, str(status)), LATENCY.labels(route, method))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


def multiproc_dir() -> str | None:
    """The multiprocess directory prometheus_client itself uses in this process, if any.

    prometheus_client picks its mode from this variable when it is imported; the entry point
    sets it before that, so reading it here agrees with how the values are being stored.
    """
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


def install(app: Flask, metrics: Metrics) -> None:
    """Count every request app answers: route (the URL rule), method, status and latency."""
    started_key = "p2p.metrics.started"

    @app.before_request
    def _start():
        request.environ[started_key] = time.perf_counter()

    @app.after_request
    def _count(response):
        started = request.environ.get(started_key)
        if started is not None:
            rule = request.url_rule
            status = response.status_code
            method = request.method if request.method in METHODS else OTHER_METHOD
            metrics.observe(rule.rule if rule is not None else UNMATCHED, method, status,
                            time.perf_counter() - started)
            if status in REFUSED_LOGIN_STATUSES and request.endpoint == LOGIN_ENDPOINT:
                count_login_refused(status)
        return response
