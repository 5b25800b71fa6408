"""Sockets: the HTTP/1.1 handler that turns connections into `Request`s for `HubApp`, and paced or faulty bodies."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .api import Request, split_url_path
from .responses import FileSlice, HubError, Response

if TYPE_CHECKING:
    from .server import HubServer

log = logging.getLogger(__name__)

UNTHROTTLED_CHUNK = 256 * 1024
CORRUPTION_STRIDE = 64 * 1024  # one flipped byte per 64 KiB served
MAX_REQUEST_BODY = 16 * 1024 * 1024
IDLE_CONNECTION_TIMEOUT_S = 60.0
CONNECTION_ERRORS = (ConnectionError, TimeoutError, socket.timeout)

# ----------------------------------------------------------------------------------------------------------
# HTTP plumbing


class BodyPacer:
    """Sleeps between chunks so the body goes out at `bytes_per_s`; wakes up early when the server stops."""

    def __init__(self, bytes_per_s: int | None, stopping: threading.Event) -> None:
        self.bytes_per_s = bytes_per_s
        self.stopping = stopping
        self.started = time.monotonic()

    @property
    def chunk_size(self) -> int:
        if not self.bytes_per_s:
            return UNTHROTTLED_CHUNK
        return max(512, min(16 * 1024, self.bytes_per_s // 50))  # ~50 writes per second

    def wait(self, bytes_sent: int) -> None:
        if self.bytes_per_s:
            due = self.started + bytes_sent / self.bytes_per_s
            self.stopping.wait(max(0.0, due - time.monotonic()))


def corrupt_chunk(chunk: bytes, chunk_offset: int) -> bytes:
    """Flip one byte every CORRUPTION_STRIDE bytes of the body (offsets relative to the body start)."""
    flipped = bytearray(chunk)
    first = (-chunk_offset) % CORRUPTION_STRIDE
    for index in range(first, len(flipped), CORRUPTION_STRIDE):
        flipped[index] ^= 0xFF
    return bytes(flipped)


def body_chunks(body: bytes | FileSlice, chunk_size: int) -> Iterator[bytes]:
    """The body in chunks, with the slice's corruption applied (its length never changes)."""
    if isinstance(body, bytes):
        for start in range(0, len(body), chunk_size):
            yield body[start : start + chunk_size]
        return
    with body.disk_path.open("rb") as stream:
        stream.seek(body.start)
        sent = 0
        while sent < body.length:
            chunk = stream.read(min(chunk_size, body.length - sent))
            if not chunk:  # the file shrank under us: the client will see a short body
                return
            yield corrupt_chunk(chunk, sent) if body.corrupt else chunk
            sent += len(chunk)


class HubRequestHandler(BaseHTTPRequestHandler):
    """Turns sockets into Requests for HubApp and writes its Responses back (keep-alive, HTTP/1.1)."""

    protocol_version = "HTTP/1.1"  # keep-alive: the client pools connections
    timeout = IDLE_CONNECTION_TIMEOUT_S
    server: HubHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.hub.track_connection(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        except CONNECTION_ERRORS:
            pass
        finally:
            self.server.hub.track_connection(self.connection, open_=False)

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the hub's own request log replaces http.server's stderr lines

    def _serve(self) -> None:
        hub = self.server.hub
        url = urlsplit(self.path)
        entry = hub.open_log_entry(
            method=self.command,
            path=unquote(url.path),
            query=parse_qs(url.query, keep_blank_values=True),
            range_header=self.headers.get("Range"),
            authorization=self.headers.get("Authorization"),
        )
        try:
            request = self._read_request(url.path, url.query)
            response = hub.app.respond(request) if request is not None else HubError(413, "Body too large").response()
        except Exception:  # a bug must not kill the connection thread silently
            log.exception("hub_server failed on %s %s", self.command, self.path)
            self.close_connection = True  # the request body may not have been read: don't reuse the stream
            response = HubError(500, "Internal error of the local hub server").response()
        try:
            self._write(response, entry)
        except CONNECTION_ERRORS:
            self.close_connection = True  # the client went away mid-response: nothing to report
            hub.update_log_entry(entry, aborted=True)
        finally:
            hub.close_log_entry(entry)

    def _read_request(self, path: str, query: str) -> Request | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BODY:
            self.close_connection = True
            return None
        body = self.rfile.read(length) if length else b""
        return Request(
            method=self.command,
            segments=split_url_path(path),
            query=parse_qs(query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            raw_path=self.path,
        )

    def _write(self, response: Response, entry: dict[str, Any]) -> None:
        hub = self.server.hub
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(response.content_length))
        self.end_headers()
        hub.update_log_entry(entry, status=response.status)
        if self.command == "HEAD":
            return
        pacer = BodyPacer(hub.throttle_bytes_per_s, hub.stopping)
        cut_after = response.body.cut_after if isinstance(response.body, FileSlice) else None
        sent = 0
        for chunk in body_chunks(response.body, pacer.chunk_size):
            if cut_after is not None and sent + len(chunk) >= cut_after:
                self._send_then_drop(chunk[: cut_after - sent], sent, entry)
                return
            if hub.stopping.is_set():
                self._send_then_drop(b"", sent, entry)
                return
            self.wfile.write(chunk)
            sent += len(chunk)
            hub.update_log_entry(entry, bytes_sent=sent)
            pacer.wait(sent)

    def _send_then_drop(self, last_bytes: bytes, sent: int, entry: dict[str, Any]) -> None:
        """End the response early, as a broken network would: the client sees a short body."""
        if last_bytes:
            self.wfile.write(last_bytes)
        self.close_connection = True
        self.server.hub.update_log_entry(entry, bytes_sent=sent + len(last_bytes), aborted=True)


class HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], hub: HubServer) -> None:
        self.hub = hub
        super().__init__(address, HubRequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (killed downloads, closed pools) are normal here: stay quiet about them."""
        if isinstance(sys.exc_info()[1], CONNECTION_ERRORS):
            return
        super().handle_error(request, client_address)
