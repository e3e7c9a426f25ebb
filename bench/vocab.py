"""Deterministic, realistic file names (artist/album/track.ext) and a fixed query mix for the directory benchmark.

The same seed gives the same names; the artists of a smaller network are the first artists of a
larger one, so one query list serves every scale and hits a number of rows that varies by query
(from none, through a handful, to a large share of the index) and grows with the network.
"""
from __future__ import annotations

import hashlib
import logging
import random
import urllib.parse
from dataclasses import dataclass

log = logging.getLogger(__name__)

ADJECTIVES = """
amber ancient arctic autumn bitter black blue bright broken burning calm cheap cold copper
crimson crystal dark deep desert distant dusty electric empty endless faded fallen final
first frozen ghost glass golden gray green hidden hollow honey iron ivory jade last lazy
little lonely lost loud lucky lunar magnetic marble midnight mighty modern morning neon
nervous northern ocean orange pale paper perfect plastic purple quiet radio rapid red
restless rough royal rusty sacred salty savage scarlet secret shadow silent silver simple
sleepy slow small smoky solar sonic southern static steady steel stone strange sugar summer
sunny sweet tender thunder tidal tiny twin urban velvet violet wandering warm wild winter
wooden young
""".split()

NOUNS = """
anchors angels animals arrows atlas avenue bandits bears birds blades bones boys bridges
brothers builders cactus canyon captains cars castles cats chairs children circus citizens
clouds coast comets cowboys coyotes creatures crows daggers daughters dogs dragons dreamers
drivers drums eagles echoes engines experiment falcons fields flowers foxes friends gardens
giants girls harbor hawks hearts heroes hills horses hunters islands jackals kids kings
knights lakes lanterns lions machines magnets mirrors monkeys monsters mountains nomads
orchestra owls palms parade pilots pirates planets poets prophets queens rabbits radios
rebels riders rivers robots sailors saints satellites shadows sisters skeletons snakes
society soldiers spiders stars strangers swans tigers towers trains travelers valley
vampires wolves workers
""".split()

# Words of track and album titles, most frequent first (a Zipf-like draw favours the head).
TITLE_WORDS = """
love night heart time life dream baby home world fire light rain blue girl day away road
song dance moon sun summer star sky river city eyes soul gold wind tears kiss sweet lonely
wild forever tonight morning highway midnight ocean storm thunder angel devil heaven paradise
shadow ghost stranger lover memory promise letter window train station bridge garden island
desert mountain valley harbor winter spring autumn candle mirror echo silence whisper
lullaby anthem ballad blues boogie carnival circus diamond emerald feather fever flame
freedom glory gravity harmony horizon hurricane illusion jungle kingdom lantern liberty
magic marathon miracle mystery nectar oasis orbit outlaw pendulum pilgrim prism quartz
rhapsody riddle rocket sapphire serenade siren solstice spiral stardust sunrise sunset
symphony tango tempest tidal twilight universe velvet voyage waltz wildfire wonder zenith
""".split()

EXTENSIONS = [("mp3", 55), ("flac", 20), ("ogg", 8), ("m4a", 8), ("wav", 3), ("opus", 3),
              ("mkv", 1), ("pdf", 1), ("zip", 1)]

# Fragments and words that occur nowhere in generated names: searches that find nothing.
MISSES = ["qzxj", "xylophonic", "zzyzx", "vortexqq", "jjjk"]

PEER_SECRET = "bench-secret"


def _all_artists() -> list[str]:
    """Every artist name the generator can use, in a fixed shuffled order."""
    names = [f"{a.title()} {n.title()}" for a in ADJECTIVES for n in NOUNS]
    rng = random.Random(20240601)
    rng.shuffle(names)
    for i in range(0, len(names), 5):  # one artist in five is "The ..."
        names[i] = "The " + names[i]
    return names


ARTISTS = _all_artists()


@dataclass(frozen=True)
class Dataset:
    """N peers and M files: names, sizes, digests, and which peers hold each file."""

    peers: list[dict]
    files: list[dict]          # {sha256, name, size}
    copies: list[tuple[int, int]]  # (file index, peer index)
    n_artists: int


