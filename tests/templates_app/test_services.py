import io

import openpyxl
import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from inventory.recipients import resolve_selection
from inventory.services import profile_set_language
from templates_app import services
from templates_app.models import MailTemplate
from templates_app.rendering import TemplateRenderError
from tests.factories import (
    CustomerFactory,
    DistributionListFactory,
    InstrumentFactory,
    MailTemplateFactory,
    UserFactory,
)
from tests.templates_app.conftest import TODAY, due_in

VALUES = {
    "name": "Erinnerung fällige Prüfmittel",
    "template_type": "inventory",
    "description": "Monatliche Erinnerung",
    "add_attachment": "report",
    "empty_attachment_allowed": False,
    "due_filter": "due_overdue",
    "due_window_days": 30,
    "report": "instruments_due",
    "from_email": "labor@calserver.example",
    "from_name": "Kalibrierlabor",
    "export_type": "excel",
    "attachment_type": "file",
    "csv_separator": ";",
    "default_language": "de",
    "owner_group": None,
}
TEXTS = {
    "de": {
        "subject": "Fällige Prüfmittel für {{ customer.name }}",
        "body_html": "<p>Guten Tag {{ recipient.name }},</p><p>{{ count }} Prüfmittel sind fällig.</p>",
        "body_text": "",
    },
    "en": {
        "subject": "Instruments due for {{ customer.name }}",
        "body_html": "<p>Hello {{ recipient.name }},</p>",
        "body_text": "Hello {{ recipient.name }}, {{ count }} instruments are due.",
    },
}


def recipient(token: str):
    return resolve_selection([token]).recipients[0]


# --- create and update ----------------------------------------------------------------------


@pytest.mark.django_db
def test_create_stores_template_and_texts():
    template = services.mail_template_create(values=VALUES, translations=TEXTS)

    assert MailTemplate.objects.get().name == "Erinnerung fällige Prüfmittel"
    assert services.texts_of(template) == TEXTS


@pytest.mark.django_db
def test_create_refuses_syntax_error_with_line():
    texts = {"de": {**TEXTS["de"], "body_html": "<p>Hallo</p>\n{% if count %}\n<p>x</p>"}}

    with pytest.raises(ValidationError) as caught:
        services.mail_template_create(values=VALUES, translations=texts)

    (message,) = caught.value.message_dict["body_html_de"]
    assert message.startswith("Line 2: ")
    assert MailTemplate.objects.count() == 0


@pytest.mark.django_db
def test_create_refuses_settings_load_and_debug():
    texts = {
        "de": {
            "subject": "{{ settings.SECRET_KEY }}",
            "body_html": "{% load static %}",
            "body_text": "x\n{% debug %}",
        }
    }

    with pytest.raises(ValidationError) as caught:
        services.mail_template_create(values=VALUES, translations=texts)

    assert caught.value.message_dict == {
        "subject_de": ["Line 1: “settings” is not a placeholder of this template type."],
        "body_html_de": ["Line 1: the tag {% load %} is not available in templates."],
        "body_text_de": ["Line 2: the tag {% debug %} is not available in templates."],
    }


@pytest.mark.django_db
def test_create_needs_the_default_language_and_a_fitting_report():
    values = {**VALUES, "template_type": "support", "default_language": "en"}

    with pytest.raises(ValidationError) as caught:
        services.mail_template_create(values=values, translations={"de": TEXTS["de"]})

    errors = caught.value.message_dict
    assert errors["subject_en"] == ["The default language needs a subject and a body."]
    assert errors["report"] == [
        "The report “Instruments due for calibration” is not a report of the type SUPPORT."
    ]


@pytest.mark.django_db
def test_create_attachment_needs_a_report():
    with pytest.raises(ValidationError) as caught:
        services.mail_template_create(values={**VALUES, "report": ""}, translations=TEXTS)

    assert caught.value.message_dict == {"report": ["Choose the report to attach."]}


@pytest.mark.django_db
def test_update_removes_an_emptied_language_and_reports_changes():
    template = services.mail_template_create(values=VALUES, translations=TEXTS)

    changed = services.mail_template_update(
        template=template,
        values={**VALUES, "due_window_days": 14},
        translations={"de": TEXTS["de"], "en": {"subject": "", "body_html": "", "body_text": ""}},
    )

    assert "due_window_days" in changed and "subject_en" in changed
    assert list(template.translations.values_list("language", flat=True)) == ["de"]
    assert MailTemplate.objects.get().due_window_days == 14


