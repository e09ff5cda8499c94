"""Process-level portal hosts for tests that run the real commands as an operator would
(tests/test_two_hosts.py, tests/test_restore_drill.py): gunicorn (the Procfile's web command)
and, when asked, ``manage.py worker``, each in a process group of its own, with the host's own
DATA_DIR, GNUPG_HOME, temporary folder and port; a PostgreSQL database of the test's own; and
a team key as the platform secret (TEAM_KEY_FILE) a new host gets its key from."""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

from disclosure import pgp
from tests.faults import free_port, start_group, stop_group
from tests.pgp_keys import ResearcherKeyring

HOST = "security.example.com"


class Host:
    """One portal host: gunicorn and ``manage.py worker``, each in a process group of its own."""

    def __init__(self, name: str, root: Path, env: dict):
        self.name, self.port = name, free_port()
        self.folder = root / name
        self.data_dir, self.gnupg_home, self.tmp = self.folder / "data", self.folder / "gnupg", self.folder / "tmp"
        self.env = {**env, "DATA_DIR": str(self.data_dir), "GNUPG_HOME": str(self.gnupg_home),
                    "TMPDIR": str(self.tmp), "PORT": str(self.port)}
        self.web = self.worker = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, worker: bool = True):
        self.tmp.mkdir(parents=True, exist_ok=True)
        logs = self.folder / "logs"
        logs.mkdir(exist_ok=True)
        self.web = start_group([str(Path(sys.executable).with_name("gunicorn")), "-c", "config/gunicorn.py",
                                "config.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
                                "--pid", str(self.folder / "gunicorn.pid")],
                               cwd=settings.BASE_DIR, env=self.env, stdout=open(logs / "web.log", "ab"),
                               stderr=subprocess.STDOUT)
        if worker:
            self.worker = start_group([sys.executable, "manage.py", "worker"], cwd=settings.BASE_DIR, env=self.env,
                                      stdout=open(logs / "worker.log", "ab"), stderr=subprocess.STDOUT)
        import requests

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.web.poll() is not None:
                raise AssertionError(f"host {self.name}'s gunicorn exited:\n{self.log('web')}")
            try:
                requests.get(f"{self.url}/healthz", headers=self.headers(), timeout=10)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise AssertionError(f"host {self.name} did not start:\n{self.log('web')}")

    def log(self, which: str) -> str:
        path = self.folder / "logs" / f"{which}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    @staticmethod
    def headers(**extra) -> dict:
        return {"Host": HOST, "X-Forwarded-Proto": "https", **extra}

    def get(self, path, **kwargs):
        import requests

        return requests.get(self.url + path, headers=self.headers(**kwargs.pop("headers", {})),
                            allow_redirects=False, timeout=30, **kwargs)

    def post(self, path, data, *, files=None, client_ip="203.0.113.1", cookies=None, timeout=30):
        import requests

        token = secrets.token_hex(16)
        headers = self.headers(**{"X-Forwarded-For": client_ip, "Origin": f"https://{HOST}",
                                  "Referer": f"https://{HOST}{path}"})
        return requests.post(self.url + path, data={**data, "csrfmiddlewaretoken": token}, files=files,
                             headers=headers, cookies={"csrftoken": token, **(cookies or {})},
                             allow_redirects=False, timeout=timeout)

    def run(self, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
        """``python manage.py *args`` on this host, as an operator runs it."""
        return subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=self.env,
                              input=stdin, capture_output=True, text=True, timeout=120)

    def manage(self, *args, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"manage.py {args[0]} on {self.name} failed:\n{result.stderr[-3000:]}"
        return result.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code).strip().splitlines()[-1] if code else ""

    def kill(self):
        """SIGKILL: gunicorn, its workers, the cluster and its workers; nothing gets to clean up."""
        for process in (self.web, self.worker):
            if process is not None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(10)

    def stop(self):
        for process in (self.web, self.worker):
            if process is not None and process.poll() is None:
                stop_group(process, timeout=20)
        pgp.stop_agent(self.gnupg_home)

    def wipe(self):
        """An empty DATA_DIR, GNUPG_HOME and temporary folder: a new machine."""
        pgp.stop_agent(self.gnupg_home)
        for folder in (self.data_dir, self.gnupg_home, self.tmp):
            shutil.rmtree(folder, ignore_errors=True)


def report_form(title: str, email_address: str) -> dict:
    return {"title": title, "description": f"{title}: the description, to be sealed at rest.",
            "asset": "https://app.example.com", "reporter_email": email_address, "reporter_name": "A Researcher",
            "credit": "none"}


class PgDatabase:
    """A PostgreSQL database of a test's own on the suite's server (DATABASE_URL's user)."""

    def __init__(self, name: str):
        params = settings.DATABASES["default"]
        self.admin = dict(host=params["HOST"] or "127.0.0.1", port=params["PORT"] or 5432, user=params["USER"],
                          password=params["PASSWORD"] or None, dbname="postgres", autocommit=True)
        self.name, self.params = name, {**self.admin, "dbname": name}
        auth = f"{params['USER']}" + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
        self.url = f"postgres://{auth}@{self.admin['host']}:{self.admin['port']}/{name}"

    def create(self):
        """An empty database (dropped first if it exists)."""
        self.drop()
        self._admin(f'CREATE DATABASE "{self.name}"')

    def drop(self):
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def _admin(self, statement: str):
        import psycopg

        with psycopg.connect(**self.admin) as conn:
            conn.execute(statement)

    def query(self, sql: str, *params):
        import psycopg

        with psycopg.connect(**self.params) as conn:
            return conn.execute(sql, params).fetchall()


def team_key_file(folder: Path, email_address: str) -> tuple[Path, str]:
    """A new team key (with its secret, no passphrase), armored into ``folder/team-key.asc``
    as a platform secret mounted as a file; returns the file and the key's fingerprint."""
    with ResearcherKeyring() as keyring:
        uid = f"Example security team <{email_address}>"
        assert keyring.run("--passphrase", "", "--pinentry-mode", "loopback", "--quick-gen-key", uid,
                           "future-default", "default", "1y").returncode == 0
        listing = keyring.run("--with-colons", "--list-keys", uid).stdout.decode()
        fingerprint = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")][0]
        path = folder / "team-key.asc"
        path.write_bytes(keyring.run("--armor", "--export-secret-keys", fingerprint).stdout)
    return path, fingerprint
