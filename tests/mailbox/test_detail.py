"""The detail page of one mail: headers, bodies, attachments, attempt timeline."""

import datetime
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from mailbox.models import OutboxAttachment
from tests.factories import (
    DeliveryAttemptFactory,
    OutboxAttachmentFactory,
    OutboxMessageFactory,
    SmtpConfigurationFactory,
)

UTC = datetime.UTC

HOSTILE_HTML = (
    '<p onclick="steal()">Hallo <b>Welt</b></p>'
    "<script>alert(1)</script>"
    '<img src="x" onerror="alert(2)">'
    '<img src="https://tracker.example/pixel.gif" alt="Logo">'
    '<a href="javascript:alert(3)">klick</a> '
    '<a href="https://calmail.example/ok">ok</a>'
    '<iframe src="https://evil.example"></iframe>'
    '<form action="https://evil.example"><input name="pw"></form>'
    "<style>body{background:url(https://evil.example/bg)}</style>"
    '<p style="color: red; background-image: url(https://evil.example/x)">rot</p>'
    '<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline">'
    '<a href="data:text/html;base64,PHNjcmlwdD4=">d</a>'
    '<base href="https://evil.example/">'
    '<meta http-equiv="refresh" content="0;url=https://evil.example">'
)
SANITISED_HTML = (
    "<p>Hallo <b>Welt</b></p>"
    "<img>"
    '<img alt="Logo">'
    '<a target="_blank" rel="noopener noreferrer">klick</a> '
    '<a href="https://calmail.example/ok" target="_blank" rel="noopener noreferrer">ok</a>'
    '<p style="color:red">rot</p>'
    '<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline">'
    '<a rel="noopener noreferrer" target="_blank">d</a>'
)


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(html: str, name: str) -> list[dict]:
    parser = _Tags()
    parser.feed(html)
    return [attrs for tag, attrs in parser.tags if tag == name]


@pytest.fixture
def mail(db, team, power_user):
    configuration = SmtpConfigurationFactory(name="Laborserver")
    return OutboxMessageFactory(
        smtp_configuration=configuration,
        from_email="labor@example.com",
        from_name="Kalibrierlabor Nord",
        to=["anna@kunde-a.de", "bernd@kunde-a.de"],
        cc=["qs@example.com"],
        bcc=["archiv@example.com"],
        reply_to=["antwort@example.com"],
        recipient="anna@kunde-a.de, bernd@kunde-a.de",
        subject="Kalibrierschein 4711",
        body_text="Guten Tag,\n\nanbei <der> Schein.",
        body_html=HOSTILE_HTML,
        headers={"X-Calmail-Action": "17"},
        message_id="<4711.abc@example.com>",
        source="action",
        source_label="Monatsbericht",
        owner_group=team,
        created_by=power_user,
        status="sent",
        attempt_count=2,
        sent_at=datetime.datetime(2025, 6, 2, 8, 0, 5, tzinfo=UTC),
    )


def attempt(mail, **fields):
    fields.setdefault("smtp_configuration", mail.smtp_configuration)
    return DeliveryAttemptFactory(message=mail, **fields)


