"""Compose: the sender follows a change of SMTP configuration (issue 18, point 10); a
report a template attached gives the mail its export type, and a mail without
attachments has no attachment type (point 9)."""

import pytest
from django.urls import reverse

from compose import services
from compose.models import Draft
from inventory.recipients import resolve_selection
from mailbox.models import OutboxMessage
from tests.compose.test_views import NEW, form_data
from tests.factories import MailTemplateFactory, SmtpConfigurationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(db):
    return SmtpConfigurationFactory(name="Service", from_email="service@calserver.example")


def test_new_mail_sender_follows_the_changed_configuration(client_for, power_user, service):
    # The new form showed the default configuration and its sender.
    SmtpConfigurationFactory(
        name="Hauptserver", is_default=True, from_email="labor@calserver.example"
    )
    client_for(power_user).post(
        NEW, form_data(service, from_email="labor@calserver.example", action="save")
    )

    assert Draft.objects.get().from_email == "service@calserver.example"


def test_draft_sender_follows_the_changed_configuration(
    client_for, power_user, configuration, service
):
    client = client_for(power_user)
    client.post(NEW, form_data(configuration, from_email="labor@calserver.example", action="save"))
    draft = Draft.objects.get()

    response = client.post(
        reverse("compose:draft", args=[draft.pk]),
        form_data(service, from_email="LABOR@calserver.example", action="save", subject=""),
    )

    draft.refresh_from_db()
    assert (draft.smtp_configuration, draft.from_email) == (service, "service@calserver.example")
    page = client.get(response["Location"]).content.decode()
    assert 'value="service@calserver.example"' in page


def test_typed_sender_stays_when_the_configuration_changes(
    client_for, power_user, configuration, service
):
    client = client_for(power_user)
    client.post(NEW, form_data(configuration, from_email="paula@calserver.example", action="save"))
    draft = Draft.objects.get()

    client.post(
        reverse("compose:draft", args=[draft.pk]),
        form_data(service, from_email="paula@calserver.example", action="save"),
    )

    draft.refresh_from_db()
    assert (draft.smtp_configuration, draft.from_email) == (service, "paula@calserver.example")


def test_refused_form_shows_the_followed_sender(client_for, power_user, configuration, service):
    client = client_for(power_user)
    client.post(NEW, form_data(configuration, from_email="labor@calserver.example", action="save"))
    draft = Draft.objects.get()

    # Preview checks strictly: no recipient, so the form comes back.
    response = client.post(
        reverse("compose:draft", args=[draft.pk]),
        form_data(service, from_email="labor@calserver.example"),
    )

    assert response.status_code == 400
    assert 'value="service@calserver.example"' in response.content.decode()


def _template_mail(power_user, configuration, customer, export_type):
    template = MailTemplateFactory(
        name="Erinnerung",
        add_attachment="report",
        export_type=export_type,
        texts={"de": {"subject": "Fällig", "body_html": "<p>Liste</p>"}},
    )
    template.empty_attachment_allowed = True
    template.save()
    draft = services.draft_save(
        owner=power_user,
        draft=None,
        values={"to": [f"customer:{customer.pk}"], "smtp_configuration": configuration},
    )
    [recipient] = resolve_selection([f"customer:{customer.pk}"]).recipients
    services.draft_apply_template(draft=draft, template=template, recipient=recipient)
    _batch, [mail] = services.draft_send(draft=draft, user=power_user)
    return mail


@pytest.mark.parametrize("export_type", ["excel", "csv"])
def test_mail_with_the_templates_report_has_its_export_type(
    power_user, configuration, customer, export_type
):
    mail = _template_mail(power_user, configuration, customer, export_type)

    assert (mail.export_type, mail.exported_attachments, mail.attachment_count) == (
        export_type,
        1,
        1,
    )


def test_mail_whose_report_was_removed_has_no_export_type(power_user, configuration, customer):
    template = MailTemplateFactory(
        name="Erinnerung",
        add_attachment="report",
        export_type="excel",
        texts={"de": {"subject": "Fällig", "body_html": "<p>Liste</p>"}},
    )
    template.empty_attachment_allowed = True
    template.save()
    draft = services.draft_save(
        owner=power_user,
        draft=None,
        values={"to": [f"customer:{customer.pk}"], "smtp_configuration": configuration},
    )
    [recipient] = resolve_selection([f"customer:{customer.pk}"]).recipients
    services.draft_apply_template(draft=draft, template=template, recipient=recipient)
    services.draft_remove_attachments(draft=draft, ids=[a.pk for a in draft.attachments.all()])
    _batch, [mail] = services.draft_send(draft=draft, user=power_user)

    assert (mail.export_type, mail.attachment_count) == ("", 0)


def _cells(response, mail: OutboxMessage) -> tuple[str, str]:
    [row] = [row for row in response.context["table"].rows if row.record.pk == mail.pk]
    return str(row.get_cell("export_type")), str(row.get_cell("attachment_type"))


@pytest.mark.parametrize(
    ("language", "excel", "none", "file"),
    [("en", "excel", "none", "file"), ("de", "excel", "keine", "Datei")],
)
def test_outbox_shows_export_and_attachment_type_as_sent(
    client_for, admin, power_user, configuration, customer, language, excel, none, file
):
    report_mail = _template_mail(power_user, configuration, customer, "excel")
    draft = services.draft_save(
        owner=power_user,
        draft=None,
        values={"to": ["lab@example.org"], "subject": "Hallo", "smtp_configuration": configuration},
    )
    _batch, [plain] = services.draft_send(draft=draft, user=power_user)
    client = client_for(admin)
    client.post("/i18n/setlang/", {"language": language})

    response = client.get(reverse("mailbox:list"))
    filtered = client.get(reverse("mailbox:list"), {"attachment_type": "file"})

    assert _cells(response, report_mail) == (excel, file)
    assert _cells(response, plain) == (none, "—")
    assert [row.record for row in filtered.context["table"].rows] == [report_mail]
