import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from compose.models import Draft, DraftAttachment
from compose.services import draft_add_attachment
from mailbox.models import OutboxMessage
from tests.factories import MailTemplateFactory, UserFactory

NEW = reverse("compose:new")


@pytest.fixture
def english(client_for):
    def login(user):
        client = client_for(user)
        client.post("/i18n/setlang/", {"language": "en"})
        return client

    return login


def form_data(configuration, **values):
    data = {
        "smtp_configuration": configuration.pk,
        "from_email": "",
        "from_name": "Labor",
        "to": "",
        "cc": "",
        "bcc": "",
        "send_mode": "per_recipient",
        "subject": "Ihr Zertifikat",
        "body_html": "<p>Guten Tag</p>",
        "scheduled_at": "",
        "action": "preview",
    }
    data.update(values)
    return data


def upload(name, content=b"%PDF-1.7 Zertifikat", content_type="application/pdf"):
    return SimpleUploadedFile(name, content, content_type=content_type)


# --- permissions ---------------------------------------------------------------------------


def test_compose_anonymous_redirected_to_login(client):
    response = client.get(NEW)
    assert (response.status_code, response["Location"]) == (302, f"/accounts/login/?next={NEW}")


@pytest.mark.parametrize("role", ["viewer", "outsider"])
def test_compose_without_permission_gets_403(client_for, request, role, configuration):
    client = client_for(request.getfixturevalue(role))
    responses = [
        client.get(NEW),
        client.post(NEW, form_data(configuration, to="a@example.com")),
        client.get(reverse("compose:drafts")),
    ]
    assert [r.status_code for r in responses] == [403, 403, 403]
    assert Draft.objects.count() == 0


@pytest.mark.parametrize("role", ["power_user", "admin"])
def test_compose_form_shown_with_default_configuration(english, request, role, configuration):
    from tests.factories import SmtpConfigurationFactory

    SmtpConfigurationFactory(name="Zweitserver", from_email="zwei@calserver.example")
    response = english(request.getfixturevalue(role)).get(NEW)
    text = response.content.decode()
    assert response.status_code == 200
    assert f'<option value="{configuration.pk}" selected>Hauptserver</option>' in text
    assert 'value="labor@calserver.example"' in text
    assert "compose/compose.js" in text
    assert f'data-recipient-tokens="{reverse("inventory:recipient_search")}"' in text


def test_compose_nav_entry_only_for_composers(client_for, power_user, viewer):
    outbox = reverse("mailbox:list")
    power_page = client_for(power_user).get(outbox).content.decode()
    viewer_page = client_for(viewer).get(outbox).content.decode()
    assert f'href="{NEW}"' in power_page
    assert f'href="{NEW}"' not in viewer_page


def test_draft_of_another_user_is_404(client_for, admin, power_user, configuration):
    draft = Draft.objects.create(owner=power_user, subject="Privat")
    client = client_for(admin)
    urls = [
        reverse("compose:draft", args=[draft.pk]),
        reverse("compose:preview", args=[draft.pk]),
        reverse("compose:body", args=[draft.pk]),
    ]
    statuses = [client.get(url).status_code for url in urls]
    statuses.append(client.post(reverse("compose:send", args=[draft.pk])).status_code)
    statuses.append(client.post(reverse("compose:delete", args=[draft.pk])).status_code)
    assert statuses == [404] * 5
    assert "Privat" not in client.get(reverse("compose:drafts")).content.decode()
    assert Draft.objects.filter(pk=draft.pk).exists()
    assert OutboxMessage.objects.count() == 0


# --- validation: every message next to its field, nothing lost ------------------------------


def _content(attachment):
    with attachment.file.open("rb") as handle:
        return handle.read()


def _errors(response, field):
    return [str(e) for e in response.context["form"].errors.get(field, [])]


