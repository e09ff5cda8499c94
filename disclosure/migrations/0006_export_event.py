"""Two new event kinds: a Lead's export of a report (``exported``, on the staff timeline),
and the team going ahead while its question to the reporter was open (``info_not_awaited``,
on the reporter's timeline)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('disclosure', '0005_sealed_content_and_running_deadline'),
    ]

    operations = [
        migrations.AlterField(
            model_name='event',
            name='kind',
            field=models.CharField(choices=[('received', 'Report received'), ('acknowledged', 'Acknowledged'), ('info_requested', 'More information requested'), ('info_provided', 'Reporter answered'), ('triaged', 'Triaged as valid'), ('fixing', 'Fix in progress'), ('resolved', 'Resolved'), ('disclosed', 'Disclosed'), ('closed', 'Closed'), ('withdrawn', 'Withdrawn by reporter'), ('reopened', 'Reopened'), ('reporter_message', 'Message from reporter'), ('team_message', 'Message to reporter'), ('note', 'Internal note'), ('assigned', 'Assigned'), ('severity_set', 'Severity set'), ('updated', 'Details updated'), ('credit_changed', 'Credit preference changed'), ('purged', 'Content deleted (retention)'), ('key_changed', "Reporter's PGP key changed"), ('ack_warning', 'Acknowledgement due soon'), ('ack_escalation', 'Acknowledgement overdue'), ('assess_warning', 'Assessment due soon'), ('assess_escalation', 'Assessment overdue'), ('links_reissued', 'Status links reissued'), ('info_not_awaited', "Went ahead without the reporter's answer"), ('exported', 'Exported')], max_length=30),
        ),
    ]
