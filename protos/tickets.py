"""Transfer tickets: the compact, signed permission a directory gives for one transfer.

A peer serves bytes only to the holder of a ticket the directory signed (DESIGN.md, "Transfer
tickets"). Both sides apply the rules in this module: the directory signs, peers verify
offline, with the directory's Ed25519 public key and no call per transfer.

A ticket is ``v1.<payload>.<signature>``: the payload is canonical JSON (sorted keys, no
spaces) of the claims, both parts base64url without padding, and the signature is Ed25519
over the ASCII text ``v1.<payload>``, as JWS signs its header and payload. About 320
characters: small enough for a gRPC metadata value and a shell variable.

Claims:
- ``sub``: the peer_id that asked for the ticket (who may use it);
- ``sha``: the sha256 of the one file it is for;
- ``pur``: ``download`` or ``upload``;
- ``aud``: for an upload, the peer_id of the one peer that may accept it; a download ticket
  may name one holder too (otherwise any holder may serve it);
- ``size``: for an upload, the size the header must announce;
- ``iat``/``exp``: issued and expiry time, integer seconds since the epoch;
- ``kid``: which directory key signed it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

VERSION = "v1"
DOWNLOAD = "download"
UPLOAD = "upload"
PURPOSES = (DOWNLOAD, UPLOAD)
#: gRPC metadata key that carries a ticket: "authorization: Bearer <ticket>"
METADATA_KEY = "authorization"
#: seconds a ticket lives by default: long enough for a slow download to start, short enough
#: that a leaked one is worth little
DEFAULT_TTL_S = 300
#: seconds of clock difference between the directory and a peer that a check forgives
DEFAULT_LEEWAY_S = 30
#: longest text accepted as a ticket; anything longer is refused before any decoding
MAX_TICKET_CHARS = 2048


class TicketError(ValueError):
    """Root of every reason a ticket is refused; str() says what to do about it."""


class MalformedTicket(TicketError):
    """The text is not a ticket at all."""


class ForgedTicket(TicketError):
    """The signature does not verify against any key of the directory."""


class ExpiredTicket(TicketError):
    """The ticket's expiry lies in the past (beyond the leeway)."""

    def __init__(self, expired_at: int, now: float):
        self.expired_at, self.now = expired_at, now
        super().__init__(f"ticket expired {now - expired_at:.0f} s ago: ask the directory for a new one")


class WrongTicket(TicketError):
    """A genuine ticket for another file, purpose or peer; ``claim`` names what differs."""

    def __init__(self, claim: str, expected, actual):
        self.claim, self.expected, self.actual = claim, expected, actual
        what = {"sha": "file", "pur": "purpose", "aud": "peer", "size": "size"}.get(claim, claim)
        super().__init__(f"ticket is for another {what} ({actual!r}, this transfer needs {expected!r}): "
                         "ask the directory for a ticket for this one")


@dataclass(frozen=True)
class Claims:
    """What a verified ticket grants."""

    sub: str
    sha: str
    pur: str
    exp: int
    iat: int
    kid: str
    aud: str | None = None
    size: int | None = None

    def to_dict(self) -> dict:
        """The claims as the payload carries them (absent optional claims left out)."""
        data = {"sub": self.sub, "sha": self.sha, "pur": self.pur, "exp": self.exp, "iat": self.iat,
                "kid": self.kid}
        if self.aud is not None:
            data["aud"] = self.aud
        if self.size is not None:
            data["size"] = self.size
        return data


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    if not text or not text.isascii():
        raise MalformedTicket("not a ticket: a part is empty or not ASCII")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedTicket("not a ticket: a part is not base64url") from None


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    """The raw 32 bytes of a public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_key_bytes(key)).hexdigest()[:16]


def encode_public_key(key: Ed25519PublicKey) -> str:
    """A public key as the directory publishes it (base64url of the raw 32 bytes)."""
    return _b64(public_key_bytes(key))


def decode_public_key(text: str) -> Ed25519PublicKey:
    """A public key from encode_public_key's text; TicketError if it is not one."""
    raw = _unb64(text) if isinstance(text, str) else b""
    if len(raw) != 32:
        raise MalformedTicket("not an Ed25519 public key (32 bytes, base64url)")
    return Ed25519PublicKey.from_public_bytes(raw)