def test_preview_invalid_address_message_and_draft_keeps_it(english, power_user, configuration):
    response = english(power_user).post(
        NEW, form_data(configuration, to="kein-at-zeichen, ok@example.com")
    )
    assert response.status_code == 400
    assert _errors(response, "to") == ["“kein-at-zeichen” is not a valid e-mail address."]
    draft = Draft.objects.get(owner=power_user)
    assert draft.to == ["kein-at-zeichen", "ok@example.com"]
    assert draft.subject == "Ihr Zertifikat"
    assert 'value="kein-at-zeichen, ok@example.com"' in response.content.decode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Hallo\r\nBcc: opfer@example.com"),
        ("from_name", "Labor\nBcc: opfer@example.com"),
        ("to", "a@example.com\r\nBcc: opfer@example.com"),
    ],
)
def test_preview_header_injection_refused(english, power_user, configuration, field, value):
    response = english(power_user).post(
        NEW, form_data(configuration, **({"to": "a@example.com"} | {field: value}))
    )
    assert response.status_code == 400
    assert _errors(response, field) == [
        "Line breaks are not allowed here (they could inject mail headers)."
    ]
    assert OutboxMessage.objects.count() == 0


def test_preview_missing_subject_and_recipient(english, power_user, configuration):
    response = english(power_user).post(NEW, form_data(configuration, subject="  "))
    assert (_errors(response, "subject"), _errors(response, "to")) == (
        ["Enter a subject."],
        ["Enter at least one recipient."],
    )


def test_preview_invalid_from_address(english, power_user, configuration):
    response = english(power_user).post(
        NEW, form_data(configuration, to="a@example.com", from_email="labor@")
    )
    assert _errors(response, "from_email") == ["“labor@” is not a valid e-mail address."]


def test_preview_unavailable_recipient_reference(english, power_user, configuration):
    response = english(power_user).post(NEW, form_data(configuration, to="customer:999999"))
    assert _errors(response, "to") == [
        "The recipient customer:999999 does not exist or is not available to you."
    ]


def test_preview_planned_time_in_the_past_refused_and_kept(english, power_user, configuration):
    past = timezone.localtime() - datetime.timedelta(hours=1)
    typed = past.strftime("%Y-%m-%dT%H:%M")
    response = english(power_user).post(
        NEW, form_data(configuration, to="a@example.com", scheduled_at=typed)
    )
    assert _errors(response, "scheduled_at") == [
        "The planned time is in the past. Choose a later time or leave it empty to send now."
    ]
    draft = Draft.objects.get(owner=power_user)
    assert timezone.localtime(draft.scheduled_at).strftime("%Y-%m-%dT%H:%M") == typed
    assert f'value="{typed}"' in response.content.decode()


def test_too_large_file_refused_other_file_kept(english, power_user, configuration, settings):
    settings.CALMAIL_ATTACHMENT_MAX_BYTES = 1_000_000
    data = form_data(configuration, to="a@example.com")
    data["new_files"] = [upload("gross.pdf", b"%PDF" + b"0" * 1_500_000), upload("klein.pdf")]
    response = english(power_user).post(NEW, data)
    assert response.status_code == 400
    assert _errors(response, "new_files") == [
        "gross.pdf is 1.5 MB; at most 1 MB are allowed per file."
    ]
    draft = Draft.objects.get(owner=power_user)
    assert [(a.filename, a.size) for a in draft.attachments.all()] == [("klein.pdf", 19)]
    # The kept file is listed on the redisplayed form, with a remove checkbox.
    assert "klein.pdf (19\xa0bytes)" in response.content.decode()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("tool.exe", b"MZ\x90\x00", "tool.exe looks like a program or script"),
        ("install.sh", b"echo hi", "install.sh looks like a program or script"),
        ("rechnung.pdf", b"MZ\x90\x00rest", "rechnung.pdf contains a program or script"),
        ("notes.txt", b"\x7fELF\x02\x01", "notes.txt contains a program or script"),
    ],
)
def test_dangerous_file_refused_with_clear_message(
    english, power_user, configuration, name, content, message
):
    data = form_data(configuration, to="a@example.com", action="save")
    data["new_files"] = [upload(name, content, "application/octet-stream")]
    response = english(power_user).post(NEW, data)
    assert response.status_code == 400
    [error] = _errors(response, "new_files")
    assert error.startswith(message)
    assert DraftAttachment.objects.count() == 0
    assert Draft.objects.get(owner=power_user).to == ["a@example.com"]


