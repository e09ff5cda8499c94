# Written by hand: the table behind disclosure.ratelimit_store.CounterTableCache, the
# rate-limit counters when REDIS_URL is not set.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("disclosure", "0003_revision_and_outbox_rendered_at"),
    ]

    operations = [
        migrations.CreateModel(
            name="RateLimitCounter",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(help_text="The cache key, with its prefix and version.", max_length=255,
                                         unique=True)),
                ("value", models.BigIntegerField(help_text="A request count, or the epoch second a block ends.")),
                ("expires_at", models.DateTimeField(db_index=True,
                                                    help_text="When the row stops counting; deleted hourly after.")),
            ],
        ),
    ]
