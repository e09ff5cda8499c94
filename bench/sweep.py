"""Benchmark: the SLA sweep's cost with many reports of which few are due.

Usage: .venv/bin/python bench/sweep.py [--sizes 1000,100000] [--due 20]

Builds a throw-away database per size (SQLite in a temporary folder, or the database in
DATABASE_URL, whose tables are emptied first), fills it with reports of which only
``--due`` have an SLA alert due, then runs one sweep pass and reports its wall time and
query count. The point is the ratio: the cost should follow the number due, not the total.
Results are printed and written to bench/results/sweep.md.
"""

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta

from common import populate, setup_django, write_table


def measure(total: int, due: int) -> dict:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from disclosure.tasks import raise_due_sla_alerts

    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    populate(total, due, now)
    reset_queries()
    # The selection alone (what runs every minute when nothing is due):
    with CaptureQueriesContext(connection) as idle:
        start = time.perf_counter()
        raise_due_sla_alerts(now - timedelta(days=30))
        idle_ms = (time.perf_counter() - start) * 1000
    with CaptureQueriesContext(connection) as busy:
        start = time.perf_counter()
        raised = raise_due_sla_alerts(now)
        busy_ms = (time.perf_counter() - start) * 1000
    return {"total": total, "due": due, "raised": raised, "idle_ms": idle_ms, "idle_queries": len(idle),
            "busy_ms": busy_ms, "busy_queries": len(busy)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--due", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="disclosure-bench-") as data_dir:
        setup_django(data_dir)
        from django.db import connection

        rows = [measure(int(size), args.due) for size in args.sizes.split(",")]
        vendor = connection.vendor
    base = rows[0]
    lines = [
        f"SLA sweep benchmark ({vendor}, {args.due} reports due; {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} CPUs)",
        "",
        "| reports | due | alerts raised | idle pass (ms) | idle queries | pass with due (ms) | queries "
        "| time vs smallest |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['total']:,} | {row['due']} | {row['raised']} | {row['idle_ms']:.1f} | "
                     f"{row['idle_queries']} | {row['busy_ms']:.0f} | {row['busy_queries']} | "
                     f"{row['busy_ms'] / base['busy_ms']:.2f}x |")
    write_table("sweep.md", "\n".join(lines))


if __name__ == "__main__":
    main()
