"""The explorer's server: the page's own files on 127.0.0.1, nothing else, and it survives
whatever a client sends (RELIABILITY.md, "The explorer's server"). Real sockets on
127.0.0.1 only, each with a timeout."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vaekit import explore, explorer_server
from vaekit.cli import main
from vaekit.cli.parser import build_parser

NAMES = (*explore.ASSETS, explore.DATA_FILE)
TIMEOUT = 10.0


@pytest.fixture
def page(tmp_path) -> Path:
    """A page folder, with a secret beside it and things in it that are not the page."""
    folder = tmp_path / "page"
    folder.mkdir()
    for name in NAMES:
        (folder / name).write_text(f"/* {name} */\n")
    (folder / "index.html").write_text("<!doctype html><title>vaekit</title>\n")
    (tmp_path / "secret.txt").write_text("SECRET outside the page\n")
    (folder / "notes.txt").write_text("SECRET inside the folder, not the page\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "index.html").write_text("SECRET in a sub-folder\n")
    (folder / "link.html").symlink_to(tmp_path / "secret.txt")
    return folder


@pytest.fixture
def server(page) -> Iterator[explorer_server.PageServer]:
    server = explorer_server.make_server(page, NAMES, port=0, idle_seconds=1.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=TIMEOUT)


def _ask(server: explorer_server.PageServer, raw: bytes) -> bytes:
    """Send raw bytes on a fresh connection; everything the server answers before closing."""
    with socket.create_connection(server.server_address[:2], timeout=TIMEOUT) as conn:
        conn.sendall(raw)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _get(server: explorer_server.PageServer, target: str) -> tuple[int, bytes]:
    reply = _ask(server, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode("latin-1"))
    status = int(reply.split(b" ", 2)[1])
    return status, reply.partition(b"\r\n\r\n")[2]


def test_binds_to_the_loopback_address_unless_told(server):
    assert server.server_address[0] == "127.0.0.1"
    args = build_parser().parse_args(["explore", "run", "--serve"])
    assert args.host == "127.0.0.1"
    assert build_parser().parse_args(["explore", "run", "--host", "0.0.0.0"]).host == "0.0.0.0"


def test_serves_the_page_files(server):
    status, body = _get(server, "/")
    assert status == 200 and body.startswith(b"<!doctype html>")
    for name in NAMES:
        status, body = _get(server, f"/{name}")
        assert status == 200, name
    reply = _ask(server, b"HEAD /ops.js HTTP/1.0\r\n\r\n")
    assert b"text/javascript" in reply and reply.endswith(b"\r\n\r\n")  # headers, no body


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
        "/....//secret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/etc/passwd",
        "http://elsewhere/../secret.txt",
        "/notes.txt",
        "/sub/",
        "/sub/index.html",
        "/sub",
        "/link.html",
        "/index.html%00",
        "/./index.html",
        "/index.html/",
        "/INDEX.HTML",
        "*",
    ],
)
def test_nothing_but_the_page_is_reachable(server, target):
    status, body = _get(server, target)
    assert status in (400, 404) and b"SECRET" not in body and b"Directory listing" not in body


def test_a_page_file_that_is_a_symbolic_link_out_is_refused(server, page):
    (page / "data.js").unlink()
    (page / "data.js").symlink_to(page.parent / "secret.txt")
    status, body = _get(server, "/data.js")
    assert status == 404 and b"SECRET" not in body


def test_other_methods_are_not_implemented(server):
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT"):
        reply = _ask(server, f"{method} /index.html HTTP/1.0\r\nContent-Length: 0\r\n\r\n".encode())
        assert reply.startswith(b"HTTP/1.0 501"), method


@pytest.mark.parametrize(
    ("raw", "answer"),
    [
        (b"\x00\xff\xfe\x16\x03\x01 garbage\r\n\r\n", b"HTTP/1.0 400"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), b""),  # a TLS hello
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n", b"HTTP/1.0 414"),
        (b"GET / HTTP/1.0\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", b"HTTP/1.0 431"),
        (b"GET / HTTP/9.9\r\n\r\n", b"HTTP/1.0 505"),
        (b"GET\r\n\r\n", b"HTTP/1.0 400"),
        (b"\r\n\r\n", b""),
        (b"GET / HTTP/1.0\r\nHost: " + b"\xff" * 100 + b"\r\n\r\n", b"HTTP/1.0 200"),
    ],
    ids=["garbage", "tls", "overlong", "headers", "version", "no-target", "blank", "bad-host"],
)
def test_a_malformed_request_gets_an_answer_and_the_server_lives(server, raw, answer):
    assert _ask(server, raw).startswith(answer)
    assert _get(server, "/")[0] == 200


def test_idle_and_dropped_connections_do_not_stop_it(server):
    idle = socket.create_connection(server.server_address[:2], timeout=TIMEOUT)
    dropped = socket.create_connection(server.server_address[:2], timeout=TIMEOUT)
    dropped.sendall(b"GET /index.ht")
    dropped.close()
    assert _get(server, "/")[0] == 200  # served while a connection sits idle
    started = time.monotonic()
    assert idle.recv(1024) == b""  # closed by the server after its idle time
    assert time.monotonic() - started < TIMEOUT
    idle.close()


def test_connections_beyond_the_bound_are_dropped_not_threaded(page):
    """At most MAX_CONNECTIONS at once: a flood of idle connections cannot pile up
    threads; once they time out the page is served again."""
    server = explorer_server.make_server(page, NAMES, port=0, idle_seconds=5.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    address = server.server_address[:2]
    threads = threading.active_count()
    try:
        idle = [
            socket.create_connection(address, timeout=TIMEOUT)
            for _ in range(explorer_server.MAX_CONNECTIONS)
        ]
        deadline = time.monotonic() + TIMEOUT
        while threading.active_count() < threads + len(idle) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the server has taken them all, one thread each
        assert _ask(server, b"GET / HTTP/1.0\r\n\r\n") == b""  # dropped unanswered
        for conn in idle:
            assert conn.recv(16) == b""  # each closed by the server after its idle time
        assert _get(server, "/")[0] == 200
    finally:
        for conn in idle:
            conn.close()
        server.shutdown()
        server.server_close()


def test_a_busy_port_is_one_line(page, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(Exception, match=f"cannot serve on 127.0.0.1:{port}: "):
            explorer_server.make_server(page, NAMES, port=port)


def test_ctrl_c_stops_the_cli_server_with_one_line(tmp_path):
    """`vaekit explore --serve` as a user runs it (a shipped model, no data), then Ctrl-C."""
    command = [sys.executable, "-m", "vaekit", "explore", "--pretrained", "mnist-seed"]
    command += ["-o", str(tmp_path / "page"), "--points", "0", "--device", "cpu"]
    proc = subprocess.Popen(
        [*command, "--serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT below dumps every stack
    )
    try:
        assert proc.stdout.readline().startswith("Wrote ")
        line = proc.stdout.readline()
        assert line.startswith("Serving http://127.0.0.1:"), line
        port = int(line.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
            conn.sendall(b"\x00garbage\r\n\r\n")
            conn.recv(1024)
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            out, err = proc.communicate(timeout=30)
            raise AssertionError(f"still serving after Ctrl-C:\n{out}\n{err}") from None
    finally:
        proc.kill()
    assert proc.returncode in (0, 130)
    assert out.strip() == "Stopped" and err == ""


def test_explore_cli_names_a_busy_port(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        argv = ["explore", "--pretrained", "mnist-seed", "-o", str(tmp_path / "page")]
        assert main([*argv, "--points", "0", "--device", "cpu", "--serve", "--port", port]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"cannot serve on 127.0.0.1:{port}" in err
