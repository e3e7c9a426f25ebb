"""REST client for the directory (prefix /api/v1), with retries and fail-over across several URLs.

Each URL is tried by urllib3's Retry (through requests' HTTPAdapter): a refused connection or
a 502/503/504 is tried again after a jittered, growing pause; when that URL still fails, the
next URL of the list is asked. A big index goes up in pages (publish_index).
"""
import logging
import secrets
import ssl
import threading
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from peer_node import tls
from peer_node.errors import DirectoryError, DirectoryUnavailable, NotFound, Unauthorized

log = logging.getLogger(__name__)

API = "/api/v1"
# A gateway or a directory whose store is busy says "not now": try again, then fail over.
RETRY_STATUSES = (502, 503, 504)
# Pages of a paged publication: at most this many entries and (estimated) JSON bytes, far
# below the directory's 8 MiB body limit.
PAGE_ENTRIES = 5000
PAGE_BYTES = 4 * 1024 * 1024
# The page that commits a big index makes the directory swap it in one transaction: seconds
# for 100,000 entries, more than the 5 s a heartbeat may take.
PAGE_TIMEOUT = 60.0


def retry_policy(retries=2, backoff=0.2, jitter=0.2):
    """urllib3's Retry for one URL: connection errors and 502/503/504, any method, jittered back-off.

    Read timeouts are not retried (the directory may have done the work); the call moves to
    the next URL instead. Retry-After is respected.
    """
    return Retry(total=retries, connect=retries, read=0, status=retries, other=0, redirect=0,
                 allowed_methods=None, status_forcelist=RETRY_STATUSES, backoff_factor=backoff,
                 backoff_jitter=jitter, backoff_max=5.0, raise_on_status=True, respect_retry_after_header=True)


def pages_of(files, max_entries=PAGE_ENTRIES, max_bytes=PAGE_BYTES):
    """Split an index into pages of at most max_entries entries and about max_bytes of JSON each."""
    page, size = [], 0
    for entry in files:
        # requests sends ASCII JSON: at most 6 bytes a character of a name, 67 a piece digest
        cost = 120 + 6 * len(entry.get("name", "")) + 67 * len(entry.get("pieces") or ())
        if page and (len(page) >= max_entries or size + cost > max_bytes):
            yield page
            page, size = [], 0
        page.append(entry)
        size += cost
    yield page


