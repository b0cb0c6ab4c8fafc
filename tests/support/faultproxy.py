"""A fault-injecting TCP proxy on 127.0.0.1 (threads, no tests here): between the export and SeaweedFS, or the
export and MariaDB. It passes bytes through until told otherwise:

- :meth:`FaultProxy.reset` — every open connection torn down with a TCP reset (both sides);
- :meth:`FaultProxy.refuse` — new connections reset at once (a server that is down), until :meth:`clear`;
- :meth:`FaultProxy.throttle` — bytes towards the server (``up``) or the client (``down``) at most N a second;
- :meth:`FaultProxy.on_request` — HTTP only: the Nth request matching a method and a path/query pattern (and
  every later one, with ``times=None``) answered ``503 SlowDown`` without reaching the server, its connection
  reset, or (``corrupt``) passed on with one bit of its body flipped; ``strip_checksums`` drops S3's
  ``x-amz-checksum-*`` response headers (a store without checksums).

HTTP is followed request by request (``Content-Length`` bodies, ``Expect: 100-continue``); a request with a body of
another kind (chunked) makes the connection opaque: passed through, no longer inspected.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SLOW_DOWN = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
             b"<Message>Please reduce your request rate.</Message></Error>")


@dataclass
class Rule:
    """Requests whose ``METHOD target`` line matches ``pattern``: from the ``nth`` on, ``times`` of them (None:
    all) get ``action`` ("503", "reset" or "corrupt")."""

    pattern: re.Pattern[bytes]
    action: str
    nth: int = 1
    times: int | None = 1
    seen: int = 0
    hit: int = 0

    def fires(self, line: bytes) -> bool:
        if not self.pattern.search(line):
            return False
        self.seen += 1
        if self.seen < self.nth or (self.times is not None and self.hit >= self.times):
            return False
        self.hit += 1
        return True


@dataclass
class _Link:
    client: socket.socket
    server: socket.socket
    methods: list[bytes] = field(default_factory=list)  # requests in flight, for their responses' bodies

    def reset(self) -> None:
        """A TCP reset on both sides. A thread blocked in ``recv`` on a socket holds it open past ``close``:
        ``shutdown(SHUT_RD)`` wakes it first, so the last reference goes (and the reset with it) at once."""
        for s in (self.client, self.server):
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RD)
                s.close()
            except OSError:
                pass


class FaultProxy:
    """See the module docstring. ``with FaultProxy(port) as proxy:``; ``proxy.port`` is where to connect."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._refusing = False
        self._rate = {"up": 0.0, "down": 0.0}
        self.strip_checksums = False
        self.fired: list[str] = []  # what was injected, for the test's own checks
        self._closed = False
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- commands -------------------------------------------------------------------------------------------
    def reset(self) -> int:
        """Reset every open connection; returns how many."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.reset()
        self.fired += ["reset"] * len(links)
        return len(links)

    def refuse(self) -> None:
        self._refusing = True
        self.reset()

    def throttle(self, up: float = 0.0, down: float = 0.0) -> None:
        """Bytes a second towards the server (up) and the client (down); 0: unlimited."""
        self._rate = {"up": up, "down": down}

    def on_request(self, method: str, pattern: str, action: str, nth: int = 1, times: int | None = 1) -> Rule:
        rule = Rule(re.compile(rb"^" + method.encode() + rb" [^ ]*" + pattern.encode()), action, nth, times)
        self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Back to a plain pass-through (open connections stay)."""
        self._rules.clear()
        self._refusing = False
        self._rate = {"up": 0.0, "down": 0.0}
        self.strip_checksums = False

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.reset()

    # --- plumbing -------------------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing:
                _Link(client, socket.socket()).reset()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _Link(client, socket.socket()).reset()
                continue
            link = _Link(client, server)
            with self._lock:
                self._links.append(link)
            threading.Thread(target=self._up, args=(link,), daemon=True).start()
            threading.Thread(target=self._down, args=(link,), daemon=True).start()

    def _send(self, sock: socket.socket, data: bytes, direction: str) -> None:
        rate = self._rate[direction]
        if not rate:
            sock.sendall(data)
            return
        step = max(1, int(rate / 20))
        for i in range(0, len(data), step):
            sock.sendall(data[i:i + step])
            time.sleep(len(data[i:i + step]) / rate)

    def _up(self, link: _Link) -> None:
        """Client -> server, one HTTP request at a time when it is HTTP."""
        buf = b""
        opaque = False
        try:
            while True:
                data = link.client.recv(65536)
                if not data:
                    break
                if opaque or not self._rules_or_http(buf + data):
                    opaque = True
                    self._send(link.server, buf + data, "up")
                    buf = b""
                    continue
                buf += data
                buf, opaque = self._requests(link, buf)
        except OSError:
            pass
        finally:
            self._drop(link)

    @staticmethod
    def _rules_or_http(data: bytes) -> bool:
        return bool(re.match(rb"^[A-Z]+ ", data[:16])) or not data

    def _requests(self, link: _Link, buf: bytes) -> tuple[bytes, bool]:
        """Forward every whole request head in ``buf`` (and its body as it comes); the rest stays buffered."""
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return buf, False
            head, rest = buf[:end + 4], buf[end + 4:]
            line = head.split(b"\r\n", 1)[0]
            length = _header(head, b"content-length")
            if length is None and re.search(rb"(?im)^transfer-encoding:", head):
                self._send(link.server, buf, "up")
                return b"", True
            body = int(length or 0)
            rule = next((r for r in self._rules if r.fires(line)), None)
            if rule is not None:
                self.fired.append(f"{rule.action} {line.decode(errors='replace')}")
            if rule is not None and rule.action != "corrupt":
                self._fault(link, rule.action, head, rest, body)
                raise OSError("fault injected")
            flip = rule is not None and body > 0  # "corrupt": one bit of the body's first byte, in transit
            link.methods.append(line.split(b" ", 1)[0])
            self._send(link.server, head, "up")
            while len(rest) < body:
                more = link.client.recv(65536)
                if not more:
                    raise OSError("client closed")
                if flip and rest:
                    rest, flip = bytes([rest[0] ^ 1]) + rest[1:], False
                self._send(link.server, rest, "up")
                body -= len(rest)
                rest = more
            if flip:
                rest = bytes([rest[0] ^ 1]) + rest[1:]
            self._send(link.server, rest[:body], "up")
            buf = rest[body:]

    def _fault(self, link: _Link, action: str, head: bytes, rest: bytes, body: int) -> None:
        if action == "reset":
            link.reset()
            return
        if not re.search(rb"(?im)^expect: *100-continue", head):  # the body comes anyway: read it first
            got = len(rest)
            while got < body:
                more = link.client.recv(65536)
                if not more:
                    break
                got += len(more)
        answer = (b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\n"
                  b"Content-Length: " + str(len(SLOW_DOWN)).encode() + b"\r\n\r\n" + SLOW_DOWN)
        try:
            link.client.sendall(answer)
            link.client.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        time.sleep(0.05)
        link.reset()

    def _down(self, link: _Link) -> None:
        """Server -> client; response heads edited when asked (``strip_checksums``)."""
        buf = b""
        try:
            while True:
                data = link.server.recv(65536)
                if not data:
                    break
                if not self.strip_checksums:
                    self._send(link.client, buf + data, "down")
                    buf = b""
                    continue
                buf += data
                buf = self._responses(link, buf)
        except OSError:
            pass
        finally:
            self._drop(link)

    def _responses(self, link: _Link, buf: bytes) -> bytes:
        """Forward whole response heads without checksum headers, and their bodies; the rest stays buffered."""
        while buf:
            if not buf.startswith(b"HTTP/"):
                self._send(link.client, buf, "down")
                return b""
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return buf
            head = buf[:end + 4]
            status = head.split(b" ", 2)[1]
            method = link.methods.pop(0) if link.methods and status != b"100" else b""
            length = 0 if method == b"HEAD" or status in (b"100", b"204", b"304") else _header(head, b"content-length")
            if length is None:  # chunked or until close: no longer followed
                self._send(link.client, _strip(head) + buf[end + 4:], "down")
                return b""
            if len(buf) < end + 4 + int(length):
                if method:
                    link.methods.insert(0, method)  # its body is not all here yet: seen again with it
                return buf
            self._send(link.client, _strip(head) + buf[end + 4:end + 4 + int(length)], "down")
            buf = buf[end + 4 + int(length):]
        return buf

    def _drop(self, link: _Link) -> None:
        with self._lock:
            if link in self._links:
                self._links.remove(link)
        for s in (link.client, link.server):  # one side ended: so does the other (shutdown wakes a blocked recv)
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


def _header(head: bytes, name: bytes) -> int | None:
    found = re.search(rb"(?im)^" + name + rb": *(\d+)", head)
    return int(found.group(1)) if found else None


def _strip(head: bytes) -> bytes:
    return re.sub(rb"(?im)^x-amz-checksum-[^\r\n]*\r\n", b"", head)


def when(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``condition`` holds (a fault that must happen before the test goes on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition was not reached")
        time.sleep(0.02)
