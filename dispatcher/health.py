"""/metrics, /healthz and /readyz on one small HTTP server, in a thread of its own.

A thread (stdlib `http.server`) rather than an ASGI server in the event loop: the probes keep
answering while the loop is busy, and nothing here takes over the process's signal handlers,
which the dispatcher needs for its graceful SIGTERM."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class Health:
    """What the probes read; the loops write it (plain floats: a torn read is impossible)."""

    def __init__(self, stale_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self.loop_beat = time.monotonic()
        self.database_ok_at: float | None = None
        self.stopping = False

    def alive(self) -> bool:
        """The loops still turn (a wedged loop is restarted by the liveness probe)."""
        return time.monotonic() - self.loop_beat < self.stale_after_s

    def ready(self) -> bool:
        """Talking to the database lately and not shutting down."""
        ok_at = self.database_ok_at
        return (
            not self.stopping
            and ok_at is not None
            and time.monotonic() - ok_at < self.stale_after_s
        )


def serve(health: Health, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._answer(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok = health.alive()
                self._answer(200 if ok else 503, b"ok\n" if ok else b"loop stalled\n")
            elif self.path == "/readyz":
                ok = health.ready()
                self._answer(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._answer(404, b"not found\n")

        def _answer(
            self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="dispatcher-http", daemon=True).start()
    return server