def test_too_many_files_refused(english, power_user, configuration, settings):
    settings.CALMAIL_COMPOSE_MAX_FILES = 2
    data = form_data(configuration, to="a@example.com", action="save")
    data["new_files"] = [upload("a.pdf"), upload("b.pdf"), upload("c.pdf")]
    response = english(power_user).post(NEW, data)
    assert _errors(response, "new_files") == [
        "c.pdf was not attached: at most 2 files are allowed."
    ]
    assert sorted(DraftAttachment.objects.values_list("filename", flat=True)) == ["a.pdf", "b.pdf"]


# --- drafts --------------------------------------------------------------------------------


def test_draft_round_trip_keeps_everything_and_attachments(
    english, power_user, configuration, customer
):
    client = english(power_user)
    data = form_data(
        configuration,
        to=f"customer:{customer.pk}, x@example.com",
        cc="cc@example.com",
        action="save",
    )
    data["new_files"] = [upload("Zertifikat.pdf")]
    response = client.post(NEW, data)
    draft = Draft.objects.get(owner=power_user)
    assert response["Location"] == reverse("compose:draft", args=[draft.pk])

    page = client.get(response["Location"]).content.decode()
    assert f'value="customer:{customer.pk}, x@example.com"' in page
    assert "1001 · Muster GmbH" in page  # the chip's label, for the widget
    assert 'value="cc@example.com"' in page
    assert "Zertifikat.pdf (19\xa0bytes)" in page
    assert [_content(a) for a in draft.attachments.all()] == [b"%PDF-1.7 Zertifikat"]
    listed = client.get(reverse("compose:drafts")).content.decode()
    assert reverse("compose:draft", args=[draft.pk]) in listed

    # Reopened and sent: the attachment from the draft goes with the mail.
    response = client.post(reverse("compose:send", args=[draft.pk]))
    mails = OutboxMessage.objects.order_by("pk")
    assert [m.to for m in mails] == [["einkauf@muster.example"], ["x@example.com"]]
    assert [[a.filename for a in m.attachments.all()] for m in mails] == [["Zertifikat.pdf"]] * 2
    assert Draft.objects.count() == 0


def test_draft_body_sanitised_when_stored(client_for, power_user, configuration):
    body = '<p>Hallo <b>Welt</b></p><script>alert(1)</script><img src="https://t.example/p.gif">'
    client_for(power_user).post(NEW, form_data(configuration, action="save", body_html=body))
    assert Draft.objects.get().body_html == "<p>Hallo <b>Welt</b></p><img>"


def test_draft_list_queries_do_not_grow(client_for, power_user):
    client = client_for(power_user)
    counts = []
    for total in (1, 3):
        while Draft.objects.count() < total:
            draft = Draft.objects.create(
                owner=power_user, subject=f"Entwurf-{Draft.objects.count()}"
            )
            draft_add_attachment(draft=draft, filename="a.pdf", content=b"%PDF")
        with CaptureQueriesContext(connection) as captured:
            response = client.get(reverse("compose:drafts"))
        assert response.content.decode().count("Entwurf-") == total
        counts.append(len(captured))
    assert counts[0] == counts[1]


def test_draft_remove_attachment(english, power_user, configuration):
    client = english(power_user)
    data = form_data(configuration, action="save")
    data["new_files"] = [upload("a.pdf"), upload("b.pdf")]
    client.post(NEW, data)
    draft = Draft.objects.get()
    first = draft.attachments.get(filename="a.pdf")
    client.post(
        reverse("compose:draft", args=[draft.pk]),
        form_data(configuration, action="save", remove_attachments=[str(first.pk)]),
    )
    assert list(draft.attachments.values_list("filename", flat=True)) == ["b.pdf"]


def test_draft_delete(client_for, power_user):
    draft = Draft.objects.create(owner=power_user, subject="Weg")
    response = client_for(power_user).post(reverse("compose:delete", args=[draft.pk]))
    assert response["Location"] == reverse("compose:drafts")
    assert Draft.objects.count() == 0


