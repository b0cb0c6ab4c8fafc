"""A stand-in for a Kubernetes API server that records what a client asks and creates nothing: no cluster runs
on the test machines, so the pod a task would request is read from the request itself. Every pod creation is
refused (403, as a namespace without the pod-launcher role answers); any other call gets 404."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class KubeApi:
    url: str
    requests: list[tuple[str, str, Any]] = field(default_factory=list)

    def created_pods(self) -> list[dict[str, Any]]:
        return [body for method, path, body in self.requests if method == "POST" and path.endswith("/pods")]

    def kubeconfig(self, folder: Path, namespace: str = "meccano") -> Path:
        """A kubeconfig file that points a client at this server."""
        path = folder / "kubeconfig.json"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {"token": "test-token"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}]}))
        return path


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code}).encode()


@contextmanager
def kube_api() -> Iterator[KubeApi]:
    api = KubeApi("")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            api.requests.append((self.command, self.path.split("?")[0], json.loads(raw) if raw else None))

        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
            self._record()
            if self.path.split("?")[0].endswith("/pods"):
                self._answer(403, _status(403, "Forbidden", "pods is forbidden: the test API creates nothing"))
            else:
                self._answer(404, _status(404, "NotFound", "not found"))

        def do_GET(self) -> None:  # noqa: N802
            self._record()
            self._answer(404, _status(404, "NotFound", "not found"))

        do_DELETE = do_PATCH = do_GET  # noqa: N815

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
