"""The rule for a peer's grpc_address (issue 12): parsed with ``ipaddress`` and a host name rule, not a regex alone.

``host:port``: the host an IPv4 address, an IPv6 address in brackets, or a DNS host name
(RFC 1123 labels of 1-63 letters, digits and inner hyphens, 253 characters in all, the last
label not all digits); the port 1-65535. Addresses nobody can dial (unspecified, multicast)
are refused. The address is kept in one canonical spelling (IPv6 compressed, names in lower
case, no trailing dot), so that two spellings of one address are seen to be one.
"""
from __future__ import annotations

import ipaddress
import re

GRPC_ADDRESS_RULE = ("host:port; the host an IPv4 address, an IPv6 address in brackets or a DNS host name, "
                     "the port 1-65535")
# What the document states; the parser below decides (every address it accepts matches this).
GRPC_ADDRESS_PATTERN = (r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252}):"
                        r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$")
MAX_GRPC_ADDRESS_CHARS = 300  # the store's column
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PORT = re.compile(r"^[1-9][0-9]{0,4}$")


class AddressProblem(ValueError):
    """Why a text is not a grpc_address; str() says it to a person."""


def parse_grpc_address(text: str) -> str:
    """The canonical spelling of the grpc_address text; AddressProblem saying why it is not one."""
    if not isinstance(text, str) or not text or len(text) > MAX_GRPC_ADDRESS_CHARS or not text.isascii():
        raise AddressProblem(f"must be {GRPC_ADDRESS_RULE}, at most {MAX_GRPC_ADDRESS_CHARS} ASCII characters")
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise AddressProblem(f"must be host:port ({GRPC_ADDRESS_RULE})")
    if not _PORT.match(port) or not 1 <= int(port) <= 65535:
        raise AddressProblem(f"port {port!r} must be a number 1-65535")
    return f"{_host(host)}:{int(port)}"


def _host(host: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise AddressProblem(f"{host} is not an IPv6 address: {exc}") from None
        if address.scope_id:
            raise AddressProblem(f"{host}: a zone index means nothing to other peers")
        _dialable(address, host)
        return f"[{address.compressed}]"
    if ":" in host:
        raise AddressProblem(f"{host!r}: an IPv6 address goes in brackets, [{host}]:port")
    name = host.lower().removesuffix(".")
    labels = name.split(".")
    if labels[-1].isdigit():  # all digits at the end: an IPv4 address or nothing
        try:
            address = ipaddress.IPv4Address(name)
        except ValueError as exc:
            raise AddressProblem(f"{host!r} is not an IPv4 address: {exc}") from None
        _dialable(address, host)
        return str(address)
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise AddressProblem(f"{host!r} is not a host name: labels of 1-63 letters, digits and inner hyphens, "
                             "253 characters in all")
    return name


def _dialable(address, shown: str) -> None:
    if address.is_unspecified or address.is_multicast:
        raise AddressProblem(f"{shown} is not an address another peer can dial")