# --- preview and send ----------------------------------------------------------------------


def test_preview_shows_each_mail_with_list_expansion_and_attachments(
    english, power_user, configuration, customer, distribution_list
):
    client = english(power_user)
    data = form_data(configuration, to=f"customer:{customer.pk}, list:{distribution_list.pk}")
    data["new_files"] = [upload("Zertifikat.pdf")]
    response = client.post(NEW, data)
    draft = Draft.objects.get()
    assert response["Location"] == reverse("compose:preview", args=[draft.pk])

    page = client.get(response["Location"]).content.decode()
    assert "3 mails will be created" in page
    assert "Muster GmbH &lt;einkauf@muster.example&gt;" in page
    assert "Anna Berg &lt;anna@example.com&gt;" in page
    assert page.count("via Labor-Team") == 2
    assert "Zertifikat.pdf (19\xa0bytes)" in page
    assert reverse("compose:body", args=[draft.pk]) in page
    assert OutboxMessage.objects.count() == 0


def test_preview_body_frame_is_sanitised_and_locked_down(client_for, power_user):
    draft = Draft.objects.create(
        owner=power_user, subject="S", body_html='<p onclick="x()">Hallo</p><script>bad()</script>'
    )
    response = client_for(power_user).get(reverse("compose:body", args=[draft.pk]))
    text = response.content.decode()
    assert "<p>Hallo</p>" in text
    assert ("script" in text, "onclick" in text) == (False, False)
    assert response["Content-Security-Policy"].startswith("default-src 'none'")


def test_send_creates_rows_and_lands_on_filtered_outbox(
    english, power_user, configuration, customer, distribution_list, team
):
    client = english(power_user)
    other = OutboxMessage.objects.create(
        subject="Fremd", to=["z@example.com"], smtp_configuration=configuration, source="compose"
    )
    client.post(
        NEW,
        form_data(
            configuration,
            to=f"customer:{customer.pk}, list:{distribution_list.pk}",
            bcc="archiv@example.com",
        ),
    )
    draft = Draft.objects.get()
    response = client.post(reverse("compose:send", args=[draft.pk]))

    rows = OutboxMessage.objects.exclude(pk=other.pk).order_by("pk")
    assert [(r.to, r.bcc, r.address_type) for r in rows] == [
        (["einkauf@muster.example"], ["archiv@example.com"], "customer"),
        (["anna@example.com"], ["archiv@example.com"], "distribution"),
        (["extern@partner.example"], ["archiv@example.com"], "distribution"),
    ]
    assert {(r.source, r.created_by_id, r.owner_group_id, r.status) for r in rows} == {
        ("compose", power_user.pk, team.pk, "queued")
    }
    batch = rows[0].parameters["compose_batch"]
    assert response["Location"] == f"{reverse('mailbox:list')}?source=compose&parameters={batch}"
    outbox = client.get(response["Location"]).content.decode()
    for address in ("einkauf@muster.example", "anna@example.com", "extern@partner.example"):
        assert address in outbox
    assert "Fremd" not in outbox
    assert Draft.objects.count() == 0


def test_send_one_mail_to_all_planned(english, power_user, configuration, customer):
    client = english(power_user)
    later = timezone.localtime() + datetime.timedelta(days=1)
    client.post(
        NEW,
        form_data(
            configuration,
            to=f"customer:{customer.pk}, b@example.com",
            send_mode="all",
            scheduled_at=later.strftime("%Y-%m-%dT%H:%M"),
        ),
    )
    client.post(reverse("compose:send", args=[Draft.objects.get().pk]))
    [row] = OutboxMessage.objects.all()
    assert row.to == ["einkauf@muster.example", "b@example.com"]
    assert row.status == "scheduled"
    assert timezone.localtime(row.scheduled_at).strftime("%Y-%m-%d %H:%M") == later.strftime(
        "%Y-%m-%d %H:%M"
    )


