"""gpg starts one gpg-agent per keyring, and it outlives the processes that used it. The
Procfile's web (gunicorn) and worker (the queue) processes stop the agent of the portal's
keyring when they exit. Tested with the real processes, each started from its Procfile line."""

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.test import SimpleTestCase, override_settings

from disclosure import pgp

VENV_BIN = str(Path(sys.executable).parent)


def procfile(process: str) -> str:
    for line in (Path(settings.BASE_DIR) / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise AssertionError(f"no {process} process in the Procfile")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def agent_socket(home: str) -> Path:
    found = subprocess.run(["gpgconf", "--homedir", home, "--list-dirs", "agent-socket"],
                           capture_output=True, text=True, check=True)
    return Path(found.stdout.strip())


def agent_running(home: str) -> bool:
    process = subprocess.run(["pgrep", "-f", f"gpg-agent --homedir {home}( |$)"], capture_output=True)
    return process.returncode == 0 or agent_socket(home).exists()


def wait_for(condition, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


class AgentStopsWithTheProcessesTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for tool in ("gpgconf", "pgrep"):
            if not shutil.which(tool):
                raise cls.skipException(f"{tool} is not installed")
        cls.folder = tempfile.mkdtemp(prefix="disclosure-agent-")
        cls.addClassCleanup(shutil.rmtree, cls.folder, ignore_errors=True)
        cls.home = os.path.join(cls.folder, "gnupg")
        os.mkdir(cls.home, 0o700)
        cls.addClassCleanup(pgp.stop_agent, cls.home)
        with override_settings(GNUPG_HOME=Path(cls.home)):
            cls.fingerprint = pgp.generate_team_key("security@localhost", "Test team")
        pgp.stop_agent(cls.home)
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "MAILER", "SITE_URL",
                              "SECRET_KEY", "DATA_DIR")}
        cls.port = free_port()
        cls.env = {**clean, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", "DEBUG": "true",
                   "DATA_DIR": os.path.join(cls.folder, "data"), "GNUPG_HOME": cls.home,
                   "TEAM_KEY_FINGERPRINT": cls.fingerprint, "PORT": str(cls.port),
                   "SITE_URL": f"http://127.0.0.1:{cls.port}", "WEB_CONCURRENCY": "1", "Q_WORKERS": "1"}
        subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=settings.BASE_DIR,
                       env=cls.env, check=True, capture_output=True, timeout=180)

    def setUp(self):
        pgp.stop_agent(self.home)
        self.assertTrue(wait_for(lambda: not agent_running(self.home), 10))

    def start(self, process: str, *extra: str) -> subprocess.Popen:
        log = open(os.path.join(self.folder, f"{process}.log"), "w+")  # noqa: SIM115 - closed at cleanup
        self.addCleanup(log.close)
        command = "exec " + procfile(process) + "".join(" " + shlex.quote(arg) for arg in extra)
        child = subprocess.Popen(["bash", "-c", command], cwd=settings.BASE_DIR, env=self.env, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        self.addCleanup(self.stop_group, child)
        child.log = log
        return child

    @staticmethod
    def stop_group(child):
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)

    def log_of(self, child) -> str:
        child.log.seek(0)
        return child.log.read()

    def stop(self, child):
        child.send_signal(signal.SIGTERM)
        child.wait(60)

    def test_the_web_process_stops_the_agent_when_gunicorn_exits(self):
        web = self.start("web")  # exec: the shell becomes gunicorn's master process

        def serving():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/.well-known/security.txt",  # noqa: S310
                                            timeout=10) as response:
                    self.body = response.read()
                return True
            except OSError:
                return False

        self.assertTrue(wait_for(serving, 60), self.log_of(web))
        # Signing security.txt with the team's secret key went through the agent.
        self.assertTrue(self.body.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----"), self.body[:200])
        self.assertTrue(agent_running(self.home))
        self.stop(web)
        self.assertTrue(wait_for(lambda: not agent_running(self.home), 10), self.log_of(web))
        self.assertFalse(agent_socket(self.home).exists())

    def test_the_worker_stops_the_agent_when_the_queue_stops(self):
        worker = self.start("worker")
        self.assertTrue(wait_for(lambda: "running." in self.log_of(worker), 60), self.log_of(worker))
        # The worker uses the keyring for what it sends (signing email, renewing security.txt).
        subprocess.run(["gpgconf", "--homedir", self.home, "--launch", "gpg-agent"], check=True)
        self.assertTrue(agent_running(self.home))
        self.stop(worker)
        self.assertEqual(worker.returncode, 0, self.log_of(worker))
        self.assertTrue(wait_for(lambda: not agent_running(self.home), 10), self.log_of(worker))
        self.assertFalse(agent_socket(self.home).exists())