@pytest.mark.django_db
def test_detail_shows_headers_text_and_status(client_for, english, admin, mail):
    response = client_for(admin).get(reverse("mailbox:detail", args=[mail.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    for expected in [
        "Kalibrierlabor Nord &lt;labor@example.com&gt;",
        "anna@kunde-a.de, bernd@kunde-a.de",
        "qs@example.com",
        "archiv@example.com",
        "antwort@example.com",
        "<code>&lt;4711.abc@example.com&gt;</code>",
        '<code>X-Calmail-Action</code></dt><dd class="col-sm-9">17</dd>',
        f'<a href="{reverse("smtpconfig:detail", args=[mail.smtp_configuration_id])}">Laborserver</a>',
        "mail action: Monatsbericht",
        "Labor Nord",
        "power",
        '<span class="badge text-bg-success">sent</span>',
        '<pre class="transcript" data-testid="body-text">Guten Tag,\n\nanbei &lt;der&gt; Schein.</pre>',
    ]:
        assert expected in html
    # The raw HTML body is never part of the page itself.
    assert "steal()" not in html
    assert "tracker.example" not in html


@pytest.mark.django_db
def test_detail_html_body_is_in_a_sandboxed_frame(client_for, admin, mail):
    response = client_for(admin).get(reverse("mailbox:detail", args=[mail.pk]))

    [frame] = tags(response.content.decode(), "iframe")
    assert frame["src"] == reverse("mailbox:body", args=[mail.pk])
    sandbox = frame["sandbox"].split()
    assert "allow-scripts" not in sandbox
    assert "allow-same-origin" not in sandbox
    assert sandbox == ["allow-popups", "allow-popups-to-escape-sandbox"]


@pytest.mark.django_db
def test_body_frame_serves_only_sanitised_html_with_strict_policy(client_for, admin, mail):
    response = client_for(admin).get(reverse("mailbox:body", args=[mail.pk]))

    html = response.content.decode()
    body = html.split("<body>", 1)[1].split("</body>", 1)[0].strip()
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert body == SANITISED_HTML
    assert response["Content-Security-Policy"] == (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'self'"
    )
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert response["X-Content-Type-Options"] == "nosniff"
    for dangerous in ["<script", "onerror", "onclick", "javascript:", "tracker.example", "evil"]:
        assert dangerous not in html.lower()
    # No calmail asset either: the frame is the mail only.
    assert "/static/" not in html


@pytest.mark.django_db
def test_other_pages_keep_the_default_frame_and_content_policy(client_for, admin, mail):
    response = client_for(admin).get(reverse("mailbox:detail", args=[mail.pk]))

    assert response["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_detail_without_html_part_has_no_frame(client_for, english, admin):
    mail = OutboxMessageFactory(body_html="")
    client = client_for(admin)

    detail = client.get(reverse("mailbox:detail", args=[mail.pk]))
    frame = client.get(reverse("mailbox:body", args=[mail.pk]))

    assert tags(detail.content.decode(), "iframe") == []
    assert "This mail has no HTML part." in detail.content.decode()
    assert frame.status_code == 404


@pytest.mark.django_db
def test_detail_lists_attachments_with_size_and_download(client_for, english, admin, mail):
    report = OutboxAttachmentFactory(
        message=mail, filename="Kalibrierschein 4711.pdf", content=b"x" * 2048, exported=True
    )

    response = client_for(admin).get(reverse("mailbox:detail", args=[mail.pk]))

    html = response.content.decode()
    url = reverse("mailbox:attachment", args=[mail.pk, report.uuid])
    assert (
        f'<a href="{url}"><i class="bi bi-download" aria-hidden="true"></i> Kalibrierschein 4711.pdf</a>'
        in html
    )
    assert "2.0\xa0KB" in html
    assert "<code>application/pdf</code>" in html


@pytest.mark.django_db
def test_attachment_download_has_safe_headers_and_content(client_for, viewer, team, mail):
    viewer.groups.add(team)
    report = OutboxAttachmentFactory(
        message=mail,
        filename="Prüfbericht März.html",
        content_type="text/html",
        content=b"<script>alert(1)</script>",
    )

    response = client_for(viewer).get(reverse("mailbox:attachment", args=[mail.pk, report.uuid]))
    content = b"".join(response.streaming_content)

    assert response.status_code == 200
    assert content == b"<script>alert(1)</script>"
    assert response["Content-Type"] == "text/html"
    assert response["Content-Disposition"] == (
        "attachment; filename*=utf-8''Pr%C3%BCfbericht%20M%C3%A4rz.html"
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    # Downloads by signed-in users are not recipients' downloads.
    assert OutboxAttachment.objects.get(pk=report.pk).download_count == 0


@pytest.mark.django_db
def test_attachment_of_another_mail_is_404(client_for, admin, mail):
    other = OutboxMessageFactory()
    report = OutboxAttachmentFactory(message=other)

    response = client_for(admin).get(reverse("mailbox:attachment", args=[mail.pk, report.uuid]))

    assert response.status_code == 404


@pytest.mark.django_db
def test_attachment_whose_file_is_gone_is_404(client_for, admin, mail):
    report = OutboxAttachmentFactory(message=mail)
    report.file.storage.delete(report.file.name)

    response = client_for(admin).get(reverse("mailbox:attachment", args=[mail.pk, report.uuid]))

    assert response.status_code == 404


@pytest.mark.django_db
def test_detail_shows_attempt_timeline_in_order(client_for, english, admin, mail):
    attempt(
        mail,
        started_at=datetime.datetime(2025, 6, 2, 7, 58, tzinfo=UTC),
        outcome="deferred",
        reply_code=451,
        reply_text="4.3.0 Temporary lookup failure",
        duration_ms=812,
        worker="celery@w1",
    )
    attempt(
        mail,
        started_at=datetime.datetime(2025, 6, 2, 8, 0, tzinfo=UTC),
        outcome="sent",
        reply_code=250,
        reply_text="2.0.0 Ok: queued as 4F2A1",
        duration_ms=95,
        worker="celery@w2",
    )

    response = client_for(admin).get(reverse("mailbox:detail", args=[mail.pk]))

    html = response.content.decode()
    timeline = html.split('data-testid="attempts"', 1)[1].split("</table>", 1)[0]
    rows = timeline.split("<tr>")[2:]
    assert len(rows) == 2
    assert "451" in rows[0] and "4.3.0 Temporary lookup failure" in rows[0]
    assert "812 ms" in rows[0] and "celery@w1" in rows[0] and ">deferred<" in rows[0]
    assert "250" in rows[1] and "2.0.0 Ok: queued as 4F2A1" in rows[1]
    assert "95 ms" in rows[1] and "celery@w2" in rows[1] and ">sent<" in rows[1]
    assert "Laborserver" in rows[1]


@pytest.mark.django_db
def test_detail_query_count_does_not_grow_with_attempts_and_attachments(
    client_for, admin, mail, django_assert_num_queries
):
    client = client_for(admin)
    url = reverse("mailbox:detail", args=[mail.pk])
    attempt(mail)
    OutboxAttachmentFactory(message=mail)
    client.get(url)  # warm caches (content types, session)
    with CaptureQueriesContext(connection) as one_each:
        client.get(url)
    for _ in range(2):
        attempt(mail, smtp_configuration=SmtpConfigurationFactory())
        OutboxAttachmentFactory(message=mail)

    with django_assert_num_queries(len(one_each.captured_queries)):
        response = client.get(url)

    assert (len(response.context["attempts"]), len(response.context["attachments"])) == (3, 3)


@pytest.mark.django_db
def test_detail_offers_actions_that_fit_the_status(client_for, admin, mail):
    response = client_for(admin).get(reverse("mailbox:detail", args=[mail.pk]))

    links = [attrs["href"] for attrs in tags(response.content.decode(), "a")]
    assert reverse("mailbox:resend", args=[mail.pk]) in links
    assert reverse("mailbox:delete", args=[mail.pk]) in links
    assert reverse("mailbox:cancel", args=[mail.pk]) not in links


# --- the whole mail as .eml ------------------------------------------------------------------


def _eml(client, message):
    import email
    import email.policy

    response = client.get(reverse("mailbox:raw", args=[message.pk]))
    assert response.status_code == 200
    return response, email.message_from_bytes(response.content, policy=email.policy.default)


@pytest.mark.django_db
def test_detail_offers_the_mail_as_eml(client_for, admin):
    message = OutboxMessageFactory(subject="Erinnerung")

    response = client_for(admin).get(reverse("mailbox:detail", args=[message.pk]))

    assert reverse("mailbox:raw", args=[message.pk]).encode() in response.content


@pytest.mark.django_db
def test_eml_is_exactly_what_enqueue_built(client_for, admin):
    from mailbox.services import enqueue

    SmtpConfigurationFactory(is_default=True)
    message = enqueue(
        to=["lab@example.org"],
        bcc=["archiv@example.org"],
        subject="Kalibrierung fällig",
        body_text="Guten Tag",
        body_html="<p>Guten Tag</p>",
    )

    response, mail = _eml(client_for(admin), message)

    assert response.content == bytes(message.raw_message)
    assert response["Content-Type"] == "message/rfc822"
    assert response["Content-Disposition"] == f'attachment; filename="mail-{message.pk}.eml"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert str(mail["Message-ID"]) == message.message_id
    assert str(mail["Subject"]) == "Kalibrierung fällig"
    # Bcc recipients are in the envelope only, never in the mail itself.
    assert mail["Bcc"] is None
    assert b"archiv@example.org" not in response.content


@pytest.mark.django_db
def test_eml_of_a_mail_with_files_carries_them(client_for, admin):
    from mailbox.services import AttachmentSpec, enqueue

    SmtpConfigurationFactory(is_default=True)
    message = enqueue(
        to=["lab@example.org"],
        subject="Bericht",
        body_text="Anbei.",
        attachments=[AttachmentSpec("bericht.pdf", b"%PDF-1.4 Bericht", "application/pdf")],
    )

    _response, mail = _eml(client_for(admin), message)

    [part] = mail.iter_attachments()
    assert (part.get_filename(), part.get_payload(decode=True)) == (
        "bericht.pdf",
        b"%PDF-1.4 Bericht",
    )


@pytest.mark.django_db
def test_eml_of_a_mail_whose_file_is_gone_says_so(client_for, admin):
    from mailbox.services import AttachmentSpec, enqueue

    SmtpConfigurationFactory(is_default=True)
    message = enqueue(
        to=["lab@example.org"],
        subject="Bericht",
        body_text="Anbei.",
        attachments=[AttachmentSpec("bericht.pdf", b"%PDF-1.4", "application/pdf")],
    )
    attachment = message.attachments.get()
    attachment.file.storage.delete(attachment.file.name)

    response = client_for(admin).get(reverse("mailbox:raw", args=[message.pk]), follow=True)

    assert response.redirect_chain == [(reverse("mailbox:detail", args=[message.pk]), 302)]
    assert "Der Anhang bericht.pdf kann nicht gelesen werden" in response.content.decode()