def test_send_refused_when_time_passed_since_preview(english, power_user, configuration):
    draft = Draft.objects.create(
        owner=power_user,
        smtp_configuration=configuration,
        to=["a@example.com"],
        subject="S",
        scheduled_at=timezone.now() - datetime.timedelta(minutes=5),
    )
    response = english(power_user).post(reverse("compose:send", args=[draft.pk]))
    assert response.status_code == 400
    assert _errors(response, "scheduled_at") == [
        "The planned time is in the past. Choose a later time or leave it empty to send now."
    ]
    assert OutboxMessage.objects.count() == 0


def test_owner_group_chosen_when_user_has_several_teams(english, power_user, configuration, team):
    from django.contrib.auth.models import Group

    second = Group.objects.create(name="Team Süd")
    power_user.groups.add(second)
    client = english(power_user)
    response = client.post(NEW, form_data(configuration, to="a@example.com"))
    assert _errors(response, "owner_group") == ["Choose the group the mails belong to."]
    draft = Draft.objects.get()
    client.post(
        reverse("compose:draft", args=[draft.pk]),
        form_data(configuration, to="a@example.com", owner_group=second.pk),
    )
    client.post(reverse("compose:send", args=[draft.pk]))
    assert list(OutboxMessage.objects.values_list("owner_group__name", flat=True)) == ["Team Süd"]


# --- templates -----------------------------------------------------------------------------


def test_template_fills_in_subject_body_and_report(english, power_user, configuration, customer):
    template = MailTemplateFactory(
        name="Erinnerung",
        add_attachment="report",
        export_type="csv",
        texts={"de": {"subject": "Fällig für {{ recipient.name }}", "body_html": "<p>Liste</p>"}},
    )
    template.empty_attachment_allowed = True
    template.save()
    client = english(power_user)
    response = client.post(
        NEW,
        form_data(
            configuration,
            to=f"customer:{customer.pk}",
            subject="",
            template=template.pk,
            action="template",
        ),
    )
    draft = Draft.objects.get()
    assert response["Location"] == reverse("compose:draft", args=[draft.pk])
    assert (draft.subject, draft.body_html, draft.template_id) == (
        "Fällig für Muster GmbH",
        "<p>Liste</p>",
        template.pk,
    )
    assert draft.from_email == "kalibrierlabor@calserver.example"
    assert [(a.exported, a.filename.endswith(".csv")) for a in draft.attachments.all()] == [
        (True, True)
    ]
    page = client.get(response["Location"]).content.decode()
    assert 'value="Fällig für Muster GmbH"' in page


def test_template_without_recipient_asks_for_one(english, power_user, configuration):
    template = MailTemplateFactory()
    response = english(power_user).post(
        NEW, form_data(configuration, template=template.pk, action="template")
    )
    assert _errors(response, "template_recipient") == [
        "Choose a recipient (or enter a To recipient) to fill the template for."
    ]


def test_viewer_cannot_send_a_draft(client_for, viewer):
    owner = UserFactory(username="jemand")
    draft = Draft.objects.create(owner=owner, subject="S", to=["a@example.com"])
    response = client_for(viewer).post(reverse("compose:send", args=[draft.pk]))
    assert response.status_code == 403
    assert OutboxMessage.objects.count() == 0


def test_preview_without_any_smtp_configuration(english, power_user):
    data = {"to": "a@example.com", "subject": "S", "send_mode": "per_recipient"}
    response = english(power_user).post(NEW, data | {"action": "preview"})
    assert _errors(response, "smtp_configuration") == [
        "There is no SMTP configuration to send through."
    ]
    assert Draft.objects.get().to == ["a@example.com"]


def test_template_rendered_for_chosen_recipient(english, power_user, configuration, customer):
    template = MailTemplateFactory(
        add_attachment="none",
        texts={"de": {"subject": "Hallo {{ recipient.name }}", "body_html": "<p>x</p>"}},
    )
    english(power_user).post(
        NEW,
        form_data(
            configuration,
            to="a@example.com",
            template=template.pk,
            template_recipient=f"customer:{customer.pk}",
            action="template",
        ),
    )
    draft = Draft.objects.get()
    assert (draft.subject, draft.attachments.count()) == ("Hallo Muster GmbH", 0)