@pytest.mark.django_db
def test_duplicate_copies_settings_and_texts():
    template = services.mail_template_create(values=VALUES, translations=TEXTS)

    copy = services.mail_template_duplicate(template=template)

    assert copy.name == "Erinnerung fällige Prüfmittel (copy)"
    assert copy.report == "instruments_due" and copy.due_filter == "due_overdue"
    assert services.texts_of(copy) == TEXTS


# --- delete ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_delete_refused_while_an_action_uses_the_template(use_in_action):
    template = MailTemplateFactory(name="Monatsreport")
    use_in_action(template, "Action “Monthly reminder”")

    with pytest.raises(ValidationError) as caught:
        services.mail_template_delete(template=template)

    assert caught.value.messages == [
        "Monatsreport is used by: Action “Monthly reminder”. Change those first, then delete the template."
    ]
    assert MailTemplate.objects.filter(pk=template.pk).exists()


@pytest.mark.django_db
def test_delete_unused_template_deletes_its_texts():
    template = MailTemplateFactory()

    services.mail_template_delete(template=template)

    assert MailTemplate.objects.count() == 0
    assert template.translations.model.objects.count() == 0


# --- render_for_recipient -------------------------------------------------------------------


@pytest.fixture
def customer(db):
    customer = CustomerFactory(
        number="1001", name="Muster <script>alert(1)</script> GmbH", language="en"
    )
    InstrumentFactory(inventory_number="INV-1", customer=customer, **due_in(-3))
    InstrumentFactory(inventory_number="INV-2", customer=customer, **due_in(10))
    InstrumentFactory(inventory_number="INV-3", customer=customer, **due_in(200))
    InstrumentFactory(inventory_number="OTHER", **due_in(1))
    return customer


