"""A minimal HTTP/1.1 keep-alive client for the timed calls of the benchmark.

httpx costs its caller about a millisecond of CPU per request on this machine (request and
response models, header normalisation, its transport stack), and the benchmark client shares the
service's two cores: that millisecond would be counted as the service's latency and would take
CPU from it under load. A POS integration's client is its own business; the benchmark measures
the service. This client writes one request and reads one response with a Content-Length or
chunked body over one connection, nothing else (no redirects, no TLS, no compression).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit


class ProtocolError(Exception):
    """The server answered something this client does not read, or closed the connection."""


@dataclass(frozen=True, slots=True)
class Response:
    status_code: int
    headers: dict[str, str]  # names in lower case; a repeated header keeps its last value
    content: bytes


class Connection:
    """One connection to `base_url` (http only), reopened when the server closes it."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http://host:port is supported, not {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        fixed = {"Host": f"{self._host}:{self._port}", **(headers or {})}
        self._fixed_headers = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", content_type: str = "application/json"
    ) -> Response:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        head = f"{method} {path} HTTP/1.1\r\n{self._fixed_headers}"
        if body or method in {"POST", "PUT", "PATCH"}:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        self._writer.write(head.encode("latin-1") + b"\r\n" + body)
        try:
            response = await _read_response(self._reader)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise ProtocolError(f"the connection ended before a whole response: {exc!r}") from exc
        if response.headers.get("connection", "").lower() == "close":
            await self.close()
        return response

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1."):
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        content = await _read_chunked(reader)
    else:
        content = await reader.readexactly(int(headers.get("content-length", "0")))
    return Response(int(rest.split(" ", 1)[0]), headers, content)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
