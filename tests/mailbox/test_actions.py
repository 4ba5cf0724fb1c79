"""Resend, cancel and delete: in bulk from the list and one by one from the row menu."""

import datetime

import pytest
from django.contrib.auth.models import Permission
from django.core.files.storage import default_storage
from django.urls import reverse

from mailbox.models import OutboxMessage
from tests.factories import OutboxAttachmentFactory, OutboxMessageFactory, UserFactory

UTC = datetime.UTC


@pytest.fixture
def mails(db):
    """One mail per status, named after it."""
    statuses = ["scheduled", "queued", "sending", "sent", "deferred", "failed", "cancelled"]
    return {
        status: OutboxMessageFactory(
            subject=f"Mail {status}",
            recipient=f"{status}@example.com",
            status=status,
            attempt_count=3 if status in ("sent", "failed") else 0,
            error_message="550 rejected" if status == "failed" else "",
            sent_at=datetime.datetime(2025, 6, 1, tzinfo=UTC) if status == "sent" else None,
        )
        for status in statuses
    }


def statuses() -> dict[str, str]:
    return dict(OutboxMessage.objects.values_list("subject", "status"))


def bulk(client, action, messages, **extra):
    data = {"action": action, "selection": [message.pk for message in messages], **extra}
    return client.post(reverse("mailbox:bulk"), data, follow="confirm" in extra)


def page_text(response) -> str:
    return response.content.decode()


@pytest.mark.django_db
def test_bulk_resend_confirms_first_then_requeues_and_explains(client_for, english, admin, mails):
    client = client_for(admin)
    selected = list(mails.values())
    before = statuses()

    confirm_page = bulk(client, "resend", selected)
    unchanged = statuses()
    done = bulk(client, "resend", selected, confirm="1")

    assert unchanged == before
    html = page_text(confirm_page)
    assert "This will apply to 3 rows:" in html
    assert (
        "Mail queued → queued@example.com — <strong>left out:</strong> Only sent, failed or "
        "cancelled mails can be sent again; this one is queued."
    ) in html
    assert statuses() == {
        "Mail scheduled": "scheduled",
        "Mail queued": "queued",
        "Mail sending": "sending",
        "Mail sent": "queued",
        "Mail deferred": "deferred",
        "Mail failed": "queued",
        "Mail cancelled": "queued",
    }
    text = page_text(done)
    assert "3 mails queued to be sent again." in text
    assert (
        "Mail sending → sending@example.com was left out: Only sent, failed or cancelled "
        "mails can be sent again; this one is sending."
    ) in text
    failed = OutboxMessage.objects.get(pk=mails["failed"].pk)
    sent = OutboxMessage.objects.get(pk=mails["sent"].pk)
    assert (failed.attempt_count, failed.error_message, sent.sent_at) == (0, "", None)


@pytest.mark.django_db
def test_bulk_confirm_page_posts_only_acceptable_rows(client_for, admin, mails):
    response = bulk(client_for(admin), "cancel", list(mails.values()))

    html = page_text(response)
    hidden = {
        int(part.split('"')[0])
        for part in html.split('<input type="hidden" name="selection" value="')[1:]
    }
    assert hidden == {mails[s].pk for s in ("scheduled", "queued", "deferred")}


@pytest.mark.django_db
def test_bulk_cancel_stops_waiting_mails_only(client_for, english, admin, mails):
    done = bulk(client_for(admin), "cancel", list(mails.values()), confirm="1")

    assert statuses() == {
        "Mail scheduled": "cancelled",
        "Mail queued": "cancelled",
        "Mail sending": "sending",
        "Mail sent": "sent",
        "Mail deferred": "cancelled",
        "Mail failed": "failed",
        "Mail cancelled": "cancelled",
    }
    text = page_text(done)
    assert "3 mails cancelled." in text
    assert "Mail sent → sent@example.com was left out: A sent mail cannot become cancelled." in text
    assert text.count("was left out") == 4


