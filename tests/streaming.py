"""A request with a large body streamed to a served API over a raw socket, as a client
that does not wait to be told: it sends until the server answers (or closes), then
reads the answer. Used by the served tests of the body limit and by
benchmarks/request_limit.py."""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Sent:
    status: int | None  # None: the server closed the connection without an answer
    answer: bytes
    bytes_sent: int  # of the body, before the answer came (or the connection broke)
    seconds: float


def stream_body(
    port: int,
    method: str,
    path: str,
    *,
    size: int,
    declare_length: bool,
    chunk: int = 64 * 1024,
    timeout: float = 60,
) -> Sent:
    """Send `size` bytes of body to 127.0.0.1:`port`, with Content-Length or chunked,
    generated piece by piece (never held whole)."""
    start = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    framing = f"Content-Length: {size}" if declare_length else "Transfer-Encoding: chunked"
    sock.sendall(
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"{framing}\r\n\r\n".encode()
    )
    piece = b"x" * chunk
    sent = 0
    try:
        while sent < size:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered (or closed): stop sending
            n = min(chunk, size - sent)
            sock.sendall(piece[:n] if declare_length else b"%x\r\n%s\r\n" % (n, piece[:n]))
            sent += n
        else:
            if not declare_length:
                sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = b""
    try:
        while b"\r\n\r\n" not in answer or not _complete(answer):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    return Sent(status, answer, sent, time.monotonic() - start)


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False
