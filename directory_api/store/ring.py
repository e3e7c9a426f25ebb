"""Places on the placement ring: a fixed 63-bit number for every peer and every file.

Planning draws a file's backup candidates from the live peers that follow the file's place on
this ring (an index on ``p2p_peers.ring`` serves it), so the cost of one planning round does not
grow with the number of peers; the rendezvous score then ranks that sample. Both places are
hashes, so the samples of different files spread evenly over the peers and one file's sample
stays the same while the peers do.
"""
from __future__ import annotations

import hashlib

RING_BITS = 63  # fits a signed 64-bit integer column on both databases


def ring_key(peer_id: str) -> int:
    """The place of a peer on the ring."""
    return int.from_bytes(hashlib.sha256(peer_id.encode()).digest()[:8], "big") >> (64 - RING_BITS)


def file_place(sha256: str) -> int:
    """The place of a file (its sha256, 64 hex digits) on the ring."""
    return int(sha256[:16], 16) >> (64 - RING_BITS)
