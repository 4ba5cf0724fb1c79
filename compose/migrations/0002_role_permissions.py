from django.db import migrations

from calmail.common.roles import grant_permissions

DRAFT = ("view", "add", "change", "delete")


def grant(apps, schema_editor):
    # Composing is for power users and administrators (5.6.6); viewers only read the outbox.
    # Drafts are private to their owner whatever the role (compose.selectors).
    perms = ["compose.send_mail", *(f"compose.{action}_draft" for action in DRAFT)]
    grant_permissions(apps, {"Administrator": perms, "Power user": perms})


class Migration(migrations.Migration):
    dependencies = [
        ("compose", "0001_initial"),
        ("common", "0001_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
