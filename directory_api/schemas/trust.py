"""Requests and answers of the trust resource (issue 12): the directory's keys and transfer tickets."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from . import Body, DirectoryKey, Int64, PeerId, Sha256

__all__ = ["KeySet", "TicketAnswer", "TicketRequest"]


class KeySet(BaseModel):
    """Every public key the directory's tickets verify with (one today; more while a key is rolled)."""

    keys: list[DirectoryKey]


class TicketRequest(Body):
    """Ask for a transfer ticket: to download a file from its holders, or to upload it to one peer."""

    sha256: Sha256
    purpose: Literal["download", "upload"] = Field(
        "download", description="download: any live holder (or the one named by holder) may serve it; "
                                "upload: the peer named by holder may accept it")
    holder: PeerId | None = Field(
        None, description="download: the one holder the ticket is for (it must hold the file); upload: the target, "
                          "required (422 without), live and accepting uploads (409 otherwise)")
    size: Int64 | None = Field(
        None, description="upload of a file the directory does not index yet: its size (required then, 422 "
                          "without); for a file it knows, the indexed size is used")


class TicketAnswer(BaseModel):
    """A signed ticket: send it as gRPC metadata authorization: Bearer <ticket>."""

    ticket: str = Field(description="v1.<claims>.<signature> (protos/tickets.py), verified offline by the peer")
    expires_at: int = Field(description="seconds since the epoch; ask again after it")
