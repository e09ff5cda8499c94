"""Faults never lose a report or an email: a worker started while the database or Redis is
down waits for them."""

import os
import shutil
import subprocess
import sys
import tempfile

from django.conf import settings
from django.db import connection
from django.test import SimpleTestCase

from tests.faults import OutputLines, TcpProxy, free_port, redis_server, start_group, stop_group


# --- 5b. A worker started during an outage waits for it to end -----------------------------------
class WorkerStartsAfterAnOutageTests(SimpleTestCase):
    """``manage.py worker`` (the Procfile's worker) as a real process: started while the
    database (PostgreSQL runs only) and Redis are unreachable, it waits, then starts the
    cluster once they answer."""

    def test_it_waits_with_backoff_and_starts_the_cluster_when_they_return(self):
        if shutil.which("redis-server") is None:
            self.skipTest("redis-server is not installed")
        on_postgresql = connection.vendor == "postgresql"
        redis_port, database_port = free_port(), free_port()
        env = {key: value for key, value in os.environ.items()
               if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "TEAM_KEY_FINGERPRINT")}
        data_dir = self.enterContext(tempfile.TemporaryDirectory())
        env.update(DJANGO_SETTINGS_MODULE="config.settings", DATA_DIR=data_dir, LOG_LEVEL="INFO",
                   PYTHONUNBUFFERED="1", REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", Q_WORKERS="1")
        if on_postgresql:
            db = connection.settings_dict
            env["DATABASE_URL"] = f"postgres://{db['USER']}@127.0.0.1:{database_port}/{db['NAME']}"
        worker = start_group([sys.executable, "manage.py", "worker", "--first-delay", "0.2", "--max-delay", "0.5"],
                             cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        self.addCleanup(stop_group, worker)
        output = OutputLines(worker.stdout)

        if on_postgresql:
            self.assertTrue(output.wait_for("Waiting for the database", times=3, timeout=15), output)
            self.assertIsNone(worker.poll(), output)
            proxy = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)), port=database_port)
            self.addCleanup(proxy.close)
        self.assertTrue(output.wait_for("Waiting for Redis", times=3, timeout=15), output)
        self.assertIsNone(worker.poll(), output)
        self.assertIn("next attempt in 0.5 s", str(output))  # the backoff grew to its cap
        redis = redis_server(redis_port)
        self.addCleanup(stop_group, redis)
        self.assertTrue(output.wait_for("starting the queue cluster", timeout=10), output)
        self.assertTrue(output.wait_for("running.", timeout=10), output)  # django-q2: "Q Cluster ... running."
        self.assertIsNone(worker.poll(), output)
        stop_group(worker)  # while Redis is still up, so the cluster stops cleanly
        self.assertTrue(output.wait_for("has stopped", timeout=5), output)
