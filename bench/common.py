"""Shared set-up for the benchmarks: a throw-away database filled in bulk."""

import os
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(data_dir: str):
    """Configure Django on a private data folder (SQLite there unless DATABASE_URL is set)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DATA_DIR"] = data_dir
    os.environ.setdefault("DEBUG", "true")
    os.environ["MAILER"] = "locmem"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["STAFF_2FA_REQUIRED"] = "false"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def populate(total: int, due: int, now):
    """Replace all reports with ``total`` reports, of which ``due`` have an SLA alert due."""
    from django.db import transaction

    from disclosure.models import Event, OutboundEmail, Report, StatusLink

    with transaction.atomic():
        for model in (OutboundEmail, Event, StatusLink, Report):
            model.objects.all().delete()
    batch = []
    for i in range(total):
        is_due = i < due
        received = now - timedelta(days=10) if is_due else now - timedelta(hours=1 + i % 48)
        report = Report(tracking_id=f"BENCH-{i:07d}", title=f"Report {i} about a vulnerability",
                        description="x", asset=f"https://app{i % 50}.example.com/", received_at=received)
        report.recompute_deadlines(now)
        batch.append(report)
        if len(batch) == 5000:
            Report.objects.bulk_create(batch)
            batch.clear()
    Report.objects.bulk_create(batch)


def write_table(name: str, table: str):
    out = ROOT / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    print(table)
    print(f"\nwritten to {out.relative_to(ROOT)}")
