"""Hostile HTTP clients over raw sockets, for the edge tests and ``benchmarks/hostile_clients.py``.

Each attack is bounded in bytes, connections and time, and returns what the client saw.
``HealthWatch`` polls the health port meanwhile (its worst latency is what a kubelet probe
would see); ``RssWatch`` samples the runtime process's resident memory.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import httpx


@dataclass
class Outcome:
    """What the attacking client saw: the status of each response (None: closed or reset
    without one), the problem details, and the attack's own counters."""

    statuses: list[int | None] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _connect(url: str, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(_address(url), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _head(headers: dict[str, str]) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int | None, str]:
    """One response's status and body text (at most 64 KiB), or (None, why) on close/reset."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None, "closed"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = min(int(value.strip()), 65536)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, body[:length].decode(errors="replace")
    except (ConnectionError, TimeoutError, OSError) as exc:
        return None, type(exc).__name__


def _detail(body: str) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(body).get("detail", ""))
    return body[:200]


def _send_all(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


# -- attacks --------------------------------------------------------------------------------


def deep_json(url: str, headers: dict[str, str], depth: int = 100_000) -> Outcome:
    """100,000 nested ``[`` on ``/api/v1/evaluate``, then a second request on the same
    keep-alive connection (a 500 used to reset it)."""
    out = Outcome()
    body = b"[" * depth
    with _connect(url) as sock:
        request = (
            b"POST /api/v1/evaluate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + _head(headers) + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )  # fmt: skip
        _send_all(sock, request)
        status, text = read_response(sock)
        out.statuses.append(status)
        out.details.append(_detail(text))
        _send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, text = read_response(sock)
        out.statuses.append(status)
    return out


def chunked_flood(url: str, headers: dict[str, str], total: int = 300 << 20) -> Outcome:
    """``total`` bytes of a JSON string, chunked (no Content-Length), to ``/api/v1/evaluate``."""
    out = Outcome()
    chunk = b"a" * (1 << 20)
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    started = time.monotonic()
    with _connect(url, timeout=30) as sock:
        _send_all(sock, b"POST /api/v1/evaluate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + _head(headers) + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n')  # fmt: skip
        while sent < total and time.monotonic() - started < 60:
            if not _send_all(sock, frame):
                break
            sent += len(chunk)
        if sent >= total:
            _send_all(sock, b"0\r\n\r\n")
        status, text = read_response(sock, timeout=30)
    out.statuses.append(status)
    out.details.append(_detail(text))
    out.figures["sent_mib"] = sent / (1 << 20)
    return out


def huge_header(url: str, path: str = "/healthz", size: int = 64 << 20) -> Outcome:
    """A ``size``-byte header value, sent 1 MiB at a time until the server stops reading."""
    out = Outcome()
    piece = b"a" * (1 << 20)
    sent = 0
    with _connect(url, timeout=30) as sock:
        ok = _send_all(sock, f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Big: ".encode())
        while ok and sent < size:
            ok = _send_all(sock, piece)
            sent += len(piece) if ok else 0
        if ok:
            _send_all(sock, b"\r\n\r\n")
        status, _ = read_response(sock, timeout=30)
    out.statuses.append(status)
    out.figures["sent_mib"] = sent / (1 << 20)
    return out


def _hold(socks: list[socket.socket], drip: bytes, seconds: float, interval: float) -> list[float]:
    """Drip a byte per connection every ``interval`` for up to ``seconds``; when each was closed."""
    started = time.monotonic()
    closed_at: dict[int, float] = {}
    for sock in socks:
        sock.setblocking(False)
    while time.monotonic() - started < seconds and len(closed_at) < len(socks):
        for n, sock in enumerate(socks):
            if n in closed_at:
                continue
            try:
                sock.recv(65536)  # an answer (408) or the close: either way the server let go
                closed_at[n] = time.monotonic() - started
                continue
            except BlockingIOError:
                pass
            except OSError:
                closed_at[n] = time.monotonic() - started
                continue
            with contextlib.suppress(OSError):
                sock.send(drip)
        time.sleep(interval)
    return [closed_at.get(n, float("inf")) for n in range(len(socks))]


@contextlib.contextmanager
def _open(url: str, count: int, first: bytes) -> Iterator[list[socket.socket]]:
    socks = [_connect(url) for _ in range(count)]
    try:
        for sock in socks:
            _send_all(sock, first)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def slow_headers(url: str, connections: int = 20, seconds: float = 5.0) -> Outcome:
    """Slowloris: headers one byte at a time; how long the server lets each connection live."""
    out = Outcome()
    with _open(url, connections, b"GET /healthz HTTP/1.1\r\nHost: x\r\n") as socks:
        held = _hold(socks, b"X", seconds, 0.2)
    out.figures["max_held_s"] = max(held)
    out.figures["released"] = sum(1 for h in held if h != float("inf"))
    return out


def slow_bodies(
    url: str, headers: dict[str, str], connections: int = 20, seconds: float = 5.0
) -> Outcome:
    """``connections`` POSTs that send their headers and one body byte, then trickle; while they
    hang, one ordinary request must still be served (statuses[0])."""
    out = Outcome()
    first = (
        b"POST /api/v1/evaluate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + _head(headers) + b"Content-Length: 100000\r\n\r\n{"
    )  # fmt: skip
    with _open(url, connections, first) as socks:
        time.sleep(0.3)  # let the server see every half-open request
        ordinary = httpx.post(
            url + "/api/v1/evaluate", headers=headers, timeout=10,
            json={"tool": "file_read", "effect_level": "E1", "session_id": "hostile", "args": {}},
        )  # fmt: skip
        out.statuses.append(ordinary.status_code)
        held = _hold(socks, b" ", seconds, 0.5)
    out.figures["max_held_s"] = max(held)
    out.figures["released"] = sum(1 for h in held if h != float("inf"))
    return out


def multipart_flood(url: str, files: int = 200) -> Outcome:
    """An evidence upload with ``files`` file parts (Starlette's default allows 1,000)."""
    parts = [("bundle", ("pack.tar.gz", b"x" * 1024, "application/gzip"))] * files
    response = httpx.post(url + "/api/v1/evidence/verify", files=parts, timeout=30)
    return Outcome([response.status_code], [_detail(response.text)])


GARBAGE_QUERIES = (
    ("/api/v1/receipts", "limit=%C2%B2"),
    ("/api/v1/receipts", "limit=18446744073709551616"),
    ("/api/v1/proofgraph/sessions", "offset=9223372036854775808"),
    ("/api/v1/receipts", "session_id=s&since=lamport:%C2%B2"),
    ("/api/v1/receipts", "from=9999-12-31T23:59:59Z"),
    ("/api/v1/receipts", "to=0001-01-01T00:00:00%2B23:59"),
)


def garbage(url: str, headers: dict[str, str]) -> Outcome:
    """Query values ``str.isdigit()`` accepts but ``int()`` or the store cannot take, and lone
    surrogates in the proxy's JSON and raw UTF-8 surrogate bytes in its principal header."""
    out = Outcome()
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for path, query in GARBAGE_QUERIES:
            response = client.get(f"{path}?{query}")
            out.statuses.append(response.status_code)
            out.details.append(_detail(response.text))
        chat = b'{"model": "m\\ud800", "messages": [{"role": "user", "content": "\\udfff"}]}'
        response = client.post("/v1/chat/completions", content=chat)
        out.statuses.append(response.status_code)
        out.details.append(_detail(response.text))
        response = client.post(
            "/v1/chat/completions", json={"model": "m", "messages": []},
            headers=[(b"X-Helm-Principal", b"\xed\xa0\x80"), (b"X-Helm-Agent", b"\xed\xbf\xbf")],
        )  # fmt: skip
        out.statuses.append(response.status_code)
        out.details.append(_detail(response.text))
    return out


def big_listing(
    url: str, headers: dict[str, str], receipts: int = 10, size: int = 1_000_000
) -> Outcome:
    """``receipts`` evaluations with ``size``-character tool names (each status recorded), then
    one listing of up to 1,000."""
    out = Outcome()
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for n in range(receipts):
            body = {"tool": f"{n}-" + "t" * size, "effect_level": "E1", "session_id": "big-listing"}
            out.statuses.append(client.post("/api/v1/evaluate", json=body).status_code)
        response = client.get("/api/v1/receipts", params={"limit": 1000})
        out.statuses.append(response.status_code)
        page = response.json()
        out.figures["response_mib"] = len(response.content) / (1 << 20)
        out.figures["count"] = page.get("count", 0)
        out.figures["has_more"] = float(bool(page.get("has_more")))
    return out


# -- aggregate attacks (issue 30): what many requests, or one request's fields, add up to ----


def _db_bytes(data_dir: Path) -> int:
    """``helm.db``'s size once the runtime's checkpointer has copied the WAL into it (the WAL
    file itself keeps its high-water size, so it says little about growth)."""
    time.sleep(1.2)
    path = data_dir / "helm.db"
    return path.stat().st_size if path.exists() else 0


def proxy_disk_flood(
    url: str, data_dir: Path, calls: int = 40, size: int = (1 << 20) - 64
) -> Outcome:
    """``calls`` anonymous proxy calls whose ``session_id`` and ``model`` are ``size`` bytes
    each: how much ``helm.db`` grows and what the runtime answered."""
    out = Outcome()
    before = _db_bytes(data_dir)
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=60) as client:
        for n in range(calls):
            body = {"model": f"{n}" + "m" * size, "session_id": f"{n}" + "s" * size, "messages": []}
            response = client.post("/v1/chat/completions", json=body)
            out.statuses.append(response.status_code)
    out.figures["seconds"] = time.monotonic() - started
    out.figures["db_growth_mib"] = (_db_bytes(data_dir) - before) / (1 << 20)
    return out


def anonymous_receipt_flood(url: str, data_dir: Path, seconds: float = 5.0) -> Outcome:
    """Small anonymous proxy calls as fast as one client sends them for ``seconds``: receipts
    written (any non-429 answer) and the store's growth rate per minute."""
    out = Outcome()
    before = _db_bytes(data_dir)
    written = refused = 0
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=10) as client:
        while time.monotonic() - started < seconds:
            response = client.post("/v1/chat/completions", json={"model": "m", "messages": []})
            if response.status_code == 429:
                refused += 1
            else:
                written += 1
    elapsed = time.monotonic() - started
    out.statuses = [200] if written else []
    out.figures.update(written=written, refused=refused,
                       db_mib_per_min=(_db_bytes(data_dir) - before) / (1 << 20) * 60 / elapsed)  # fmt: skip
    return out


def held_uploads(
    url: str, connections: int = 20, size: int = 32 << 20, hold: float = 3.0
) -> Outcome:
    """``connections`` anonymous evidence uploads of ``size`` bytes each, held at their last
    byte for ``hold`` seconds (a buffering server holds all of them at once)."""
    out = Outcome()
    head = (b"POST /api/v1/evidence/verify HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: " + str(size).encode()
            + b"\r\n\r\n")  # fmt: skip
    chunk = b"\0" * (1 << 20)
    socks: list[socket.socket] = []
    senders: list[threading.Thread] = []

    def send(sock: socket.socket) -> None:
        left = size - 1
        while left > 0 and _send_all(sock, chunk[: min(left, len(chunk))]):
            left -= min(left, len(chunk))

    try:
        for _ in range(connections):
            sock = _connect(url, timeout=30)
            _send_all(sock, head)
            socks.append(sock)
            senders.append(threading.Thread(target=send, args=(sock,), daemon=True))
            senders[-1].start()
        for thread in senders:
            thread.join(60)
        time.sleep(hold)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.setblocking(False)
                data = sock.recv(65536)
                out.statuses.append(int(data.split(b" ", 2)[1]) if data else None)
                continue
            out.statuses.append(0)  # still held: no answer yet
    finally:
        for sock in socks:
            sock.close()
    return out


def proxy_body_flood(
    url: str, clients: int = 24, size: int = 6 << 20, seconds: float = 6.0
) -> Outcome:
    """``clients`` anonymous clients each sending ``size``-byte proxy bodies (a long message
    list to parse) again and again for ``seconds``; the health port's latency meanwhile is what
    the caller watches."""
    out = Outcome()
    message = {"role": "user", "content": "x" * 200}
    count = max(1, size // 230)
    body = json.dumps({"model": "m", "messages": [message] * min(count, 10_000),
                       "pad": ["p" * 400] * max(0, (count - 10_000) // 2)}).encode()  # fmt: skip
    statuses: list[int | None] = []
    stop = time.monotonic() + seconds

    def run() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while time.monotonic() < stop:
                try:
                    response = client.post("/v1/chat/completions", content=body,
                                           headers={"Content-Type": "application/json"})  # fmt: skip
                    statuses.append(response.status_code)
                except httpx.HTTPError:
                    statuses.append(None)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    out.statuses = sorted(set(statuses), key=lambda s: s or 0)
    out.figures["requests"] = len(statuses)
    out.figures["body_mib"] = len(body) / (1 << 20)
    return out


def spoofed_identity(url: str, headers: dict[str, str]) -> Outcome:
    """An anonymous proxy call claiming ``X-Helm-Principal: system-admin`` into session
    ``victim``: what the signed receipt records (executor_is_admin 1 = the claim was believed)."""
    out = Outcome()
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post("/v1/chat/completions", headers={"X-Helm-Principal": "system-admin"},
                               json={"model": "m", "session_id": "victim", "messages": []})  # fmt: skip
        out.statuses.append(response.status_code)
        receipt_id = response.headers.get("x-helm-receipt-id", "")
        if receipt_id:
            receipt = client.get(f"/api/v1/receipts/{receipt_id}", headers=headers).json()
            out.figures["executor_is_admin"] = float(receipt.get("executor_id") == "system-admin")
            out.figures["in_victim_session"] = float(receipt.get("session_id") == "victim")
    return out


def slow_cel(url: str, headers: dict[str, str], tool: str, args: dict[str, object]) -> Outcome:
    """One evaluate of ``tool`` (a rule with an expensive CEL expression): how long it took and
    what was decided."""
    out = Outcome()
    started = time.monotonic()
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        response = client.post("/api/v1/evaluate", json={"tool": tool, "effect_level": "E1",
                                                        "session_id": "cel", "args": args})  # fmt: skip
    out.statuses.append(response.status_code)
    out.details.append(
        str(response.json().get("reason_code", "")) if response.status_code == 200 else ""
    )
    out.figures["seconds"] = time.monotonic() - started
    return out


# -- watchers -------------------------------------------------------------------------------


class _Watch(threading.Thread):
    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self._halt = threading.Event()

    def sample(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def __enter__(self) -> Self:
        self.sample()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self.join(10)
        self.sample()


#: The chart's probes.readiness.timeoutSeconds (a test holds them equal): a probe slower than
#: this is a failed probe.
READINESS_TIMEOUT_S = 3.0


class HealthWatch(_Watch):
    """``GET /health`` on the health port every ``interval``; worst latency and failures (an
    error status, or no answer within the readiness probe's timeout, as the kubelet counts)."""

    def __init__(self, health_url: str, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.url = health_url + "/health"
        self.worst_s = 0.0
        self.probes = 0
        self.failures: list[str] = []
        self._client = httpx.Client(timeout=READINESS_TIMEOUT_S)

    def sample(self) -> None:
        started = time.monotonic()
        try:
            response = self._client.get(self.url, headers={"Connection": "close"})
            if response.status_code != 200:
                self.failures.append(str(response.status_code))
        except httpx.HTTPError as exc:
            self.failures.append(type(exc).__name__)
        self.worst_s = max(self.worst_s, time.monotonic() - started)
        self.probes += 1


class RssWatch(_Watch):
    """Resident memory of process ``pid`` every ``interval``: baseline and peak, in MiB."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        super().__init__(interval)
        self.status = Path(f"/proc/{pid}/status")
        self.baseline_mib = self._rss()
        self.peak_mib = self.baseline_mib

    def _rss(self) -> float:
        with contextlib.suppress(OSError):
            for line in self.status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def sample(self) -> None:
        self.peak_mib = max(self.peak_mib, self._rss())
