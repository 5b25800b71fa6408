"""What a request gets back: the Response value, the hub's error responses, byte ranges and file bodies."""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ----------------------------------------------------------------------------------------------------------
# Responses


@dataclass(frozen=True)
class FileSlice:
    """A byte range of a file on disk to send as a body, with the test faults to apply to it."""

    disk_path: Path
    start: int
    length: int
    corrupt: bool = False
    cut_after: int | None = None  # drop the connection after this many body bytes


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | FileSlice = b""

    @property
    def content_length(self) -> int:
        return self.body.length if isinstance(self.body, FileSlice) else len(self.body)


class HubError(Exception):
    """An error response the hub would send; `code` becomes `X-Error-Code`, which the client maps to
    RepositoryNotFoundError / GatedRepoError / RevisionNotFoundError / EntryNotFoundError."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}

    def response(self) -> Response:
        headers = {"X-Error-Message": header_safe(self.message), **self.headers}
        if self.code is not None:
            headers["X-Error-Code"] = self.code
        return json_response({"error": self.message}, self.status, headers)


def header_safe(text: str) -> str:
    """Printable ASCII only: error messages quote request input, which must not break the header block."""
    return "".join(char if " " <= char <= "~" else "?" for char in text)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload).encode()
    return Response(status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body)


def not_found(what: str) -> HubError:
    return HubError(404, f"{what} not found")


class RangeNotSatisfiable(Exception):
    pass


def parse_byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `bytes=` range, or None to send the whole file.

    Malformed and multi-range headers are ignored (a full 200 is a valid answer to them); a range that
    starts past the end raises RangeNotSatisfiable (416).
    """
    if not header or not header.strip().startswith("bytes=") or "," in header:
        return None
    first_text, dash, last_text = (part.strip() for part in header.strip()[len("bytes=") :].partition("-"))
    if not dash:
        return None
    if not first_text:  # suffix range: the last N bytes
        if not last_text.isdigit():
            return None
        if int(last_text) == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - int(last_text)), size - 1
    if not first_text.isdigit() or (last_text and not last_text.isdigit()):
        return None
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable
    return first, min(last, size - 1)


def guess_content_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def file_response(
    method: str,
    disk_path: Path,
    size: int,
    range_header: str | None,
    headers: dict[str, str],
    corrupt: bool,
    cut_after: int | None,
) -> Response:
    """200 or 206 (or 416) for a file, honouring a single Range."""
    headers = {"Accept-Ranges": "bytes", "Content-Type": guess_content_type(disk_path.name), **headers}
    try:
        byte_range = parse_byte_range(range_header, size)
    except RangeNotSatisfiable:
        return Response(416, {**headers, "Content-Range": f"bytes */{size}"})
    first, last = byte_range if byte_range is not None else (0, size - 1)
    body = FileSlice(disk_path, first, last - first + 1, corrupt and method == "GET", cut_after)
    if byte_range is None:
        return Response(200, headers, body)
    return Response(206, {**headers, "Content-Range": f"bytes {first}-{last}/{size}"}, body)
