"""`HubServer`: the local hub's lifecycle, its token, its fault hooks and its request log; and the command line."""

from __future__ import annotations

import copy
import hmac
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from .api import HubApp
from .git import FileDigests
from .http import HubHTTPServer
from .responses import HubError

TREE_PAGE_SIZE = 1000  # the hub's page sizes for /tree (50 when expand=true)
EXPANDED_TREE_PAGE_SIZE = 50

# ----------------------------------------------------------------------------------------------------------
# The server object


class HubServer:
    """A Hugging Face Hub look-alike over a local folder, running in a daemon thread.

    Use as a context manager (`with HubServer(root) as hub: ... hub.url ...`) or start()/stop().
    `requests` is the request log (copies; entries appear when a request starts and are updated as
    its body goes out). Mutable settings, read per request: `throttle_bytes_per_s`, `tree_page_size`,
    `expanded_tree_page_size`.
    """

    def __init__(
        self,
        root: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        throttle_bytes_per_s: int | None = None,
        corrupt_downloads: dict[str, int] | None = None,
        interrupt_downloads: dict[str, int] | None = None,
        on_request: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """`corrupt_downloads`: {repo-relative path or path under static/: n} -> the first n GETs of that file
        have bytes flipped (same length). `interrupt_downloads`: {path: n_bytes} -> the first GET of that file
        is cut after n_bytes of body and its connection dropped. `on_request` is called with each finished
        log entry (the CLI prints them)."""
        self.root = Path(root).resolve()
        self.host, self.port = host, port
        self.token = token
        self.throttle_bytes_per_s = throttle_bytes_per_s
        self.tree_page_size = TREE_PAGE_SIZE
        self.expanded_tree_page_size = EXPANDED_TREE_PAGE_SIZE
        self.on_request = on_request
        self.digests = FileDigests()
        self.app = HubApp(self)
        self.stopping = threading.Event()
        self._corruptions_left = dict(corrupt_downloads or {})
        self._interruptions_left = dict(interrupt_downloads or {})
        self._log: list[dict[str, Any]] = []
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._http: HubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("HubServer is not started")
        host, port = self._http.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    def start(self) -> HubServer:
        if self._http is not None:
            return self
        self.stopping.clear()
        self._http = HubHTTPServer((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.1}, name="hub-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is None:
            return
        self.stopping.set()  # throttled bodies stop sleeping and end
        self._http.shutdown()
        self._http.server_close()
        self._close_open_connections()  # idle keep-alive threads would otherwise linger
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http, self._thread = None, None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def track_connection(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _close_open_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # --- authorization

    def check_authorization(self, header: str | None) -> None:
        """Raise the hub's 401 unless the server needs no token or `header` is `Bearer <token>`."""
        if self.token is None:
            return
        if not header:
            raise HubError(
                401,
                "Access to this repo is restricted. You must have access to it and be authenticated to access it."
                " Please log in.",
                "GatedRepo",
            )
        if not self._authorization_matches(header):
            raise HubError(401, "Invalid credentials in Authorization header")

    def _authorization_matches(self, header: str | None) -> bool | None:
        if self.token is None:
            return None
        scheme, _, credentials = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token.encode())

    # --- test faults

    def take_corruption(self, key: str) -> bool:
        """Whether this GET of `key` (a repo-relative or static path) must be corrupted; uses one of its n."""
        with self._lock:
            remaining = self._corruptions_left.get(key, 0)
            if remaining <= 0:
                return False
            self._corruptions_left[key] = remaining - 1
            return True

    def take_interruption(self, key: str) -> int | None:
        """Body bytes after which this GET of `key` must be cut; only the first GET of a path is."""
        with self._lock:
            return self._interruptions_left.pop(key, None)

    # --- request log

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._log)

    @property
    def hash_computations(self) -> int:
        """How many file digests were computed (the others came from the (path, mtime, size) cache)."""
        return self.digests.computations

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def open_log_entry(
        self, method: str, path: str, query: dict[str, list[str]], range_header: str | None, authorization: str | None
    ) -> dict[str, Any]:
        """Append and return a new entry. Only the Authorization scheme and whether it matched are kept."""
        scheme = (authorization or "").partition(" ")[0] or None
        entry = {
            "method": method,
            "path": path,
            "query": query,
            "range": range_header,
            "status": None,
            "bytes_sent": 0,
            "aborted": False,
            "auth": {"scheme": scheme, "matches_token": self._authorization_matches(authorization)},
            "started_at": time.time(),
        }
        with self._lock:
            self._log.append(entry)
        return entry

    def update_log_entry(self, entry: dict[str, Any], **changes: Any) -> None:
        with self._lock:
            entry.update(changes)

    def close_log_entry(self, entry: dict[str, Any]) -> None:
        if self.on_request is not None:
            with self._lock:
                finished = copy.deepcopy(entry)
            self.on_request(finished)


# ----------------------------------------------------------------------------------------------------------
# CLI


def format_log_line(entry: dict[str, Any]) -> str:
    query = urlencode(entry["query"], doseq=True)
    target = f"{entry['path']}?{query}" if query else entry["path"]
    auth = entry["auth"]
    auth_text = "-" if auth["scheme"] is None else f"{auth['scheme']}:{'ok' if auth['matches_token'] else 'no'}"
    parts = [entry["method"], target, str(entry["status"]), f"{entry['bytes_sent']}B", f"auth={auth_text}"]
    if entry["range"]:
        parts.append(f"range={entry['range']}")
    if entry["aborted"]:
        parts.append("aborted")
    return " ".join(parts)


def print_log_line(entry: dict[str, Any]) -> None:
    print(format_log_line(entry), file=sys.stderr, flush=True)


def serve_forever(root: Path, host: str, port: int, throttle_bytes_per_s: int | None = None) -> int:
    """Serve `root` until SIGINT/SIGTERM, printing the URL and one line per request (the CLI's `serve`)."""
    stop_requested = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop_requested.set())
    server = HubServer(root, host, port, throttle_bytes_per_s=throttle_bytes_per_s, on_request=print_log_line)
    with server:
        print(server.url, flush=True)
        while not stop_requested.wait(0.5):
            pass
    return 0
