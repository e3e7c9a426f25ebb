"""Run a directory cluster in the foreground: PostgreSQL, 2-3 gunicorn directories, HAProxy in front.

    python scripts/cluster.py [--directories N] [--port PORT] [--database-name NAME]

Creates (once) a PostgreSQL database of its own on the local server (127.0.0.1:5432, user
postgres), starts the directories on loopback ports and HAProxy on --port, prints the load
balancer's URL for peers (``[directory] url``) and runs until Ctrl-C or SIGTERM, which stop
every process it started, by PID. HAProxy is installed with apt-get when missing.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.cluster import Cluster, ClusterConfig, ClusterError  # noqa: E402

POLL_S = 0.2  # how soon a signal (or HAProxy's exit) is noticed


def main(argv=None) -> int:
    """Start the cluster, print its URL, wait for a signal, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directories", type=int, default=2, choices=(1, 2, 3),
                        help="directory processes behind the load balancer (default 2)")
    parser.add_argument("--port", type=int, default=8080, help="the load balancer's port (0: any free one)")
    parser.add_argument("--database-name", default="p2p_cluster", help="the database on the local server")
    parser.add_argument("--database-url", default=None,
                        help="use this database instead of creating one (an SQLAlchemy URL)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers per directory (default 1)")
    parser.add_argument("--lease", default=None, help="DIRECTORY_LEASE_S for every directory")
    parser.add_argument("--replication", default=None, help="DIRECTORY_REPLICATION for every directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env = {}
    if args.lease:
        env["DIRECTORY_LEASE_S"] = args.lease
    if args.replication:
        env["DIRECTORY_REPLICATION"] = args.replication
    config = ClusterConfig(directories=args.directories, port=args.port, database_name=args.database_name,
                           database_url=args.database_url, workers=args.workers, env=env)
    # The handler only appends: one that took a lock (Event.set) deadlocked when make, signalled
    # with its process group, passed the same SIGTERM on and the second landed inside the first.
    signalled: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, _frame: signalled.append(signum))
    cluster = Cluster(config, say=lambda line: print(line, flush=True))
    try:
        cluster.start()
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    try:
        for d in cluster.directories:
            print(f"{d.name}: {d.url} (pid {d.child.pid})", flush=True)
        print(f"haproxy: pid {cluster.haproxy.pid}", flush=True)
        print(f"load balancer listening on {cluster.url}", flush=True)
        print(f"point peers at it: [directory] url = {cluster.url}   (Ctrl-C stops everything)", flush=True)
        while not signalled:
            if not cluster.haproxy.running():
                print(f"cluster: haproxy exited:\n{cluster.haproxy.tail()}", file=sys.stderr)
                return 1
            time.sleep(POLL_S)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cluster.stop()
        print("cluster stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
