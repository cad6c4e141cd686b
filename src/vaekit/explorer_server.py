"""Serving the explorer page: its own files and nothing else, to this machine by default.

The standard library's SimpleHTTPRequestHandler serves any file under its folder,
lists directories and follows symbolic links anywhere; a page server needs none
of that. This one answers GET/HEAD for the page's few file names alone (so no
path, encoded or not, reaches anything else), refuses a name that is a symbolic
link, closes idle connections, bounds its threads, and never prints a traceback
for a client's garbage or a dropped connection.
"""

from __future__ import annotations

import http.server
import os
import socket
import stat
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vaekit.errors import VaekitError

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
LOOPBACK = ("127.0.0.1", "::1", "localhost")
IDLE_SECONDS = 10.0  # a connection that sends nothing this long is closed
MAX_CONNECTIONS = 32  # at once; more are closed unanswered


class PageHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of the page's files by name; 404 for every other path, 501 for
    other methods (BaseHTTPRequestHandler's own answer)."""

    server: PageServer
    server_version = "vaekit-explorer"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection: no keep-alive to hold threads
    default_request_version = "HTTP/1.0"  # errors to a request with no version get a status

    def setup(self) -> None:
        self.timeout = self.server.idle_seconds
        super().setup()

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = self.server.page_file(self.path)
        content = path.read_bytes() if path is not None else None
        if content is None:
            self.send_error(404, "not one of the explorer page's files")
            return
        self.send_response(200)
        self.send_header("Content-Type", TYPES.get(path.suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(len(content)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the terminal is the user's, not an access log."""


class PageServer(http.server.ThreadingHTTPServer):
    """A threading server over one folder and a fixed list of its file names."""

    daemon_threads = True
    block_on_close = False  # Ctrl-C stops at once, not after the slowest client
    request_queue_size = 64  # the listen backlog: a burst of connections is not made to retry

    def __init__(
        self,
        folder: Path,
        names: Sequence[str],
        address: tuple[str, int],
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.folder = folder.resolve()
        self.names = frozenset(names)
        self.idle_seconds = idle_seconds
        self._slots = threading.Semaphore(MAX_CONNECTIONS)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, PageHandler)

    def page_file(self, target: str) -> Path | None:
        """The file a request target names, or None: only a listed name, a regular file
        in the folder itself (not a link, not a folder)."""
        name = urllib.parse.unquote(urllib.parse.urlsplit(target).path)
        name = "index.html" if name in ("", "/") else name.removeprefix("/")
        if name not in self.names:
            return None
        path = self.folder / name
        try:
            info = os.lstat(path)
        except OSError:
            return None
        return path if stat.S_ISREG(info.st_mode) else None

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # too many at once: this one is dropped
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client's broken request or dropped connection is its problem: no traceback."""


def make_server(
    folder: str | Path,
    names: Sequence[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    idle_seconds: float = IDLE_SECONDS,
) -> PageServer:
    """The server, bound (port 0: any free one), not yet serving."""
    try:
        return PageServer(Path(folder), names, (host, port), idle_seconds)
    except OSError as exc:
        raise VaekitError(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}"
            + ("; pass --port 0 for any free port" if port else "")
        ) from None


def url(server: PageServer) -> str:
    host, port = server.server_address[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(
    folder: str | Path,
    names: Sequence[str],
    port: int = 8000,
    host: str = "127.0.0.1",
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the page until Ctrl-C, which stops it with one line. Bound to the loopback
    address unless `host` says otherwise: the page is for the person at this machine."""
    with make_server(folder, names, host, port) as server:
        announce(f"Serving {url(server)} (Ctrl-C to stop)")
        if host not in LOOPBACK:
            announce(f"Listening on {host}: other machines can load the page")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            announce("Stopped")
