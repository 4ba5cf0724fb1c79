"""Who sees which mail: administrators all; team members their group's and their own."""

import pytest
from django.urls import reverse

from mailbox.links import attachment_token
from tests.factories import OutboxAttachmentFactory, OutboxMessageFactory, UserFactory


@pytest.fixture
def mails(team, other_team, power_user, viewer):
    """One mail per way of being visible, and one nobody but administrators may see."""
    power_user.groups.add(team)
    viewer.groups.add(team)
    stranger = UserFactory(username="stranger")
    return {
        "team": OutboxMessageFactory(subject="Team-Mail", owner_group=team),
        "own": OutboxMessageFactory(subject="Eigene Mail", created_by=power_user),
        "foreign": OutboxMessageFactory(
            subject="Fremde Mail", owner_group=other_team, created_by=stranger
        ),
        "orphan": OutboxMessageFactory(subject="Systemmail"),
    }


def status_of(client, url) -> int:
    response = client.get(url)
    if response.streaming:
        # Reading a file response to the end closes its file.
        b"".join(response.streaming_content)
    return response.status_code


def listed_subjects(client) -> list[str]:
    response = client.get(reverse("mailbox:list"), {"sort": "content"})
    assert response.status_code == 200
    return [row.record.subject for row in response.context["table"].page.object_list]


def object_urls(message) -> dict[str, str]:
    attachment = OutboxAttachmentFactory(message=message)
    return {
        "detail": reverse("mailbox:detail", args=[message.pk]),
        "body": reverse("mailbox:body", args=[message.pk]),
        "raw": reverse("mailbox:raw", args=[message.pk]),
        "attachment": reverse("mailbox:attachment", args=[message.pk, attachment.uuid]),
        "resend": reverse("mailbox:resend", args=[message.pk]),
        "cancel": reverse("mailbox:cancel", args=[message.pk]),
        "delete": reverse("mailbox:delete", args=[message.pk]),
    }


@pytest.mark.django_db
def test_outbox_list_administrator_sees_every_mail(client_for, admin, mails):
    assert listed_subjects(client_for(admin)) == [
        "Eigene Mail",
        "Fremde Mail",
        "Systemmail",
        "Team-Mail",
    ]


@pytest.mark.django_db
def test_outbox_list_power_user_sees_team_and_own_mails(client_for, power_user, mails):
    assert listed_subjects(client_for(power_user)) == ["Eigene Mail", "Team-Mail"]


@pytest.mark.django_db
def test_outbox_list_viewer_sees_team_mails_only(client_for, viewer, mails):
    assert listed_subjects(client_for(viewer)) == ["Team-Mail"]


@pytest.mark.django_db
def test_outbox_list_user_without_team_sees_own_mails_only(client_for, mails):
    loner = UserFactory(username="loner", roles=["Viewer"])
    OutboxMessageFactory(subject="Meine", created_by=loner)

    assert listed_subjects(client_for(loner)) == ["Meine"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["detail", "body", "raw", "attachment"])
def test_outbox_foreign_mail_by_url_is_404(client_for, power_user, mails, name):
    mails["foreign"].body_html = "<p>Geheim</p>"
    mails["foreign"].save()
    url = object_urls(mails["foreign"])[name]

    response = client_for(power_user).get(url)

    assert response.status_code == 404
    assert b"Fremde Mail" not in response.content
    assert b"Geheim" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["detail", "body", "raw", "attachment"])
def test_outbox_team_mail_by_url_is_shown(client_for, viewer, mails, name):
    mails["team"].body_html = "<p>Sichtbar</p>"
    mails["team"].save()
    url = object_urls(mails["team"])[name]

    response = client_for(viewer).get(url)

    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert response.status_code == 200
    assert body != b""


@pytest.mark.django_db
def test_outbox_administrator_reaches_any_mail_by_url(client_for, admin, mails):
    urls = object_urls(mails["foreign"])

    client = client_for(admin)

    statuses = {name: status_of(client, url) for name, url in urls.items()}

    assert statuses == {
        "detail": 200,
        "body": 404,  # the mail has no HTML part
        "raw": 200,
        "attachment": 200,
        "resend": 200,
        "cancel": 200,
        "delete": 200,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["list", "detail", "body", "raw", "attachment", "resend", "delete"]
)
def test_outbox_outsider_is_forbidden(client_for, outsider, mails, name):
    urls = {"list": reverse("mailbox:list"), **object_urls(mails["team"])}

    response = client_for(outsider).get(urls[name])

    assert response.status_code == 403
    assert b"Team-Mail" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["list", "detail", "body", "raw", "attachment", "resend"])
def test_outbox_anonymous_is_sent_to_login(client, mails, name):
    urls = {"list": reverse("mailbox:list"), **object_urls(mails["team"])}

    response = client.get(urls[name])

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={urls[name]}"


@pytest.mark.django_db
def test_outbox_viewer_gets_no_action_pages_even_for_team_mail(client_for, viewer, mails):
    urls = object_urls(mails["team"])

    client = client_for(viewer)

    statuses = [status_of(client, urls[name]) for name in ("resend", "delete")]

    assert statuses == [403, 403]


@pytest.mark.django_db
def test_outbox_link_of_foreign_mail_still_works_without_login(client, mails):
    # The public link is for recipients; it is bound to its token, not to a user.
    mails["foreign"].attachment_type = "link"
    mails["foreign"].save()
    attachment = OutboxAttachmentFactory(message=mails["foreign"], content=b"Bericht")

    response = client.get(reverse("mailbox:download", args=[attachment_token(attachment)]))

    content = b"".join(response.streaming_content)
    assert response.status_code == 200
    assert content == b"Bericht"


@pytest.mark.django_db
def test_outbox_section_follows_actions_in_navigation(client_for, viewer):
    response = client_for(viewer).get("/")
    sections = client_for(viewer).get(reverse("mailbox:list")).context["nav_sections"]

    # The overview (home) first, then the design's order: actions (5.6.1), the outbox (5.6.2).
    assert response.status_code == 302
    assert response["Location"] == reverse("overview:index")
    assert [s["key"] for s in sections[:3]] == ["overview", "actions", "mailbox"]
