"""Tables of file names that both sides of the contract must judge alike."""


def _name_of_bytes(total, component=240):
    """A name of exactly total UTF-8 bytes made of components of at most component bytes."""
    parts, left = [], total
    while left > component:
        take = min(component, left - 2)  # leave at least one byte after the "/"
        parts.append("d" * take)
        left -= take + 1
    parts.append("d" * left)
    name = "/".join(parts)
    assert len(name.encode("utf-8")) == total
    return name


PARTIAL = "a" * 64 + ".part"

# (name, a word the refusal must contain); every name here is valid UTF-8, so it can travel
# over gRPC as well as JSON
HOSTILE_NAMES = [
    ("", "empty"),
    ("/etc/passwd", "absolute"),
    ("/", "absolute"),
    ("../secret", "'..'"),
    ("a/../../b", "'..'"),
    ("..", "'..'"),
    ("a/..", "'..'"),
    ("./a", "'.'"),
    ("a/.", "'.'"),
    ("a\x00b", "NUL"),
    ("a\\b", "backslash"),
    ("..\\..\\windows", "backslash"),
    ("a//b", "empty path component"),
    ("a/", "empty path component"),
    ("x" * 256, "255 bytes"),
    ("d/" + "x" * 256 + "/f", "255 bytes"),
    ("é" * 128, "255 bytes"),  # 256 bytes in UTF-8
    ("😀" * 64, "255 bytes"),  # 256 bytes in UTF-8
    ("/".join(["d" * 200] * 21), "4096 bytes"),
    (_name_of_bytes(4097), "4096 bytes"),
    ("é" * 2049, "4096 bytes"),  # 4098 bytes: the whole name's bound is checked before a component's
    # the work area, at every depth and in any case
    (".p2p/hashcache.json", "work area"),
    (".p2p", "work area"),
    (".p2p/partial/" + PARTIAL, "work area"),
    ("sub/.p2p/partial/" + PARTIAL, "work area"),
    ("a/b/c/.p2p/tmp/upload-x", "work area"),
    ("sub/.p2p", "work area"),
    (".P2P/partial/x", "work area"),
    ("sub/.P2p/x", "work area"),
]

# lone surrogates: what Python makes of a name on disk that is not UTF-8; JSON can carry them,
# protobuf cannot (the client refuses to encode them), so they are not in HOSTILE_NAMES
NOT_UTF8_NAMES = [
    ("a\ud800b", "UTF-8"),
    ("\udcff.bin", "UTF-8"),
    ("sub/caf\udce9.txt", "UTF-8"),
]

ACCEPTED_NAMES = [
    "a",
    "a.txt",
    "sub/dir/b.bin",
    ".hidden",
    "sub/.hidden/x",
    "a..b",
    "...",
    "...a/b",
    "a b/c d.txt",
    "-dash",
    "é.txt",
    "ümlaut ✓.txt",
    "日本語/ファイル.txt",
    "emoji 😀.png",
    # near misses of the work area
    "p2p",
    ".p2",
    ".p2pp",
    ".p2p.txt",
    "x.p2p",
    "sub/.p2p2/x",
    "sub/p2p/partial/" + PARTIAL,
    # exactly at the limits
    "x" * 255,
    "d/" + "x" * 255,
    "é" * 127 + "x",  # 255 bytes
    "😀" * 63 + "xyz",  # 255 bytes
    _name_of_bytes(4096),
    _name_of_bytes(4096, component=255),
    "/".join(["y" * 200] * 20),
]

# every name with the verdict both sides must reach: a word of the refusal, or None (accepted)
NAME_VERDICTS = HOSTILE_NAMES + NOT_UTF8_NAMES + [(name, None) for name in ACCEPTED_NAMES]


def name_id(name):
    """A short, readable test id for a name from these tables."""
    shown = name.encode("ascii", "backslashreplace").decode("ascii")
    if len(shown) <= 40:
        return shown
    return f"{shown[:16]}...{shown[-8:]}({len(name.encode('utf-8', 'surrogatepass'))}B)"


NAME_VERDICT_IDS = [name_id(name) for name, _ in NAME_VERDICTS]
