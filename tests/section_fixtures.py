"""Fixtures shared by the tests of several sections. A section's conftest imports the ones
it uses; `media_root` is autouse wherever it is imported."""

import pytest
from django.contrib.auth.models import Group


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Attachment files of a test go to its own folder, never into var/."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def team(db):
    """A team group (not a role) that owns a section's objects."""
    return Group.objects.create(name="Labor Nord")


@pytest.fixture
def other_team(db):
    return Group.objects.create(name="Labor Süd")


@pytest.fixture
def english(client):
    """The client with English chosen (pages default to German)."""
    client.post("/i18n/setlang/", {"language": "en"})
    return client