def sign(claims: Claims, private_key: Ed25519PrivateKey) -> str:
    """The ticket text for claims, signed with private_key."""
    if claims.pur not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {claims.pur!r}")
    payload = json.dumps(claims.to_dict(), sort_keys=True, separators=(",", ":")).encode("utf-8")
    head = f"{VERSION}.{_b64(payload)}"
    return f"{head}.{_b64(private_key.sign(head.encode('ascii')))}"


def _claims(data) -> Claims:
    if not isinstance(data, dict):
        raise MalformedTicket("not a ticket: the payload is not an object")
    try:
        claims = Claims(sub=data["sub"], sha=data["sha"], pur=data["pur"], exp=data["exp"], iat=data["iat"],
                        kid=data["kid"], aud=data.get("aud"), size=data.get("size"))
    except (KeyError, TypeError):
        raise MalformedTicket("not a ticket: a claim is missing") from None
    texts = (claims.sub, claims.sha, claims.pur, claims.kid)
    numbers = (claims.exp, claims.iat) + ((claims.size,) if claims.size is not None else ())
    if not all(isinstance(t, str) for t in texts) or (claims.aud is not None and not isinstance(claims.aud, str)) \
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        raise MalformedTicket("not a ticket: a claim has the wrong type")
    return claims


def peek(ticket: str) -> dict:
    """The claims a ticket states, unverified ({} when unreadable): which key to verify it with."""
    parts = ticket.split(".") if isinstance(ticket, str) else []
    if len(parts) != 3:
        return {}
    try:
        payload = json.loads(_unb64(parts[1]))
    except (TicketError, ValueError, UnicodeDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def verify(ticket: str, keys: dict, now: float, *, purpose: str, sha256: str | None, me: str | None = None,
           size: int | None = None, leeway_s: float = DEFAULT_LEEWAY_S) -> Claims:
    """The Claims of a genuine, current ticket for this transfer; a TicketError saying why not.

    keys maps key ids to the directory's public keys. sha256 None leaves the file to the caller
    (a peer learns it only from the request or an Upload's header). me is the checking peer's own
    peer_id: an upload ticket must name it, and a download ticket that names a holder must name
    it. size, for an upload, is the size the header announces.
    """
    if not isinstance(ticket, str) or len(ticket) > MAX_TICKET_CHARS:
        raise MalformedTicket("not a ticket: missing or too long")
    parts = ticket.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise MalformedTicket(f"not a ticket: expected {VERSION}.<payload>.<signature>")
    payload, signature = _unb64(parts[1]), _unb64(parts[2])
    try:
        claims = _claims(json.loads(payload))
    except (ValueError, UnicodeDecodeError):
        raise MalformedTicket("not a ticket: the payload is not JSON") from None
    key = keys.get(claims.kid)
    if key is None:
        raise ForgedTicket("ticket signed by a key this peer does not know: it is not from this "
                           "network's directory (or the peer has not logged in since the key changed)")
    try:
        key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
    except InvalidSignature:
        raise ForgedTicket("ticket signature does not verify: it was not issued by the directory") from None
    if claims.exp + leeway_s < now:
        raise ExpiredTicket(claims.exp, now)
    if claims.pur != purpose:
        raise WrongTicket("pur", purpose, claims.pur)
    if sha256 is not None and claims.sha != sha256:
        raise WrongTicket("sha", sha256, claims.sha)
    if purpose == UPLOAD or claims.aud is not None:
        if me is None or claims.aud != me:
            raise WrongTicket("aud", me, claims.aud)
    if purpose == UPLOAD and size is not None and claims.size is not None and claims.size != size:
        raise WrongTicket("size", size, claims.size)
    return claims


def bearer(ticket: str) -> str:
    """The metadata value that carries ticket."""
    return f"Bearer {ticket}"


def from_bearer(value: str | None) -> str | None:
    """The ticket inside an "authorization: Bearer <ticket>" value, or None if absent."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
