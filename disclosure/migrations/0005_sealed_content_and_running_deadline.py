# A report's text sealed as one message; the running deadline stored; the status-page cache's revision goes.

from django.conf import settings
from django.db import migrations, models
from django.db.models import F


def store_running_deadlines(apps, schema_editor):
    """The deadline now running, as Report.recompute_deadlines decides it."""
    report = apps.get_model("disclosure", "Report")
    report.objects.filter(ack_milestone="pending").update(due_at=F("ack_due_at"))
    (report.objects.exclude(ack_milestone="pending").filter(assess_milestone="pending")
     .exclude(status="needs_info").update(due_at=F("assess_due_at")))


class Migration(migrations.Migration):

    dependencies = [
        ('disclosure', '0004_rate_limit_counter'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveField(
            model_name='report',
            name='revision',
        ),
        migrations.AddField(
            model_name='report',
            name='due_at',
            field=models.DateTimeField(blank=True, editable=False, help_text='The deadline now running: acknowledgement, then assessment; empty while paused or once both are met.', null=True, verbose_name='next deadline'),
        ),
        migrations.AddField(
            model_name='report',
            name='sealed_content',
            field=models.TextField(blank=True, editable=False, help_text='The description, steps and impact the portal sealed to the team key on arrival: one OpenPGP message with JSON inside (see disclosure.pgp.sealing).'),
        ),
        migrations.AlterField(
            model_name='report',
            name='description',
            field=models.TextField(blank=True, help_text='Markdown as written by the reporter (empty when sealed with the other fields in sealed_content).'),
        ),
        migrations.AddIndex(
            model_name='report',
            index=models.Index(condition=models.Q(('due_at__isnull', False)), fields=['due_at'], name='report_running_deadline'),
        ),
        migrations.RunPython(store_running_deadlines, migrations.RunPython.noop),
    ]
