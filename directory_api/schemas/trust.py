"""Requests and answers of the trust resource (issue 12): the directory's keys and transfer tickets."""
from __future__ import annotations

from pydantic import BaseModel, Field

from . import DirectoryKey

__all__ = ["KeySet"]


class KeySet(BaseModel):
    """Every public key the directory's tickets verify with (one today; more while a key is rolled)."""

    keys: list[DirectoryKey]
