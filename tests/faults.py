"""Fault injection for tests: a TCP proxy the test can cut, gpg removed, free ports, and
processes stopped by their process group."""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager

from django.db import connection
from django.test import override_settings

from disclosure import pgp


def free_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens (at the moment of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``cut()`` drops every connection and
    refuses new ones (what an unreachable server looks like), ``restore()`` undoes it.
    With ``upload_limit`` set, a connection that sends more than that many bytes to the
    server is dropped there (an upload that breaks half way)."""

    upload_limit: int | None = None

    def __init__(self, target: tuple[str, int], port: int = 0):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.open, self.running = True, True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink, upload in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(source, sink, upload), daemon=True).start()

    def _pump(self, source, sink, upload=False):
        sent = 0
        try:
            while data := source.recv(65536):
                if upload and self.upload_limit is not None:  # counted while a limit is set
                    sent += len(data)
                    if sent > self.upload_limit:
                        break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.open = False
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def restore(self):
        self.open = True

    def close(self):
        self.cut()
        self.running = False
        self.listener.close()


@contextmanager
def table_missing(model):
    """A real database error for whatever uses ``model``: its table is renamed away inside
    the test's transaction (SQLite and PostgreSQL both change tables transactionally), and
    back afterwards."""
    quote = connection.ops.quote_name
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(table + '_away')}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {quote(table + '_away')} RENAME TO {quote(table)}")


@contextmanager
def gpg_removed():
    """The gpg binary is gone (uninstalled, a broken image): ``GPG_BINARY`` names a file
    that does not exist, and this process forgets what it had read from the keyring."""
    pgp.forget()
    try:
        with override_settings(GPG_BINARY="/nonexistent/bin/gpg"):
            yield
    finally:
        pgp.forget()


class OutputLines:
    """Collects a process's output lines in a thread; ``wait_for`` a line to appear."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def count(self, text: str) -> int:
        with self.changed:
            return sum(text in line for line in self.lines)

    def wait_for(self, text: str, *, times: int = 1, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while sum(text in line for line in self.lines) < times:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True

    def __str__(self):
        with self.changed:
            return "\n".join(self.lines[-40:])


def start_group(args, **kwargs) -> subprocess.Popen:
    """Start a process in a process group of its own (stopped with ``stop_group``)."""
    return subprocess.Popen(args, start_new_session=True, **kwargs)


def stop_group(process: subprocess.Popen, *, timeout: float = 10.0) -> None:
    """SIGTERM the process (it stops its own children: django-q2's cluster can hang when
    each of its processes is signalled too), then SIGKILL whatever is left of its group."""
    try:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(5)


def redis_server(port: int) -> subprocess.Popen | None:
    """A throw-away Redis on ``port`` (no persistence), or None when redis-server is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    return start_group([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