@pytest.mark.django_db
def test_bulk_delete_removes_rows_and_files_but_not_mails_in_flight(
    client_for, english, admin, mails, django_capture_on_commit_callbacks
):
    attachment = OutboxAttachmentFactory(message=mails["sent"])
    stored_name = attachment.file.name
    client = client_for(admin)

    with django_capture_on_commit_callbacks(execute=True):
        done = bulk(client, "delete", list(mails.values()), confirm="1")

    assert list(OutboxMessage.objects.values_list("status", flat=True)) == ["sending"]
    assert default_storage.exists(stored_name) is False
    text = page_text(done)
    assert "6 mails deleted." in text
    assert (
        "Mail sending → sending@example.com was left out: The mail is being sent right now; "
        "try again in a moment."
    ) in text


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["resend", "cancel", "delete"])
def test_bulk_actions_forbidden_for_viewer_and_power_user(
    client_for, viewer, power_user, team, mails, action
):
    for user in (viewer, power_user):
        user.groups.add(team)
    OutboxMessage.objects.update(owner_group=team)
    before = statuses()

    responses = [
        bulk(client_for(user), action, list(mails.values()), confirm="1").status_code
        for user in (viewer, power_user)
    ]

    assert responses == [403, 403]
    assert statuses() == before


@pytest.mark.django_db
def test_bulk_ignores_rows_the_user_cannot_see(client_for, english, team, mails):
    # A team member allowed to resend, but the mails belong to nobody's team.
    member = UserFactory(username="member", roles=["Viewer"])
    member.groups.add(team)
    member.user_permissions.add(Permission.objects.get(codename="resend_outboxmessage"))

    response = bulk(client_for(member), "resend", [mails["failed"]], confirm="1")

    assert "No rows were selected." in page_text(response)
    assert statuses()["Mail failed"] == "failed"


@pytest.mark.django_db
def test_bulk_without_selection_or_action_explains(client_for, english, admin, mails):
    client = client_for(admin)

    no_rows = client.post(reverse("mailbox:bulk"), {"action": "resend"}, follow=True)
    no_action = client.post(reverse("mailbox:bulk"), {"selection": [mails["sent"].pk]}, follow=True)

    assert "No rows were selected." in page_text(no_rows)
    assert "Choose an action for the selected rows." in page_text(no_action)


# --- one mail at a time -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "status", "after", "question"),
    [
        ("resend", "failed", "queued", "Send the mail “Mail failed” to failed@example.com again?"),
        (
            "cancel",
            "deferred",
            "cancelled",
            "Cancel the mail “Mail deferred” to deferred@example.com? It will not be sent.",
        ),
    ],
)
def test_row_action_confirms_then_changes_status(
    client_for, english, admin, mails, action, status, after, question
):
    message = mails[status]
    client = client_for(admin)
    url = reverse(f"mailbox:{action}", args=[message.pk])

    page = client.get(url)
    unchanged = OutboxMessage.objects.get(pk=message.pk).status
    done = client.post(url)

    assert question in page_text(page)
    assert unchanged == status
    assert done.status_code == 302
    assert done["Location"] == reverse("mailbox:detail", args=[message.pk])
    assert OutboxMessage.objects.get(pk=message.pk).status == after


@pytest.mark.django_db
def test_row_delete_goes_back_to_list(client_for, english, admin, mails):
    message = mails["failed"]

    response = client_for(admin).post(reverse("mailbox:delete", args=[message.pk]), follow=True)

    assert response.redirect_chain == [(reverse("mailbox:list"), 302)]
    assert "The mail was deleted." in page_text(response)
    assert OutboxMessage.objects.filter(pk=message.pk).exists() is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "status", "reason"),
    [
        ("resend", "queued", "Only sent, failed or cancelled mails can be sent again"),
        ("resend", "sending", "Only sent, failed or cancelled mails can be sent again"),
        ("cancel", "sent", "A sent mail cannot become cancelled."),
        ("delete", "sending", "The mail is being sent right now"),
    ],
)
def test_row_action_refused_explains_and_changes_nothing(
    client_for, english, admin, mails, action, status, reason
):
    message = mails[status]
    client = client_for(admin)
    url = reverse(f"mailbox:{action}", args=[message.pk])

    page = client.get(url)
    posted = client.post(url)

    assert reason in page_text(page)
    assert 'type="submit"' not in page_text(page).split("<main", 1)[1]
    assert posted.status_code == 200
    assert reason in page_text(posted)
    assert OutboxMessage.objects.filter(pk=message.pk, status=status).exists()


@pytest.mark.django_db
def test_row_action_post_forbidden_for_viewer(client_for, viewer, team, mails):
    viewer.groups.add(team)
    OutboxMessage.objects.update(owner_group=team)

    response = client_for(viewer).post(reverse("mailbox:resend", args=[mails["failed"].pk]))

    assert response.status_code == 403
    assert OutboxMessage.objects.get(pk=mails["failed"].pk).status == "failed"
