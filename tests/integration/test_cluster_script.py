"""`make cluster`: the README's way to run directories behind HAProxy, stopped by a signal."""
import os
import re
import shutil
import uuid

import pytest
import requests

from devtools.cluster import drop_database, haproxy_path, install_haproxy, ClusterError
from tests.integration.helpers import wait_until
from tests.procs import ROOT, ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited
        return stat.read().split(") ")[-1][0] != "Z"


def _printed(proc, line, timeout):
    """True once proc has printed line (within timeout seconds), else False."""
    try:
        proc.wait_for_output(rf"^{re.escape(line)}$", timeout=timeout)
        return True
    except AssertionError:
        return False


def test_make_cluster_serves_through_haproxy_and_stops_everything_on_sigterm(pg_url):
    make = shutil.which("make")
    if make is None:
        pytest.fail("make is not installed; the README's commands need it")
    if haproxy_path() is None:
        try:
            install_haproxy(say=lambda line: None)
        except ClusterError as exc:
            pytest.skip(f"no HAProxy: {exc}")
    name = f"p2p_cluster_test_{uuid.uuid4().hex[:8]}"
    proc = ServerProcess([make, "-s", "-C", ROOT, "cluster", f"CLUSTER_ARGS=--port 0 --database-name {name}"],
                         r"load balancer listening on (http://\S+)", own_group=True, timeout=90)
    try:
        lb = proc.match.group(1)
        pids = [int(p) for p in re.findall(r"\(pid (\d+)\)|haproxy: pid (\d+)", proc.output) for p in p if p]
        assert len(pids) == 3, proc.output  # two directories and haproxy
        assert requests.get(f"{lb}/api/v1/health", timeout=5).json() == {"status": "ok"}
        login = requests.post(f"{lb}/api/v1/login", json={"peer_id": "via-lb", "secret": "pw",
                                                          "grpc_address": "127.0.0.1:9"}, timeout=10)
        assert login.status_code == 200
        assert "point peers at it" in proc.output
    finally:
        proc.stop(timeout=30)
        # make exits at the signal; the script it started goes on stopping the directories and
        # HAProxy (seconds on a loaded machine) and says so last: wait for that, then drop its database.
        stopped = _printed(proc, "cluster stopped", timeout=30)
        drop_database(name)
    assert stopped, proc.output
    wait_until(lambda: not any(_alive(pid) for pid in pids), timeout=20)
