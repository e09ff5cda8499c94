"""Benchmark: the triage queue (admin report list) at 50,000 and 100,000 reports.

Usage: .venv/bin/python bench/admin_list.py [--sizes 1000,50000,100000] [--repeat 5]

Renders the first page of the list (ordered by nearest open deadline), the "overdue" queue
and a search, as a logged-in superuser through Django's test client, and records the
median wall time and the number of queries. Query counts must not grow with the number
of reports; the time grows only with what the database must sort. Results go to
bench/results/admin_list.md.
"""

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime

from common import populate, setup_django, write_table

PAGES = [("queue", "/admin/disclosure/report/"), ("overdue", "/admin/disclosure/report/?sla=overdue"),
         ("search", "/admin/disclosure/report/?q=app7.example.com")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,50000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="disclosure-bench-") as data_dir:
        setup_django(data_dir)
        from django.contrib.auth.models import User
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        admin = User.objects.create_superuser("bench", "bench@example.com", "bench-password-123")
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(admin)
        now = datetime.now(UTC)
        rows = []
        for size in [int(s) for s in args.sizes.split(",")]:
            populate(size, size // 100, now)
            for name, url in PAGES:
                client.get(url)  # warm up
                times = []
                for _ in range(args.repeat):
                    with CaptureQueriesContext(connection) as queries:
                        start = time.perf_counter()
                        response = client.get(url)
                        times.append((time.perf_counter() - start) * 1000)
                    assert response.status_code == 200, response.status_code
                rows.append((size, name, statistics.median(times), len(queries)))
        vendor = connection.vendor
    lines = [f"Admin report list ({vendor}; median of {args.repeat}; {time.strftime('%Y-%m-%d')}, "
             f"{os.cpu_count()} CPUs)", "", "| reports | page | median ms | queries |", "|---:|---|---:|---:|"]
    lines += [f"| {size:,} | {name} | {ms:.0f} | {queries} |" for size, name, ms, queries in rows]
    write_table("admin_list.md", "\n".join(lines))


if __name__ == "__main__":
    main()