def artist_count(n_files: int) -> int:
    """How many artists a network of n_files files has: grows with the network, sub-linearly."""
    return min(len(ARTISTS), max(40, int(n_files ** 0.5 * 3)))


def file_digest(i: int) -> str:
    """The deterministic sha256 of synthetic file i."""
    return hashlib.sha256(b"bench-file-%d" % i).hexdigest()


def generate(n_peers: int, n_files: int, replication: int = 2, seed: int = 7) -> Dataset:
    """Deterministic peers, files (artist/album/NN - title.ext) and copies (each file on `replication` peers)."""
    rng = random.Random(seed)
    n_artists = artist_count(n_files)
    ext_names = [e for e, _ in EXTENSIONS]
    ext_weights = [w for _, w in EXTENSIONS]
    word_weights = [1.0 / (rank + 1) ** 0.7 for rank in range(len(TITLE_WORDS))]
    cum_words = list(_accumulate(word_weights))
    cum_ext = list(_accumulate(ext_weights))
    files: list[dict] = []
    i = 0
    album_no = 0
    while i < n_files:
        artist = ARTISTS[album_no % n_artists]
        year = 1960 + rng.randrange(65)
        w1, w2 = rng.choices(TITLE_WORDS, cum_weights=cum_words, k=2)
        album = f"{w1.title()} {w2.title()} ({year})" if w1 != w2 else f"{w1.title()} ({year})"
        ext = rng.choices(ext_names, cum_weights=cum_ext)[0]
        tracks = rng.randint(8, 14)
        for t in range(1, tracks + 1):
            if i >= n_files:
                break
            k = rng.choice((1, 2, 2, 3))
            words = rng.choices(TITLE_WORDS, cum_weights=cum_words, k=k)
            title = " ".join(w.title() for w in words)
            name = f"{artist}/{album}/{t:02d} - {title}.{ext}"
            size = rng.randint(2_000_000, 60_000_000) if ext in ("flac", "wav") else rng.randint(1_500_000, 12_000_000)
            if ext == "mkv":
                size = rng.randint(300_000_000, 4_000_000_000)
            files.append({"sha256": file_digest(i), "name": name, "size": size})
            i += 1
        album_no += 1
    peers = [{"peer_id": f"bench-peer-{p:05d}", "secret": PEER_SECRET,
              "grpc_address": f"127.0.0.1:{20000 + p % 40000}"} for p in range(n_peers)]
    copies: list[tuple[int, int]] = []
    reps = max(1, min(replication, n_peers))
    for f in range(n_files):
        owner = f % n_peers
        for r in range(reps):
            copies.append((f, (owner + r * (n_peers // reps or 1) + r) % n_peers))
    return Dataset(peers=peers, files=files, copies=copies, n_artists=n_artists)


def _accumulate(values):
    total = 0.0
    for v in values:
        total += v
        yield total


def queries() -> list[str]:
    """The fixed search mix (plain text): artists, words, titles, fragments, extensions and misses."""
    qs: list[str] = []
    qs += [a.lower() for a in ARTISTS[:12]]                     # a whole artist name: tens to hundreds of rows
    qs += [ARTISTS[k].split()[-1].lower() for k in range(12, 20)]  # a noun shared by several artists
    qs += TITLE_WORDS[:6]                                      # the most frequent title words: many rows
    qs += TITLE_WORDS[40:46]                                   # middling words
    qs += TITLE_WORDS[-6:]                                     # rare words
    qs += ["ove", "ight", "ain", "sta"]                        # short fragments (trigram minimum is 3)
    qs += [".flac", ".ogg"]                                    # extensions: a large share of the index
    qs += ["midnight train", "01 - love", "(1999)"]            # phrases across words
    qs += MISSES                                               # nothing matches
    return qs


def encoded_queries() -> list[str]:
    """The search mix URL-encoded for the q= parameter."""
    return [urllib.parse.quote(q, safe="") for q in queries()]


def hit_counts(names_lower: list[str], qs: list[str], max_scan: int = 200_000) -> dict[str, int]:
    """How many names contain each query (case-insensitive substring); estimated from a sample above max_scan."""
    step = max(1, -(-len(names_lower) // max_scan))
    sample = names_lower[::step]
    return {q: sum(1 for n in sample if q.lower() in n) * step for q in qs}
