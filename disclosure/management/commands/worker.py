import os

from django.conf import settings
from django_q.cluster import Cluster
from django_q.management.commands import qcluster

from disclosure import pgp


class Command(qcluster.Command):
    help = ("Run the task queue (django-q2's cluster, as qcluster does; the Procfile's worker) and stop the "
            "gpg-agent of the portal's keyring when the cluster has stopped.")

    def handle(self, *args, **options):
        settings.SECRET_KEY  # noqa: B018 - as qcluster: the cluster signs tasks with it
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        cluster = Cluster()
        try:
            cluster.start()
            if options.get("run_once"):
                cluster.stop()
            # qcluster returns here and Python waits for the cluster's processes when it
            # exits; wait here instead, so the agent is stopped after them. SIGTERM or
            # SIGINT stops the cluster (django-q2's handler), which ends the wait.
            while cluster.sentinel is not None and cluster.sentinel.is_alive():
                cluster.sentinel.join(1)
        finally:
            pgp.stop_agent(settings.GNUPG_HOME)
