"""Helpers the integration tests share: running `p2p`, waiting on conditions, asking the directory."""
import hashlib
import os
import subprocess
import sys
import time

import requests

from tests.procs import ROOT

GRPCURL = str(ROOT / ".venv" / "bin" / "grpcurl")


def sha(data):
    """The sha256 hex digest of data."""
    return hashlib.sha256(data).hexdigest()


def clean_env(**extra):
    """The environment without any P2P_ variable, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("P2P_")}
    env.update(extra)
    return env


def p2p(*args, cwd, timeout=60):
    """Run the p2p command in a subprocess; return CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "peer_node", *map(str, args)], cwd=cwd,
                          env=clean_env(PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                          timeout=timeout)


def wait_until(fn, timeout=10.0, interval=0.1):
    """Poll fn until it returns something true; return that, or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def holders_of(directory_url, digest):
    """Sorted peer ids of the live holders of digest, by the directory."""
    r = requests.get(f"{directory_url}/api/v1/files/{digest}", timeout=5)
    return sorted(h["peer_id"] for h in r.json().get("holders", [])) if r.ok else []


def live_peers(directory_url):
    """Sorted ids of the live peers, by the directory."""
    return sorted(p["peer_id"] for p in requests.get(f"{directory_url}/api/v1/peers", timeout=5).json())


def write_config(path, peer, directory_url):
    """Write a peerConfig.ini for a started peer process; return its path."""
    path.write_text(f"[peer]\npeer_id = {peer.peer_id}\nsecret = {peer.peer_id}-secret\n"
                    f"folder = {peer.folder}\n[directory]\nurl = {directory_url}\n")
    return path


def wait_for_heartbeats(directory_url, peer_ids, count, timeout=30.0):
    """Wait until the directory has renewed the lease of every peer in peer_ids count more times.

    Each heartbeat moves a peer's last_seen in GET /peers; a holder's planning rounds happen
    at its heartbeats. Polling faster than peers beat, so a change is seen once per beat at
    most: two beats between polls count as one, which only makes the wait longer.
    """
    seen = {peer_id: [] for peer_id in peer_ids}

    def enough():
        rows = requests.get(f"{directory_url}/api/v1/peers", timeout=5).json()
        for row in rows:
            values = seen.get(row["peer_id"])
            if values is not None and (not values or values[-1] != row["last_seen"]):
                values.append(row["last_seen"])
        return all(len(values) > count for values in seen.values())  # the first value is the start

    wait_until(enough, timeout=timeout, interval=0.1)
