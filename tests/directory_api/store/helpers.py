"""What the store's tests share: a fixed time and a way to log a peer in."""

NOW = 1_000_000.0
LIVE = NOW - 10  # live_since used by most tests: anyone seen at NOW is live


def add_peer(store, peer_id, last_seen=NOW, files=(), token=None, **kw):
    """Register peer_id and start its session at last_seen with these files (and login extras)."""
    assert store.register_peer(peer_id, "hash", last_seen)
    store.start_session(peer_id, token or f"tok-{peer_id}", f"127.0.0.1:{len(peer_id) + 9000}", last_seen,
                        files_=list(files), **kw)


def prove(store, peer_id, *sha256s, at=NOW):
    """Mark peer_id's entries of these sha256s proven (as a confirmed push or a passed audit would)."""
    from directory_api.store.claims import PROVEN

    for digest in sha256s:
        assert store.set_proof(peer_id, digest, PROVEN, at)
