"""REST client for the directory (prefix /api/v1), with fail-over across several URLs."""
import logging
import threading
from urllib.parse import quote

import requests

from peer_node.errors import DirectoryError, DirectoryUnavailable, NotFound, Unauthorized

log = logging.getLogger(__name__)

API = "/api/v1"


class DirectoryClient:
    """Calls one directory, moving to the next URL of the list when one does not answer."""

    def __init__(self, urls, timeout=5.0):
        if isinstance(urls, str):
            urls = [urls]
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = timeout
        self.token = None
        self._current = 0
        self._session = requests.Session()  # keeps connections alive between heartbeats
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

    def request(self, method, path, json=None, params=None, auth=False):
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
                                                   headers=headers, timeout=self.timeout)
                except (requests.ConnectionError, requests.Timeout) as exc:
                    last = exc
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

    def login(self, peer_id, secret, grpc_address, files=None, accept_uploads=None, free_bytes=None):
        """POST /login; keeps the token; returns the answer (token, peer_id, lease_s, registered)."""
        body = {"peer_id": peer_id, "secret": secret, "grpc_address": grpc_address}
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
        """PUT /peers/{id}/files: replace the whole index."""
        return self.request("PUT", f"/peers/{quote(peer_id)}/files", json={"files": files}, auth=True)

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


def _reason(exc):
    """The innermost cause of a failed call, e.g. ConnectionRefusedError, for a one-line message."""
    if exc is None:
        return ""
    while (exc.__cause__ or exc.__context__) is not None:
        exc = exc.__cause__ or exc.__context__
    return type(exc).__name__
