"""Every request and answer of the REST API, declared once as pydantic models.

The same declaration gives the checks (flask-openapi3 validates path, query and body from a
view's signature) and the OpenAPI document (``views/api.py`` builds it from these models).
Field rules come from ``protos/rules.py``; rules across fields (piece_size with pieces, the
piece count, unique names) are stated in the descriptions and enforced by validators that
name the field at fault (``cross_field``). Bodies reach these models only after
``bodies.py`` parsed them with limits (depth, size, string and array length, valid UTF-8).
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, RootModel, WithJsonSchema, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from .addresses import GRPC_ADDRESS_PATTERN, GRPC_ADDRESS_RULE, MAX_GRPC_ADDRESS_CHARS, AddressProblem, parse_grpc_address
from protos.rules import (MAX_NAME_BYTES, MIN_PIECE_SIZE, NAME_PATTERN, NAME_RULE, PEER_ID_PATTERN, PEER_ID_RULE, PIECES_RULE,
                          SHA256_PATTERN, SHA256_RULE, is_peer_id, is_sha256, name_problem, piece_count)

MAX_INT64 = 2**63 - 1
MAX_SECRET_CHARS = 1024
MAX_QUERY_CHARS = 1024
MAX_PIECES = 1_000_000
SEARCH_LIMIT_DEFAULT, SEARCH_LIMIT_CAP = 20, 200
NO_NUL_PATTERN = r"^[^\x00]*$"
GENERATION_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def cross_field(path: str | int | list, message: str) -> PydanticCustomError:
    """A validation error about the value at path below the validated one (e.g. "pieces", [3, "name"])."""
    return PydanticCustomError("cross_field", message, {"path": path if isinstance(path, list) else [path]})


def _rule(check, rule: str, schema: dict):
    """A string type checked by a contract rule function; schema is what the document shows."""

    def validate(value: str) -> str:
        if not check(value):
            raise PydanticCustomError("contract_rule", "must be {rule}", {"rule": rule})
        return value

    return Annotated[str, AfterValidator(validate), WithJsonSchema(schema)]


def _check_name(value: str) -> str:
    reason = name_problem(value)
    if reason is not None:
        raise PydanticCustomError("file_name", "the name {reason}", {"reason": reason})
    return value


PeerId = _rule(is_peer_id, PEER_ID_RULE, {"type": "string", "pattern": PEER_ID_PATTERN, "description": PEER_ID_RULE})
Sha256 = _rule(is_sha256, SHA256_RULE, {"type": "string", "pattern": SHA256_PATTERN, "description": SHA256_RULE})
FileName = Annotated[str, AfterValidator(_check_name), WithJsonSchema(
    {"type": "string", "minLength": 1, "maxLength": MAX_NAME_BYTES, "pattern": NAME_PATTERN, "description": NAME_RULE})]


def _integral(value: Any) -> Any:
    # JSON has one number type: 10.0 is the integer 10 (as JSON Schema's "integer" says); 10.5 is not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Int64 = Annotated[int, Field(ge=0, le=MAX_INT64, json_schema_extra={"format": "int64"}), BeforeValidator(_integral)]
PieceSize = Annotated[int, Field(ge=MIN_PIECE_SIZE, le=MAX_INT64, json_schema_extra={"format": "int64"}),
                      BeforeValidator(_integral)]
def _check_address(value: str) -> str:
    try:
        return parse_grpc_address(value)
    except AddressProblem as exc:
        raise PydanticCustomError("grpc_address", "{reason}", {"reason": str(exc)}) from None


# Parsed by schemas/addresses.py (ipaddress and a host name rule); the pattern is what the document shows.
GrpcAddress = Annotated[str, AfterValidator(_check_address), WithJsonSchema(
    {"type": "string", "pattern": GRPC_ADDRESS_PATTERN, "maxLength": MAX_GRPC_ADDRESS_CHARS,
     "examples": ["127.0.0.1:50051"], "description": f"where the peer serves gRPC: {GRPC_ADDRESS_RULE}"})]


class Params(BaseModel):
    """Base of path and query models; their JSON schema is built once, not per request.

    flask-openapi3 asks a query model for its JSON schema on every request (1.3 ms for
    SearchQuery, most of a search's own cost): the schema of a class never changes, so keep it.
    """

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """pydantic's JSON schema of this model, computed once per class and arguments (do not mutate it)."""
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in _SCHEMAS:
            _SCHEMAS[key] = super().model_json_schema(*args, **kwargs)
        return _SCHEMAS[key]


_SCHEMAS: dict[tuple, dict[str, Any]] = {}


class Body(BaseModel):
    """Base of request bodies: JSON types exactly (no "1" for 1, no 1 for true); unknown keys ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


# --- the index --------------------------------------------------------------------------------


class FileEntry(Body):
    """One shared file; piece_size and pieces go together, with one digest per piece."""

    # piece_size and pieces are both given (non-null) or both left out (or null)
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"properties": {"piece_size": {"type": "null"}, "pieces": {"type": "null"}}},
        {"required": ["piece_size", "pieces"],
         "properties": {"piece_size": {"type": "integer"}, "pieces": {"type": "array"}}},
    ]})

    name: FileName
    size: Int64
    sha256: Sha256
    piece_size: PieceSize | None = Field(None, description="bytes a piece; given together with pieces")
    pieces: list[Sha256] | None = Field(
        None, max_length=MAX_PIECES,
        description=f"{PIECES_RULE}; exactly ceil(size / piece_size) digests; given together with piece_size")

    @model_validator(mode="after")
    def _pieces_fit(self) -> "FileEntry":
        if (self.piece_size is None) != (self.pieces is None):
            missing = "pieces" if self.piece_size is not None else "piece_size"
            raise cross_field(missing, "piece_size and pieces go together")
        if self.piece_size is not None:
            expected = piece_count(self.size, self.piece_size)
            if len(self.pieces) != expected:
                raise cross_field("pieces", f"must hold {expected} digests for this size and piece_size")
        return self

    def row(self) -> dict:
        """The entry as the store takes it."""
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "piece_size": self.piece_size,
                "pieces": self.pieces}


UNIQUE_NAMES = "names are unique within the list"


def unique_names(files: list[FileEntry] | None) -> list[FileEntry] | None:
    """files, unless two entries share a name (the error names the second one)."""
    seen: set[str] = set()
    for i, entry in enumerate(files or ()):
        if entry.name in seen:
            raise cross_field([i, "name"], "duplicate name in this list")
        seen.add(entry.name)
    return files


class FileList(Body):
    """A list of FileEntry for PUT (replace) or POST (add)."""

    files: list[FileEntry] = Field(description=f"file entries; {UNIQUE_NAMES}; at most max_files_per_call "
                                               f"(100,000 by default, 413 past it) and 8 MiB a body")

    @field_validator("files")
    @classmethod
    def _unique(cls, files):
        return unique_names(files)

    def rows(self) -> list[dict]:
        """The entries as the store takes them."""
        return [e.row() for e in self.files]


class PublishQuery(Params):
    """PUT in pages: a big index goes up as numbered pages of one generation, then is committed."""

    generation: str | None = Field(
        None, pattern=GENERATION_PATTERN,
        description="a name the peer picks for this publication; with it, the body is one page of the new "
                    "index and the old index stays visible until the page sent with last=true commits")
    page: int = Field(0, ge=0, le=1_000_000, description="0, 1, 2, ...: page 0 starts the generation (dropping "
                                                           "any unfinished one); a page sent again is ignored")
    last: bool = Field(False, description="this page completes the generation: the new index replaces the old "
                                          "one at once")


# --- session ------------------------------------------------------------------------------------


class LoginRequest(Body):
    """Log in (a new peer_id registers with this secret); without grpc_address, a client session."""

    peer_id: PeerId
    secret: str = Field(min_length=1, max_length=MAX_SECRET_CHARS, pattern=NO_NUL_PATTERN)
    grpc_address: GrpcAddress | None = Field(
        None, description="where this peer serves gRPC; absent or null opens a client session (search, tickets, "
                          "reports): never live, no lease, no index, so files, accept_uploads and free_bytes "
                          "are then refused (422)")
    files: list[FileEntry] | None = Field(
        None, description=f"the whole index, for small ones ({UNIQUE_NAMES}); absent or null keeps the previous "
                          "one. A big index goes up in pages with PUT /peers/{peer_id}/files?generation=...")
    accept_uploads: bool = True
    free_bytes: Int64 | None = None

    @field_validator("files")
    @classmethod
    def _unique(cls, files):
        return unique_names(files)


class DirectoryKey(BaseModel):
    """The directory's public key that transfer tickets verify with."""

    kid: str = Field(description="the key's id, named by every ticket it signs")
    alg: str = Field(json_schema_extra={"enum": ["Ed25519"]})
    public_key: str = Field(description="the raw 32-byte public key, base64url without padding")


class LoginAnswer(BaseModel):
    """A fresh token for the Authorization header."""

    token: str
    peer_id: str
    lease_s: float
    registered: bool
    directory_key: DirectoryKey
    client: bool = Field(False, description="true for a client session (a login without grpc_address)")


class HeartbeatRequest(Body):
    """Optional body of a heartbeat; no body at all is the same as {}."""

    model_config = ConfigDict(openapi_extra={"required": False})

    free_bytes: Int64 | None = None
    accept_uploads: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_body(cls, data: Any) -> Any:
        return {} if data is None else data


class CopyOrder(BaseModel):
    """Push this file to that backup."""

    sha256: str
    name: str
    to_peer_id: str
    to_address: str
    size: int = Field(ge=0, description="the file's size, which the upload header must announce")
    ticket: str = Field(description="upload ticket for this push (sub: the sender, aud: to_peer_id): send it "
                                    "as gRPC metadata authorization: Bearer <ticket>")


class AuditOrder(BaseModel):
    """Read length bytes at offset of sha256 from the target with ticket, and compare them with your copy;
    answer POST /audits/{audit_id}."""

    audit_id: str
    sha256: str
    target_peer_id: str
    target_address: str
    offset: int = Field(ge=0)
    length: int = Field(ge=1, description="at most one piece")
    ticket: str = Field(description="a download ticket: sub = you (the auditor), aud = the target")


class HeartbeatAnswer(BaseModel):
    """The lease, the copies this holder must push now, the files it must re-hash and the audits it must run."""

    lease_s: float
    replicate: list[CopyOrder]
    verify: list[str] = Field(default_factory=list, description="sha256s to re-hash: a copy that no longer "
                                                                "matches is quarantined and withdrawn")
    audit: list[AuditOrder] = Field(default_factory=list)


# --- peers and files ---------------------------------------------------------------------------


class PeerPath(Params):
    """A peer named in the path."""

    peer_id: PeerId


class PeerFilePath(Params):
    """One file of one peer, named in the path."""

    peer_id: PeerId
    sha256: Sha256


class FilePath(Params):
    """One file, named in the path by its digest."""

    sha256: Sha256


class DeleteQuery(Params):
    """Options of DELETE /peers/{peer_id}/files/{sha256}."""

    withdraw: bool = Field(False, description="also stop replicating this file anywhere")


class Peer(BaseModel):
    """A live peer."""

    peer_id: str
    grpc_address: str
    last_seen: float = Field(description="seconds since the epoch")
    files: int = Field(ge=0)
    accept_uploads: bool
    free_bytes: int | None


class PeerList(RootModel[list[Peer]]):
    """Every live peer, by peer_id."""


class IndexedEntry(BaseModel):
    """A FileEntry as the directory lists it."""

    name: str
    size: int
    sha256: str
    piece_size: int | None = None
    pieces: list[str] | None = None


class PeerFiles(BaseModel):
    """What one live peer shares."""

    peer_id: str
    files: list[IndexedEntry]


class Indexed(BaseModel):
    """How many entries this call indexed (for a page: how many it held)."""

    indexed: int = Field(ge=0)
    staged: int | None = Field(None, ge=0, description="paged PUT: entries of this generation received so far")
    committed: bool | None = Field(None, description="paged PUT: true once the generation replaced the index")


class UnreachableAnswer(BaseModel):
    """What the directory's own probe found."""

    status: str = Field(json_schema_extra={"enum": ["removed", "alive"]})


# --- search and details ------------------------------------------------------------------------


# A cursor is the row id a page ends at, in hex: every string the pattern admits is a cursor
# (0 .. 2^63-1, the int64 the query binds), so the document states exactly what is valid.
CURSOR_PATTERN = r"^[0-7]?[0-9a-f]{1,15}$"


def encode_cursor(after_id: int) -> str:
    """The page cursor for the next page after file row after_id."""
    return f"{after_id:x}"


def decode_cursor(cursor: str) -> int:
    """The row id a cursor points after (the pattern already bounds it to int64)."""
    return int(cursor, 16)


class SearchQuery(Params):
    """GET /files: a name search, one page at a time."""

    q: str = Field("", max_length=MAX_QUERY_CHARS, pattern=NO_NUL_PATTERN,
                   description="names that contain this text, in any case, at every length ('' lists all)")
    limit: int = Field(SEARCH_LIMIT_DEFAULT, ge=1, le=MAX_INT64, description=f"capped at {SEARCH_LIMIT_CAP}")
    cursor: str | None = Field(None, pattern=CURSOR_PATTERN,
                               description="next_cursor of the previous page (pass it back as it is)")

    @property
    def after(self) -> int:
        """The file row id this page starts after."""
        return decode_cursor(self.cursor) if self.cursor else 0

    @property
    def page_size(self) -> int:
        """limit, capped."""
        return min(self.limit, SEARCH_LIMIT_CAP)


class Holder(BaseModel):
    """A live peer holding a file."""

    peer_id: str
    grpc_address: str


class SearchResult(BaseModel):
    """One file (sha256) whose name matched."""

    sha256: str
    name: str
    size: int
    holders: list[Holder]


class SearchPage(BaseModel):
    """One page of results; next_cursor is null on the last."""

    results: list[SearchResult]
    next_cursor: str | None


class PendingCopy(BaseModel):
    """A copy planned and not yet completed."""

    to_peer_id: str
    to_address: str
    from_peer_id: str
    deadline: float
    handed_at: float | None


class ReplicationState(BaseModel):
    """One file against the replication target."""

    target: int
    live_holders: int
    pending: list[PendingCopy]
    withdrawn: bool
    proven: int = Field(0, ge=0, description="live holders whose claim is proven (each counts as a copy)")
    unproven: int = Field(0, ge=0, description="live holders whose claim is unproven (together one copy)")
    refuted: int = Field(0, ge=0, description="live holders that failed an audit (not holders, not counted)")


class FileDetail(BaseModel):
    """One file: size, names, live holders, pieces and replication."""

    sha256: str
    size: int
    names: list[str]
    holders: list[Holder]
    piece_size: int | None = None
    pieces: list[str] | None = None
    replication: ReplicationState


class ReplicationSummary(BaseModel):
    """Files at, below and above the replication target across the network."""

    target: int
    files_total: int
    at_target: int
    below_target: int
    above_target: int
    pending_copies: int
    unplaceable: int
    withdrawn: int
    proven_claims: int = Field(0, ge=0, description="live (peer, file) entries proven")
    unproven_claims: int = Field(0, ge=0, description="live entries not proven yet (together one copy a file)")
    refuted_claims: int = Field(0, ge=0, description="live entries that failed an audit")


class Health(BaseModel):
    """The directory and its store answer."""

    status: str = Field(json_schema_extra={"enum": ["ok"]})


class Document(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""


class Problem(BaseModel):
    """An RFC 9457 problem: every error the directory answers."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    field: str | None = Field(None, description="the invalid input, as a JSON path like files[3].name")
