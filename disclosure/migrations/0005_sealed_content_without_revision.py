# Sealing a report's text fields as one message; the status-page cache's revision counter goes.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('disclosure', '0003_revision_and_outbox_rendered_at'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='report',
            name='revision',
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
    ]
