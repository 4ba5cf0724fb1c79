from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("actions", "0004_action_group_optional"),
    ]

    operations = [
        migrations.AddField(
            model_name="actionrun",
            name="audience",
            field=models.JSONField(blank=True, default=dict, verbose_name="audience"),
        ),
    ]
