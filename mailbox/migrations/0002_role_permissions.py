from django.db import migrations

from calmail.common.roles import grant_permissions


def grant(apps, schema_editor):
    # Administrators manage every mail; the other roles see the mails of their groups.
    grant_permissions(
        apps,
        {
            "Administrator": [
                "mailbox.view_outboxmessage",
                "mailbox.delete_outboxmessage",
                "mailbox.resend_outboxmessage",
                "mailbox.cancel_outboxmessage",
            ],
            "Power user": ["mailbox.view_outboxmessage"],
            "Viewer": ["mailbox.view_outboxmessage"],
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("mailbox", "0001_initial"),
        ("common", "0001_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
