import pytest
from django.contrib.auth.models import Group


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Attachment files of a test go to its own folder, never into var/."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def team(db):
    return Group.objects.create(name="Labor Nord")


@pytest.fixture
def other_team(db):
    return Group.objects.create(name="Labor Süd")


@pytest.fixture
def english(client):
    """The client with English chosen (pages default to German)."""
    client.post("/i18n/setlang/", {"language": "en"})
    return client


def entry_fields(entry) -> dict:
    """A log entry as a dict of what a reader sees, for comparing field by field."""
    return {
        "level": entry.level,
        "category": entry.category,
        "actor": entry.actor,
        "actor_label": entry.actor_label,
        "content_type": (
            f"{entry.content_type.app_label}.{entry.content_type.model}"
            if entry.content_type
            else None
        ),
        "object_id": entry.object_id,
        "object_label": entry.object_label,
        "message": entry.message,
        "params": entry.params,
        "details": entry.details,
        "group": entry.group,
        "audit_action": entry.audit_action,
        "changes": entry.changes,
    }