@pytest.mark.django_db
def test_render_for_customer_builds_report_attachment_and_bodies(customer):
    template = services.mail_template_create(values=VALUES, translations=TEXTS)

    mail = services.render_for_recipient(
        template=template, recipient=recipient(f"customer:{customer.pk}"), today=TODAY
    )

    assert mail.language == "en" and mail.language_fallback is False
    assert mail.subject == "Instruments due for Muster <script>alert(1)</script> GmbH"
    assert "&lt;script&gt;" in mail.body_html and "<script>" not in mail.body_html
    assert mail.body_text == ("Hello Muster <script>alert(1)</script> GmbH, 2 instruments are due.")
    assert mail.row_count == 2
    assert (mail.from_email, mail.from_name) == ("labor@calserver.example", "Kalibrierlabor")
    (attachment,) = mail.attachments
    assert attachment.exported is True
    assert attachment.filename == "instruments-due-for-calibration-2025-03-03.xlsx"
    assert mail.export_type == "excel" and mail.attachment_type == "file"
    sheet = openpyxl.load_workbook(io.BytesIO(attachment.content)).active
    assert [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["INV-1", "INV-2"]
    assert mail.parameters == {
        "template": "Erinnerung fällige Prüfmittel",
        "language": "en",
        "filter": "due_overdue",
        "due_window_days": 30,
        "report": "instruments_due",
        "rows": 2,
        "scope": f"customer:{customer.pk}",
        "report_scope": "the customer's records",
    }


@pytest.mark.django_db
def test_render_falls_back_to_the_default_language(customer):
    template = services.mail_template_create(values=VALUES, translations={"de": TEXTS["de"]})

    mail = services.render_for_recipient(
        template=template, recipient=recipient(f"customer:{customer.pk}"), today=TODAY
    )

    assert (mail.language, mail.language_fallback) == ("de", True)
    assert mail.subject.startswith("Fällige Prüfmittel")
    # The text part is made from the HTML part when it is left empty.
    assert mail.body_text == (
        "Guten Tag Muster <script>alert(1)</script> GmbH,\n\n2 Prüfmittel sind fällig."
    )


@pytest.mark.django_db
def test_render_typed_address_gets_the_default_language(customer):
    template = services.mail_template_create(
        values={**VALUES, "default_language": "en"}, translations=TEXTS
    )

    mail = services.render_for_recipient(
        template=template, recipient=recipient("jemand@example.com"), today=TODAY
    )

    assert (mail.language, mail.language_fallback) == ("en", False)
    # A typed address belongs to no customer: no report unless the caller chooses a scope.
    assert mail.row_count == 0


@pytest.mark.django_db
def test_render_user_in_their_profile_language():
    user = UserFactory(username="techniker", first_name="Tom", last_name="Techniker")
    profile_set_language(user=user, language="en")
    InstrumentFactory(inventory_number="MINE", responsible=user, **due_in(5))
    InstrumentFactory(inventory_number="NOT-MINE", **due_in(5))
    template = services.mail_template_create(
        values=VALUES,
        translations={
            "de": TEXTS["de"],
            "en": {
                **TEXTS["en"],
                "body_text": "{{ user.name }}: {% for row in rows %}{{ row.inventory_number }}{% endfor %}",
            },
        },
    )

    mail = services.render_for_recipient(
        template=template, recipient=recipient(f"user:{user.pk}"), today=TODAY
    )

    assert mail.language == "en"
    assert mail.body_text == "Tom Techniker: MINE"


@pytest.mark.django_db
def test_render_empty_report_without_permission_has_no_attachment():
    empty = CustomerFactory(language="de")
    template = services.mail_template_create(values=VALUES, translations=TEXTS)

    mail = services.render_for_recipient(
        template=template, recipient=recipient(f"customer:{empty.pk}"), today=TODAY
    )

    assert mail.row_count == 0
    assert mail.attachments == [] and mail.export_type == ""
    assert mail.attachment_skipped == (
        "The report is empty and the template attaches no empty report."
    )


@pytest.mark.django_db
def test_render_empty_report_allowed_is_attached_as_csv():
    empty = CustomerFactory(language="en")
    template = services.mail_template_create(
        values={**VALUES, "empty_attachment_allowed": True, "export_type": "csv"},
        translations=TEXTS,
    )

    mail = services.render_for_recipient(
        template=template, recipient=recipient(f"customer:{empty.pk}"), today=TODAY
    )

    (attachment,) = mail.attachments
    assert attachment.filename == "instruments-due-for-calibration-2025-03-03.csv"
    assert attachment.content.decode("utf-8-sig").count("\r\n") == 1
    assert mail.attachment_skipped == ""


@pytest.mark.django_db
def test_render_link_type_fills_the_link_placeholder(customer):
    template = services.mail_template_create(
        values={**VALUES, "attachment_type": "link", "export_type": "pdf_html"},
        translations={
            "de": TEXTS["de"],
            "en": {**TEXTS["en"], "body_text": "Download: {{ link }}"},
        },
    )

    mail = services.render_for_recipient(
        template=template,
        recipient=recipient(f"customer:{customer.pk}"),
        today=TODAY,
        link_builder=lambda filename: f"https://calmail.example/d/{filename}",
    )

    assert mail.body_text == (
        "Download: https://calmail.example/d/instruments-due-for-calibration-2025-03-03.pdf"
    )
    assert mail.attachment_type == "link"
    assert mail.attachments[0].content.startswith(b"%PDF")


@pytest.mark.django_db
def test_render_without_attachment_still_lists_rows(customer):
    template = services.mail_template_create(
        values={**VALUES, "add_attachment": "none"},
        translations={
            "de": {
                "subject": "{{ count }} fällig",
                "body_html": "<ul>{% for row in rows %}<li>{{ row.inventory_number }} {{ row.next_due_date|date:'d.m.Y' }}</li>{% endfor %}</ul>",
                "body_text": "",
            }
        },
    )

    mail = services.render_for_recipient(
        template=template, recipient=recipient(f"customer:{customer.pk}"), today=TODAY
    )

    assert mail.attachments == [] and mail.attachment_skipped == ""
    assert mail.subject == "2 fällig"
    assert mail.body_text == "- INV-1 28.02.2025\n- INV-2 13.03.2025"


@pytest.mark.django_db
def test_render_distribution_list_member_with_own_scope(customer):
    member = CustomerFactory(language="de")
    InstrumentFactory(inventory_number="MEMBER-1", customer=member, **due_in(2))
    distribution_list = DistributionListFactory(customers=[member], addresses=["qs@example.com"])
    template = services.mail_template_create(values=VALUES, translations=TEXTS)
    members = resolve_selection([f"list:{distribution_list.pk}"]).recipients

    rows = [
        services.render_for_recipient(template=template, recipient=r, today=TODAY).row_count
        for r in members
    ]

    # The customer member gets its own records, the list's typed address no report.
    assert rows == [1, 0]


@pytest.mark.django_db
def test_render_refuses_a_report_that_is_no_longer_registered(customer):
    template = MailTemplateFactory()
    MailTemplate.objects.filter(pk=template.pk).update(report="gone")
    template.refresh_from_db()

    with pytest.raises(TemplateRenderError, match="not available"):
        services.render_for_recipient(
            template=template, recipient=recipient(f"customer:{customer.pk}"), today=TODAY
        )


@pytest.mark.django_db
def test_copies_are_numbered_in_the_readers_language():
    MailTemplateFactory(name="Erinnerung (Kopie)")
    with translation.override("de"):
        assert services.copy_name("Erinnerung") == "Erinnerung (Kopie 2)"
