"""Every error the peer raises: one root (P2PError) and subclasses that carry structured data.

gRPC status codes are attached here by name only (no grpc import): the servicer turns an
exception into a status once, and the client stub boundary turns a status back into one of
these once.
"""


class P2PError(Exception):
    """Root of every error this package raises on purpose; str() is a line a human can act on."""

    #: name of the grpc.StatusCode this error becomes when it crosses the wire
    grpc_code = "INTERNAL"


class ConfigError(P2PError):
    """A setting is missing or malformed."""

    def __init__(self, source, key, problem):
        self.source, self.key, self.problem = source, key, problem
        super().__init__(f"{source}: {key}: {problem}")


class InvalidRequest(P2PError):
    """The request itself is wrong (bad range, bad digest format, ...)."""

    grpc_code = "INVALID_ARGUMENT"


def _shown(name, limit=120):
    """repr(name), shortened in the middle when long: a 4 KiB name helps nobody read the line."""
    text = repr(name)
    if len(text) <= limit:
        return text
    return f"{text[:limit - 40]}...{text[-30:]} ({len(name)} characters)"


class UnsafeName(InvalidRequest):
    """A file name that could escape the shared folder or is otherwise not acceptable."""

    def __init__(self, name, reason):
        self.name, self.reason = name, reason
        super().__init__(f"unsafe file name {_shown(name)}: {reason}")


class SizeMismatch(InvalidRequest):
    """The bytes received do not add up to the announced size."""

    def __init__(self, path, expected, actual):
        self.path, self.expected, self.actual = path, expected, actual
        super().__init__(f"{path}: expected {expected} bytes, got {actual}")


class OutOfRange(P2PError):
    """A requested offset or range lies past the end of the file."""

    grpc_code = "OUT_OF_RANGE"


class NotFound(P2PError):
    """No such file (or peer, or record)."""

    grpc_code = "NOT_FOUND"

    def __init__(self, what):
        self.what = what
        super().__init__(f"not found: {what}")


class AlreadyExists(P2PError):
    """A different file already has this name; it is never overwritten."""

    grpc_code = "ALREADY_EXISTS"

    def __init__(self, name, detail=None):
        self.name = name
        super().__init__(detail or f"{name!r} already exists with different content")


class ChecksumMismatch(P2PError):
    """The sha256 of received bytes differs from the one announced."""

    grpc_code = "DATA_LOSS"

    def __init__(self, path, expected, actual):
        self.path, self.expected, self.actual = path, expected, actual
        super().__init__(f"{path}: sha256 mismatch: expected {expected}, got {actual}")


class QuotaExceeded(P2PError):
    """An upload is larger than this peer accepts or than the free space."""

    grpc_code = "RESOURCE_EXHAUSTED"


class Busy(P2PError):
    """Too many transfers are running; try again later."""

    grpc_code = "RESOURCE_EXHAUSTED"


class UploadRejected(P2PError):
    """This peer does not accept uploads."""

    grpc_code = "PERMISSION_DENIED"


class PeerUnavailable(P2PError):
    """A peer could not be reached, timed out, or its stream broke."""

    grpc_code = "UNAVAILABLE"

    def __init__(self, address, detail=""):
        self.address, self.detail = address, detail
        super().__init__(f"peer {address} unavailable" + (f": {detail}" if detail else ""))


class TransportSecurityError(PeerUnavailable):
    """A TLS mismatch with a peer: plaintext on one side, a certificate from another CA, a refused client certificate.

    ours: the fix is in our own settings (we dialed plaintext, or lack a client certificate
    the peer accepts), so no other peer of the network would answer us either.
    """

    def __init__(self, address, problem, ours=False):
        self.address, self.detail, self.ours = address, problem, ours
        P2PError.__init__(self, f"peer {address}: {problem}")


class RemoteError(P2PError):
    """A peer answered with a status we have no better class for."""

    def __init__(self, address, code, detail):
        self.address, self.code, self.detail = address, code, detail
        super().__init__(f"peer {address}: {code}: {detail}")


class DirectoryError(P2PError):
    """The directory answered with an error (application/problem+json)."""

    def __init__(self, url, status, title, detail=""):
        self.url, self.status, self.title, self.detail = url, status, title, detail
        text = f"directory {url}: {status} {title}"
        super().__init__(text + (f": {detail}" if detail and detail != title else ""))


class Unauthorized(DirectoryError):
    """401 from the directory: the token is unknown (restart, lapsed lease) or the secret is wrong."""


class DirectoryUnavailable(P2PError):
    """No directory URL answered."""

    def __init__(self, urls, detail=""):
        self.urls, self.detail = tuple(urls), detail
        super().__init__(
            "directory unreachable: " + ", ".join(self.urls) + (f" ({detail})" if detail else "")
        )


class NoHolders(P2PError):
    """No live peer holds the file, or every holder failed."""

    def __init__(self, what, detail=""):
        self.what = what
        super().__init__(f"no live holder could deliver {what}" + (f": {detail}" if detail else ""))


class Interrupted(P2PError):
    """A download was stopped on request (a signal, cancel()); the partial and its record stay.

    result carries what the run did (a DownloadResult), signum the signal that asked, if any.
    """

    def __init__(self, what, detail="", signum=None, result=None):
        self.what, self.signum, self.result = what, signum, result
        super().__init__(f"interrupted: {what}" + (f": {detail}" if detail else ""))


class TicketRequired(P2PError):
    """A Download or Upload came without a ticket (no "authorization: Bearer <ticket>" metadata)."""

    grpc_code = "UNAUTHENTICATED"


class TicketRefused(P2PError):
    """The ticket is not valid for this transfer (forged, expired, another file, purpose, peer or size)."""

    grpc_code = "PERMISSION_DENIED"
