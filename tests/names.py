"""Tables of file names that both sides of the contract must judge alike."""

# (name, a word the refusal must contain)
HOSTILE_NAMES = [
    ("", "empty"),
    ("/etc/passwd", "absolute"),
    ("../secret", "'..'"),
    ("a/../../b", "'..'"),
    ("..", "'..'"),
    ("./a", "'.'"),
    ("a\x00b", "NUL"),
    ("a\\b", "backslash"),
    ("..\\..\\windows", "backslash"),
    ("a//b", "empty path component"),
    ("a/", "empty path component"),
    ("x" * 256, "255 bytes"),
    ("é" * 128, "255 bytes"),  # 256 bytes in UTF-8
    ("/".join(["d" * 200] * 21), "4096 bytes"),
    (".p2p/hashcache.json", "work area"),
    (".p2p", "work area"),
]
