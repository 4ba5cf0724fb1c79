from django.db import migrations

from calmail.common.roles import grant_permissions

MODELS = ("mailtemplate", "mailtemplatetranslation")


def perms(*actions):
    return [f"templates_app.{action}_{model}" for model in MODELS for action in actions]


def grant(apps, schema_editor):
    # Administrators manage every template; power users build and edit the templates of
    # their own groups (visibility by owner group is applied in templates_app.selectors);
    # viewers read them and their previews.
    grant_permissions(
        apps,
        {
            "Administrator": perms("view", "add", "change", "delete"),
            "Power user": perms("view", "add", "change"),
            "Viewer": perms("view"),
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("templates_app", "0001_initial"),
        ("common", "0001_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