class DirectoryClient:
    """Calls one directory, moving to the next URL of the list when one does not answer."""

    def __init__(self, urls, timeout=5.0, retry=None, verify=None):
        """verify: the CA file an https:// directory must be signed by, True for the system store,
        None for the process's [directory] ca (tls.use)."""
        if isinstance(urls, str):
            urls = [urls]
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = timeout
        self.token = None
        self._current = 0
        self._session = requests.Session()  # keeps connections alive between heartbeats
        # per request, not on the session: requests lets REQUESTS_CA_BUNDLE override a session's verify
        self.verify = tls.directory_verify() if verify is None else verify
        adapter = HTTPAdapter(max_retries=retry if retry is not None else retry_policy())
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._lock = threading.Lock()  # one request at a time per client

    @property
    def url(self):
        """The directory URL in use now."""
        return self.urls[self._current]

    def close(self):
        """Drop kept-alive connections."""
        with self._lock:
            self._session.close()

    # -- transport -----------------------------------------------------------------------

    def request(self, method, path, json=None, params=None, auth=False, timeout=None):
        """Send one call; return the decoded JSON (None for 204). Raises our directory errors."""
        headers = {"Accept": "application/json"}
        if auth:
            if not self.token:
                raise Unauthorized(self.url, 401, "not logged in")
            headers["Authorization"] = f"Bearer {self.token}"
        last = None
        with self._lock:
            for attempt in range(len(self.urls)):
                index = (self._current + attempt) % len(self.urls)
                base = self.urls[index]
                try:
                    answer = self._session.request(method, base + API + path, json=json, params=params,
                                                   headers=headers, timeout=timeout or self.timeout,
                                                   verify=self.verify)
                except (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError) as exc:
                    # Retry gave up on this URL (refused, timed out, or still 502/503/504): fail over.
                    last = exc
                    log.debug("directory %s failed: %s", base, _reason(exc))
                    continue
                if index != self._current:
                    log.info("directory fail-over: now using %s", base)
                    self._current = index
                return self._decode(base, answer)
        raise DirectoryUnavailable(self.urls, _reason(last))

    def _decode(self, base, answer):
        try:
            body = answer.json() if answer.content else None
        except ValueError:
            body = None
        if answer.ok:
            return body
        title, detail = answer.reason or "error", ""
        if isinstance(body, dict):
            title = body.get("title") or title
            detail = body.get("detail") or ""
        cls = Unauthorized if answer.status_code == 401 else DirectoryError
        raise cls(base, answer.status_code, title, detail)

    # -- the contract --------------------------------------------------------------------

    def login(self, peer_id, secret, grpc_address=None, files=None, accept_uploads=None, free_bytes=None):
        """POST /login; keeps the token; returns the answer (token, peer_id, lease_s, registered, directory_key).

        Without grpc_address it is a client session: it may search, ask for tickets and report,
        but never makes peer_id look live.
        """
        body = {"peer_id": peer_id, "secret": secret}
        if grpc_address is not None:
            body["grpc_address"] = grpc_address
        if files is not None:
            body["files"] = files
        if accept_uploads is not None:
            body["accept_uploads"] = accept_uploads
        if free_bytes is not None:
            body["free_bytes"] = free_bytes
        answer = self.request("POST", "/login", json=body)
        self.token = answer["token"]
        return answer

    def logout(self):
        """POST /logout and forget the token."""
        try:
            self.request("POST", "/logout", json={}, auth=True)
        finally:
            self.token = None

    def heartbeat(self, free_bytes=None, accept_uploads=None):
        """POST /heartbeat; returns {lease_s, replicate: [...]}."""
        body = {}
        if free_bytes is not None:
            body["free_bytes"] = free_bytes
        if accept_uploads is not None:
            body["accept_uploads"] = accept_uploads
        return self.request("POST", "/heartbeat", json=body, auth=True) or {}

    def put_files(self, peer_id, files):
        """PUT /peers/{id}/files: replace the whole index in one call (a small one)."""
        return self.request("PUT", f"/peers/{quote(peer_id)}/files", json={"files": files}, auth=True)

    def publish_index(self, peer_id, files, max_entries=PAGE_ENTRIES, max_bytes=PAGE_BYTES, between_pages=None):
        """Replace the whole index in pages of one new generation; the last page commits it.

        The old index stays searchable until the commit. between_pages() runs after each page
        (the node keeps its lease there). Returns the number of entries sent. A failure part-way
        leaves the old index in place; calling again starts a new generation.
        """
        generation = secrets.token_hex(8)
        pages = list(pages_of(files, max_entries, max_bytes))
        path = f"/peers/{quote(peer_id)}/files"
        for n, page in enumerate(pages):
            params = {"generation": generation, "page": n, "last": "true" if n == len(pages) - 1 else "false"}
            answer = self.request("PUT", path, json={"files": page}, params=params, auth=True,
                                  timeout=PAGE_TIMEOUT) or {}
            if "committed" not in answer:
                # a directory that does not page replaced the whole index with this page
                if len(pages) > 1:
                    self.put_files(peer_id, files)
                break
            if between_pages is not None and n < len(pages) - 1:
                between_pages()
        return len(files)

    def add_files(self, peer_id, files):
        """POST /peers/{id}/files: add or update entries."""
        return self.request("POST", f"/peers/{quote(peer_id)}/files", json={"files": files}, auth=True)

    def delete_file(self, peer_id, sha256):
        """DELETE /peers/{id}/files/{sha256}."""
        return self.request("DELETE", f"/peers/{quote(peer_id)}/files/{sha256}", auth=True)

    def search(self, query, limit=None):
        """GET /files?q=, following next_cursor; returns the list of results."""
        results, cursor = [], None
        while True:
            params = {"q": query}
            if limit:
                params["limit"] = limit
            if cursor:
                params["cursor"] = cursor
            answer = self.request("GET", "/files", params=params) or {}
            results.extend(answer.get("results", []))
            cursor = answer.get("next_cursor")
            if not cursor or (limit and len(results) >= limit):
                return results[:limit] if limit else results

    def file(self, sha256):
        """GET /files/{sha256}; NotFound when the directory does not know it."""
        try:
            return self.request("GET", f"/files/{sha256}")
        except DirectoryError as exc:
            if exc.status == 404:
                raise NotFound(f"no file with sha256 {sha256} in the directory") from None
            raise

    def peers(self):
        """GET /peers: the live peers."""
        answer = self.request("GET", "/peers")
        if isinstance(answer, dict):  # tolerate a wrapped list
            answer = answer.get("peers", answer.get("results", []))
        return answer or []

    def report_unreachable(self, peer_id):
        """POST /peers/{id}/unreachable; returns the directory's verdict ("removed" or "alive")."""
        answer = self.request("POST", f"/peers/{quote(peer_id)}/unreachable", json={}, auth=True)
        return (answer or {}).get("status")

    def keys(self):
        """GET /keys: the directory's ticket-signing public keys, [{kid, alg, public_key}]."""
        return (self.request("GET", "/keys") or {}).get("keys") or []

    def ticket(self, sha256, purpose="download", holder=None, size=None):
        """POST /tickets: (ticket, expires_at) for one transfer; with the session's token when there is one.

        Without a token only an open network's directory grants (download) tickets.
        """
        body = {"sha256": sha256, "purpose": purpose}
        if holder is not None:
            body["holder"] = holder
        if size is not None:
            body["size"] = size
        answer = self.request("POST", "/tickets", json=body, auth=bool(self.token)) or {}
        return answer["ticket"], answer.get("expires_at")

    def report_corrupt(self, peer_id, sha256):
        """POST /peers/{id}/files/{sha256}/corrupt: peer_id served bytes that are not sha256."""
        return self.request("POST", f"/peers/{quote(peer_id)}/files/{sha256}/corrupt", json={}, auth=True)

    def report_verified(self, peer_id, sha256):
        """POST /peers/{id}/files/{sha256}/verified: pieces peer_id served verified."""
        return self.request("POST", f"/peers/{quote(peer_id)}/files/{sha256}/verified", json={}, auth=True)

    def audit_result(self, audit_id, ok, detail=""):
        """POST /audits/{audit_id}: the auditor's verdict on one audited claim."""
        body = {"ok": bool(ok)}
        if detail:
            body["detail"] = detail
        return self.request("POST", f"/audits/{quote(str(audit_id))}", json=body, auth=True)


def _reason(exc):
    """The innermost cause of a failed call, e.g. ConnectionRefusedError, for a one-line message."""
    if exc is None:
        return ""
    while (exc.__cause__ or exc.__context__) is not None:
        exc = exc.__cause__ or exc.__context__
    if isinstance(exc, ssl.SSLCertVerificationError) and "mismatch" in (exc.verify_message or ""):
        return f"its TLS certificate is not for this host name or address: {exc.verify_message}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"its TLS certificate did not verify: {exc.verify_message}; set [directory] ca "
                "(P2P_DIRECTORY_CA) to the CA that signed it")
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc} (an http:// directory given as https://?)"
    return type(exc).__name__
