"""``python manage.py worker``: the queue worker, started safely (the Procfile's ``worker``).

django-q2's ``qcluster`` exits at once when the database or Redis is unreachable, so a
worker started during an outage (or before the database after a reboot) stays down. This
command first waits for the database (``SELECT 1`` on the default connection) and, with
``REDIS_URL``, for Redis (``PING``), retrying with capped exponential backoff and logging
each attempt, then runs django-q2's cluster in this process, as ``qcluster`` does, and
stops the gpg-agent of the portal's keyring once the cluster has stopped (gpg-agent
outlives the processes that start it).
"""

import logging
import os
import time

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.utils import timezone
from django_q.cluster import Cluster
from django_q.management.commands import qcluster

from disclosure import pgp, rotation, tasks
from disclosure.checks import prepare_team_key

log = logging.getLogger("disclosure.worker")


def database_ready() -> None:
    """Raise unless the default database answers a query."""
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # never hand a connection to the cluster's forked processes


def redis_ready() -> None:
    """Raise unless Redis (``REDIS_URL``) answers a PING."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    finally:
        client.close()


def wait_for(name: str, ready, *, first_delay: float, max_delay: float, sleep=time.sleep) -> int:
    """Call ``ready()`` until it stops raising, sleeping ``first_delay`` after the first
    failure and twice as long after each next one, at most ``max_delay``; one log line
    per failed attempt. Returns the number of attempts."""
    attempt, delay = 1, first_delay
    while True:
        try:
            ready()
        except Exception as error:  # noqa: BLE001 - whatever the outage looks like, wait for it to end
            log.warning("Waiting for %s (attempt %d failed: %s: %s); next attempt in %.1f s",
                        name, attempt, type(error).__name__, " ".join(str(error).split())[:200], delay)
            sleep(delay)
            attempt, delay = attempt + 1, min(delay * 2, max_delay)
            continue
        if attempt > 1:
            log.info("%s is reachable after %d attempts", name, attempt)
        return attempt


def _record_start() -> None:
    """Tell /healthz a worker has just started: its first sweep is a minute away, and until
    then "never swept" means "starting", not "down". Record the credentials it was started
    with, so a rotation (which needs a restart) shows in their ages at once."""
    try:
        cache.set(tasks.WORKER_STARTED_KEY, timezone.now().isoformat(), timeout=None)
    except Exception:  # noqa: BLE001 - the cache being down is reported by /healthz itself
        log.warning("Could not record the worker's start in the cache", exc_info=True)
    try:
        rotation.record(timezone.now())
    except Exception:  # noqa: BLE001 - recorded again by the hourly housekeeping
        log.warning("Could not record the credentials in use", exc_info=True)
    finally:
        connections.close_all()  # never hand a connection to the cluster's forked processes


class Command(qcluster.Command):
    help = ("Wait for the database (and Redis with REDIS_URL), retrying with capped exponential backoff, "
            "then run the django-q2 cluster (as qcluster does) and stop the keyring's gpg-agent after it.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--first-delay", type=float, default=1.0,
                            help="Seconds to wait after the first failed attempt (default 1).")
        parser.add_argument("--max-delay", type=float, default=30.0,
                            help="Longest wait between attempts, in seconds (default 30).")

    def handle(self, *args, first_delay, max_delay, **options):
        prepare_team_key()  # TEAM_KEY_FILE into GNUPG_HOME before the cluster forks, or refuse to start
        delays = {"first_delay": max(first_delay, 0.1), "max_delay": max(max_delay, first_delay, 0.1)}
        wait_for("the database", database_ready, **delays)
        if settings.REDIS_URL:
            wait_for("Redis", redis_ready, **delays)
        log.info("The database%s reachable: starting the queue cluster", " and Redis are" if settings.REDIS_URL
                 else " is")
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        cluster = Cluster()
        try:
            cluster.start()
            _record_start()
            if options.get("run_once"):
                cluster.stop()
            # qcluster returns here and Python waits for the cluster's processes when it
            # exits; wait here instead, so the agent is stopped after them. SIGTERM or
            # SIGINT stops the cluster (django-q2's handler), which ends the wait.
            while cluster.sentinel is not None and cluster.sentinel.is_alive():
                cluster.sentinel.join(1)
        finally:
            pgp.stop_agent(settings.GNUPG_HOME)
