"""Schemathesis hooks for tests/integration/test_fuzz.py: generated bodies that the document calls
valid also obey the rules it can state only in prose (the piece count, unique names, a name's
UTF-8 byte lengths), so positive_data_acceptance checks everything else."""
import schemathesis

from protos.rules import name_problem, piece_count

MAX_REPAIRED_PIECES = 1000


def _positive_body(case) -> bool:
    components = getattr(getattr(case, "meta", None), "components", None) or {}
    for location, info in components.items():
        if str(getattr(location, "value", location)).endswith("body"):
            return str(getattr(info.mode, "value", info.mode)).endswith("positive")
    return False


def _repair(files: list) -> None:
    seen = set()
    for i, item in enumerate(files):
        if not isinstance(item, dict):
            continue
        if not isinstance(item.get("name"), str) or name_problem(item["name"]) is not None \
                or item["name"] in seen:
            item["name"] = f"fuzz-{i}.bin"
        seen.add(item["name"])
        size, piece_size = item.get("size"), item.get("piece_size")
        if isinstance(piece_size, (int, float)) and isinstance(size, (int, float)) and piece_size > 0 \
                and isinstance(item.get("pieces"), list):
            need = piece_count(int(size), int(piece_size))
            if need > MAX_REPAIRED_PIECES:
                item["piece_size"] = item["pieces"] = None
            else:
                item["pieces"] = [(item["pieces"] or ["0" * 64])[j % max(1, len(item["pieces"]))]
                                  for j in range(need)]


@schemathesis.hook
def map_case(context, case):
    """Make a positively generated body's file list obey the cross-field rules."""
    if _positive_body(case) and isinstance(case.body, dict) and isinstance(case.body.get("files"), list):
        _repair(case.body["files"])
    if _positive_body(case) and isinstance(case.body, dict) and _path(case) == "/login" \
            and case.body.get("grpc_address") is None:
        # a client session (no grpc_address) has no index and no upload capacity (422 otherwise)
        for name in ("files", "accept_uploads", "free_bytes"):
            case.body.pop(name, None)
    if _positive_body(case) and isinstance(case.body, dict) and _path(case) == "/tickets" \
            and case.body.get("purpose") == "upload":
        # an upload ticket names its target, and the size of a file the directory does not know (422 otherwise)
        if case.body.get("holder") is None:
            case.body["holder"] = "fuzzer"
        if case.body.get("size") is None:
            case.body["size"] = 1
    return case


def _path(case) -> str:
    return str(getattr(getattr(case, "operation", None), "path", ""))
