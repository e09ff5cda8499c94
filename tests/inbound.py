"""Helpers for the inbound-mail tests: the raw fixtures and a throw-away Dovecot."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from imapclient import IMAPClient

from disclosure.inbound import file
from disclosure.inbound.models import InboundMail

FIXTURES = Path(__file__).parent / "fixtures" / "mail"
# Friday 27 November 2026, 16:30 UTC: mail that arrived before a weekend.
FRIDAY_1630 = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)


def fixture(name: str, **values) -> bytes:
    """A raw message from tests/fixtures/mail, with ``%(name)s`` placeholders filled in."""
    raw = (FIXTURES / name).read_bytes()
    for key, value in values.items():
        raw = raw.replace(f"%({key})s".encode(), value.encode())
    return raw


def take(raw: bytes, arrived_at=FRIDAY_1630, source=InboundMail.Source.PIPE) -> InboundMail:
    return file.take(raw, arrived_at=arrived_at, source=source)


def message(*, sender="ada@researcher.example", subject="Report", body="Text", message_id="<m-1@researcher.example>",
            headers=(), to="security@security.example.com") -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}"]
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    lines += [*headers, "Content-Type: text/plain; charset=utf-8", "", body, ""]
    return "\r\n".join(lines).encode()


# --- Dovecot ---------------------------------------------------------------------------------
DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
NO_DOVECOT = "dovecot is not installed (apt-get install -y dovecot-imapd): the IMAP tests are skipped"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dovecot:
    """A Dovecot on a free loopback port, from a temporary folder, with one password-file user."""

    user, password = "security", "imap-test-password"

    def start(self):
        self.home = Path(tempfile.mkdtemp(prefix="disclosure-test-dovecot-"))
        self.home.chmod(0o755)
        self.port = _free_port()
        as_root = os.geteuid() == 0
        uid, gid = (65534, 65534) if as_root else (os.getuid(), os.getgid())
        (self.home / "mail").mkdir()
        os.chown(self.home / "mail", uid, gid)
        (self.home / "passwd").write_text(
            f"{self.user}:{{PLAIN}}{self.password}:{uid}:{gid}::{self.home}/mail/{self.user}\n")
        login_user = "default_internal_user = dovecot\ndefault_login_user = dovenull\n" if as_root else (
            f"default_internal_user = {os.environ.get('USER', 'nobody')}\n"
            f"default_login_user = {os.environ.get('USER', 'nobody')}\n")
        chroot = "" if as_root else "service imap-login {\n  chroot =\n}\nservice anvil {\n  chroot =\n}\n"
        (self.home / "dovecot.conf").write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {self.home}/run
state_dir = {self.home}/state
log_path = {self.home}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{self.home}/mail/%u/Maildir
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {min(uid, 500) if not as_root else 100}
{login_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.home}/passwd
}}
userdb {{
  driver = passwd-file
  args = {self.home}/passwd
}}
service imap-login {{
  inet_listener imap {{
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
{chroot}
namespace inbox {{
  inbox = yes
  separator = /
}}
""")
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(self.home / "dovecot.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        log = (self.home / "dovecot.log").read_text() if (self.home / "dovecot.log").exists() else ""
        self.stop()
        raise RuntimeError(f"Dovecot did not start: {self.process.stderr.read().decode()} {log}")

    def stop(self):
        if getattr(self, "process", None) is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.home, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"imap://{self.user}@127.0.0.1:{self.port}/INBOX"

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client

    def append(self, raw: bytes, arrived_at: datetime, folder="INBOX"):
        """Deliver a message as a mail server would, with its arrival time (INTERNALDATE)."""
        with self.client() as client:
            client.append(folder, raw, msg_time=arrived_at)

    def count(self, folder: str) -> int:
        with self.client() as client:
            if not client.folder_exists(folder):
                return 0
            return client.select_folder(folder, readonly=True)[b"EXISTS"]

    def empty(self):
        with self.client() as client:
            for flags, delimiter, name in client.list_folders():
                client.select_folder(name)
                uids = client.search("ALL")
                if uids:
                    client.delete_messages(uids)
                    client.expunge()
