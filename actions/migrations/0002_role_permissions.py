from django.db import migrations

from calmail.common.roles import grant_permissions


def perms(model, *verbs):
    return [f"actions.{verb}_{model}" for verb in verbs]


def grant(apps, schema_editor):
    # Administrators manage every action; power users manage the actions of their own
    # groups (visibility by group is applied in actions.selectors); viewers only look.
    # Runs are written by the scheduler alone, so people only ever view them.
    grant_permissions(
        apps,
        {
            "Administrator": perms("action", "view", "add", "change", "delete")
            + perms("actionrun", "view", "add", "change", "delete"),
            "Power user": perms("action", "view", "add", "change", "delete")
            + perms("actionrun", "view"),
            "Viewer": perms("action", "view") + perms("actionrun", "view"),
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("actions", "0001_initial"),
        ("common", "0001_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
