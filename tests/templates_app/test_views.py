import csv
import io

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape

from inventory.selectors import Scope, scope_labels
from templates_app import services
from templates_app.models import MailTemplate
from tests.factories import (
    CustomerFactory,
    DistributionListFactory,
    InstrumentFactory,
    MailTemplateFactory,
)
from tests.templates_app.conftest import due_in, english, page_text

OBJECT_URLS = ["update", "duplicate", "delete", "preview", "preview_body", "preview_attachment"]


def url_for(name, pk=None):
    if name in ("list", "create", "bulk"):
        return reverse(f"templates_app:{name}")
    return reverse(f"templates_app:{name}", args=[pk])


def form_data(**overrides):
    data = {
        "name": "Fällige Prüfmittel",
        "template_type": "inventory",
        "description": "Erinnerung",
        "add_attachment": "report",
        "due_filter": "due_overdue",
        "due_window_days": "30",
        "report": "instruments_due",
        "from_email": "labor@calserver.example",
        "from_name": "Kalibrierlabor",
        "export_type": "excel",
        "attachment_type": "file",
        "csv_separator": ";",
        "default_language": "de",
        "owner_group": "",
        "subject_de": "Fällig: {{ count }} Prüfmittel",
        "body_html_de": "<p>Guten Tag {{ recipient.name }}</p>",
        "body_text_de": "",
        "subject_en": "",
        "body_html_en": "",
        "body_text_en": "",
    }
    data.update(overrides)
    return data


def names(response) -> list[str]:
    return [row.record.name for row in response.context["table"].page.object_list]


@pytest.fixture
def customer(db):
    customer = CustomerFactory(number="1001", name="Muster GmbH", language="de")
    InstrumentFactory(inventory_number="INV-1", customer=customer, **due_in(-2))
    InstrumentFactory(inventory_number="INV-2", customer=customer, **due_in(5))
    return customer


# --- permissions ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["list", "create", *OBJECT_URLS])
def test_views_anonymous_redirected_to_login(client, name):
    template = MailTemplateFactory()

    response = client.get(url_for(name, template.pk))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["list", "create", *OBJECT_URLS])
def test_views_outsider_is_refused(client_for, outsider, name):
    template = MailTemplateFactory(name="Geheime Vorlage")

    response = client_for(outsider).get(url_for(name, template.pk))

    assert response.status_code == 403
    assert "Geheime Vorlage" not in page_text(response)


@pytest.mark.django_db
def test_views_outsider_cannot_bulk_delete(client_for, outsider):
    template = MailTemplateFactory()

    response = client_for(outsider).post(
        url_for("bulk"), {"action": "delete", "selection": [template.pk], "confirm": "1"}
    )

    assert response.status_code == 403
    assert MailTemplate.objects.filter(pk=template.pk).exists()


@pytest.mark.django_db
def test_views_viewer_reads_and_previews_only(client_for, viewer, customer):
    template = MailTemplateFactory(name="Sichtbar")
    client = client_for(viewer)

    listing = client.get(url_for("list"))
    preview = client.get(url_for("preview", template.pk), {"recipient": f"customer:{customer.pk}"})
    forbidden = {
        name: client.get(url_for(name, template.pk)).status_code
        for name in ("create", "update", "duplicate", "delete")
    }
    post = client.post(url_for("update", template.pk), form_data(name="Verändert"))

    assert names(listing) == ["Sichtbar"]
    assert url_for("update", template.pk) not in page_text(listing)
    assert url_for("preview", template.pk) in page_text(listing)
    assert preview.context["preview"].rendered.row_count == 2
    assert forbidden == {"create": 403, "update": 403, "duplicate": 403, "delete": 403}
    assert post.status_code == 403
    assert list(MailTemplate.objects.values_list("name", flat=True)) == ["Sichtbar"]


@pytest.mark.django_db
def test_views_power_user_manages_templates_of_their_group(client_for, teammate, team):
    own = MailTemplateFactory(name="Eigene", owner_group=team)
    shared = MailTemplateFactory(name="Gemeinsam")
    client = client_for(teammate)

    listing = client.get(url_for("list"))
    edit_own = client.post(
        url_for("update", own.pk), form_data(name="Eigene geändert", owner_group=team.pk)
    )
    edit_shared = client.get(url_for("update", shared.pk))
    delete = client.post(url_for("delete", own.pk))

    assert names(listing) == ["Eigene", "Gemeinsam"]
    assert url_for("update", own.pk) in page_text(listing)
    assert url_for("update", shared.pk) not in page_text(listing)
    assert edit_own.status_code == 302
    assert edit_shared.status_code == 403
    assert delete.status_code == 403
    assert sorted(MailTemplate.objects.values_list("name", flat=True)) == [
        "Eigene geändert",
        "Gemeinsam",
    ]


@pytest.mark.django_db
def test_views_power_user_creates_only_for_their_group(client_for, teammate, team, other_team):
    client = client_for(teammate)

    foreign = client.post(url_for("create"), form_data(owner_group=other_team.pk))
    none = client.post(url_for("create"), form_data(owner_group=""))
    own = client.post(url_for("create"), form_data(owner_group=team.pk))

    assert "owner_group" in foreign.context["form"].errors
    assert "owner_group" in none.context["form"].errors
    assert own.status_code == 302
    assert list(MailTemplate.objects.values_list("name", "owner_group")) == [
        ("Fällige Prüfmittel", team.pk)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("name", [name for name in OBJECT_URLS if name != "delete"])
def test_views_template_of_another_group_is_404(client_for, teammate, other_team, name):
    template = MailTemplateFactory(name="Fremd", owner_group=other_team)

    response = client_for(teammate).get(url_for(name, template.pk))

    assert response.status_code == 404
    assert "Fremd" not in page_text(response)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["list", "create", "update", "duplicate", "delete", "preview"])
def test_views_administrator_opens_every_page(client_for, admin, other_team, name):
    template = MailTemplateFactory(name="Erreichbar", owner_group=other_team)

    response = client_for(admin).get(url_for(name, template.pk))

    assert response.status_code == 200
    assert "Erreichbar" in page_text(response) or name == "create"


# --- list -----------------------------------------------------------------------------------


@pytest.fixture
def three_templates(db, team):
    MailTemplateFactory(
        name="Alpha",
        description="Monatlich",
        template_type="inventory",
        report="instruments_due",
        add_attachment="report",
        empty_attachment_allowed=True,
        due_filter="due",
        due_window_days=14,
        from_email="a@calserver.example",
        from_name="Labor A",
        export_type="excel",
        attachment_type="file",
    )
    MailTemplateFactory(
        name="Beta",
        description="Wöchentlich",
        template_type="location",
        report="instruments_by_location",
        add_attachment="none",
        due_filter="overdue",
        from_email="b@calserver.example",
        from_name="Labor B",
        export_type="pdf_html",
        attachment_type="link",
        owner_group=team,
    )
    MailTemplateFactory(
        name="Gamma",
        description="Support",
        template_type="support",
        report="",
        add_attachment="none",
        due_filter="all",
        from_email="",
        from_name="",
        export_type="csv",
        attachment_type="file",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"name": "alp"}, ["Alpha"]),
        ({"add_attachment": "report"}, ["Alpha"]),
        ({"template_type": "location"}, ["Beta"]),
        ({"description": "wöch"}, ["Beta"]),
        ({"empty_attachment_allowed": "yes"}, ["Alpha"]),
        ({"empty_attachment_allowed": "no"}, ["Beta", "Gamma"]),
        ({"due_filter": "overdue"}, ["Beta"]),
        ({"due_window_days_min": "20"}, ["Beta", "Gamma"]),
        ({"report": "instruments_by_location"}, ["Beta"]),
        ({"report": "none"}, ["Gamma"]),
        ({"from_email": "a@calserver"}, ["Alpha"]),
        ({"from_name": "labor b"}, ["Beta"]),
        ({"export_type": "csv"}, ["Gamma"]),
        ({"attachment_type": "link"}, ["Beta"]),
        ({"q": "Wöchentlich"}, ["Beta"]),
    ],
)
def test_list_filters_per_column(client_for, admin, three_templates, query, expected):
    response = client_for(admin).get(url_for("list"), query)

    assert names(response) == expected


@pytest.mark.django_db
def test_list_filter_by_owner_group(client_for, admin, three_templates, team):
    response = client_for(admin).get(url_for("list"), {"owner_group": team.pk})

    assert names(response) == ["Beta"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-name", ["Gamma", "Beta", "Alpha"]),
        ("template_type", ["Alpha", "Beta", "Gamma"]),
        ("-due_filter", ["Beta", "Alpha", "Gamma"]),
        ("export_type", ["Gamma", "Alpha", "Beta"]),
        # Alpha and Gamma tie; the tie goes by id, in the sort direction.
        ("-attachment_type", ["Beta", "Gamma", "Alpha"]),
        ("from_name", ["Gamma", "Alpha", "Beta"]),
        ("report", ["Gamma", "Beta", "Alpha"]),
    ],
)
def test_list_sorts_by_column(client_for, admin, three_templates, sort, expected):
    response = client_for(admin).get(url_for("list"), {"sort": sort})

    assert names(response) == expected


@pytest.mark.django_db
def test_list_shows_every_column(client_for, admin, three_templates):
    response = english(client_for(admin)).get(url_for("list"), {"name": "Alpha"})
    text = " ".join(page_text(response).split())

    for header in (
        "Name",
        "Add attachment",
        "Type",
        "Description",
        "Empty attachment allowed",
        "Filter",
        "Report name",
        "From",
        "From name",
        "Export type",
        "Attachment type",
        "Actions",
    ):
        assert f">{header}<" in text or f"> {header} <" in text, header
    assert "Instruments due for calibration" in text
    assert "due (14 days)" in text


@pytest.mark.django_db
def test_list_export_csv_and_xlsx(client_for, admin, three_templates):
    client = english(client_for(admin))

    csv_response = client.get(url_for("list"), {"_export": "csv"})
    xlsx_response = client.get(url_for("list"), {"_export": "xlsx"})
    rows = list(
        csv.reader(io.StringIO(b"".join(csv_response.streaming_content).decode("utf-8-sig")))
    )
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(xlsx_response.streaming_content))).active
    values = list(sheet.iter_rows(values_only=True))

    assert rows[0] == [
        "Name",
        "Add attachment",
        "Type",
        "Description",
        "Empty attachment allowed",
        "Filter",
        "Report name",
        "From",
        "From name",
        "Export type",
        "Attachment type",
        "Owner group",
    ]
    assert rows[1][:7] == [
        "Alpha",
        "report",
        "INVENTORY",
        "Monatlich",
        "yes",
        "due (14 days)",
        "Instruments due for calibration",
    ]
    assert [row[0] for row in values[1:]] == ["Alpha", "Beta", "Gamma"]


@pytest.mark.django_db
def test_list_query_count_does_not_grow_with_rows(client_for, admin, django_assert_num_queries):
    client = client_for(admin)
    MailTemplateFactory()
    client.get(url_for("list"))  # warm caches (content types, session)
    with CaptureQueriesContext(connection) as one_row:
        client.get(url_for("list"))
    MailTemplateFactory.create_batch(2)

    with django_assert_num_queries(len(one_row.captured_queries)):
        response = client.get(url_for("list"))

    assert len(response.context["table"].page.object_list) == 3


@pytest.mark.django_db
def test_list_query_count_for_a_power_user(client_for, teammate, team, django_assert_num_queries):
    client = client_for(teammate)
    MailTemplateFactory(owner_group=team)
    client.get(url_for("list"))
    with CaptureQueriesContext(connection) as one_row:
        client.get(url_for("list"))
    MailTemplateFactory.create_batch(2, owner_group=team)

    with django_assert_num_queries(len(one_row.captured_queries)):
        response = client.get(url_for("list"))

    assert len(response.context["table"].page.object_list) == 3


# --- delete ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_delete_page_refuses_a_template_in_use(client_for, admin, use_in_action):
    template = MailTemplateFactory(name="Benutzt")
    use_in_action(template, "Aktion “Monatsreport”")
    client = english(client_for(admin))

    page = client.get(url_for("delete", template.pk))
    post = client.post(url_for("delete", template.pk))

    main = page_text(page).split("<main")[1]
    assert "it is used by: Aktion “Monatsreport”" in main
    # Refused up front: no question "…delete? This cannot be undone.", no button.
    assert "This cannot be undone" not in main
    assert 'type="submit"' not in main
    assert post.status_code == 200
    assert "it is used by: Aktion “Monatsreport”" in page_text(post)
    assert MailTemplate.objects.filter(pk=template.pk).exists()


@pytest.mark.django_db
def test_delete_page_deletes_an_unused_template(client_for, admin):
    template = MailTemplateFactory(name="Frei")

    response = english(client_for(admin)).post(url_for("delete", template.pk), follow=True)

    assert "Frei deleted." in page_text(response)
    assert not MailTemplate.objects.exists()


@pytest.mark.django_db
def test_bulk_delete_leaves_out_templates_in_use(client_for, admin, use_in_action):
    used = MailTemplateFactory(name="Benutzt")
    free = MailTemplateFactory(name="Frei")
    use_in_action(used, "Aktion “Monatsreport”")
    client = english(client_for(admin))

    confirm = client.post(url_for("bulk"), {"action": "delete", "selection": [used.pk, free.pk]})
    done = client.post(
        url_for("bulk"),
        {"action": "delete", "selection": [used.pk, free.pk], "confirm": "1"},
        follow=True,
    )

    assert "it is used by: Aktion “Monatsreport”" in page_text(confirm)
    assert "1 template deleted." in page_text(done)
    assert "Benutzt was left out" in page_text(done)
    assert list(MailTemplate.objects.values_list("name", flat=True)) == ["Benutzt"]


# --- form -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_form_lists_placeholders_and_language_tabs(client_for, admin):
    response = client_for(admin).get(url_for("create"))
    text = page_text(response)

    assert "{{ recipient.name }}" in text
    assert "row.next_due_date" in text and "row.due_state" in text
    assert 'name="subject_de"' in text and 'name="body_html_en"' in text
    assert "templates_app/templates.js" in text
    assert "<script>" not in text.replace("<script src=", "")


@pytest.mark.django_db
def test_form_create_stores_template_and_redirects_to_preview(client_for, admin):
    response = client_for(admin).post(
        url_for("create"),
        form_data(subject_en="Due: {{ count }} instruments", body_html_en="<p>Hello</p>"),
    )

    template = MailTemplate.objects.get()
    assert response["Location"] == url_for("preview", template.pk)
    assert services.texts_of(template)["en"]["subject"] == "Due: {{ count }} instruments"


@pytest.mark.django_db
def test_form_shows_syntax_error_with_line_on_save(client_for, admin):
    response = english(client_for(admin)).post(
        url_for("create"),
        form_data(body_html_de="<p>Hallo</p>\n<p>{{ settings.SECRET_KEY }}</p>\n{% load log %}"),
    )

    assert response.status_code == 200
    assert response.context["form"].errors["body_html_de"] == [
        "Line 3: the tag {% load %} is not available in templates."
    ]
    assert not MailTemplate.objects.exists()


@pytest.mark.django_db
def test_form_shows_syntax_errors_with_the_other_field_errors(client_for, admin):
    response = english(client_for(admin)).post(
        url_for("create"),
        form_data(
            name="",
            subject_de="Fällig: {{ count|nope }}",
            body_html_de="<p>Hallo</p>\n{% if count %}",
        ),
    )

    errors = response.context["form"].errors
    assert errors["name"] == ["This field is required."]
    assert errors["subject_de"] == ["Line 1: the filter “nope” is not available in templates."]
    assert errors["body_html_de"] == ["Line 2: {% if %} is not closed: {% endif %} is missing."]
    assert "Line 2: {% if %} is not closed: {% endif %} is missing." in page_text(response)
    assert not MailTemplate.objects.exists()


@pytest.mark.django_db
def test_form_shows_syntax_errors_with_the_other_field_errors_in_german(client_for, admin):
    response = client_for(admin).post(
        url_for("create"),
        form_data(name="", body_html_de="<p>Hallo</p>\n{{ count|nope }}"),
    )

    errors = response.context["form"].errors
    assert errors["name"] == ["Dieses Feld ist zwingend erforderlich."]
    assert errors["body_html_de"] == ["Zeile 2: Der Filter „nope“ ist in Vorlagen nicht verfügbar."]
    assert not MailTemplate.objects.exists()


@pytest.mark.django_db
def test_form_refuses_an_over_wide_filter_on_save(client_for, admin):
    response = english(client_for(admin)).post(
        url_for("create"),
        form_data(body_html_de='<p>Hallo</p>\n<p>{{ recipient.name|ljust:"30000000" }}</p>'),
    )

    assert response.status_code == 200
    assert response.context["form"].errors["body_html_de"] == [
        "Line 2: the width 30000000 in “ljust” is larger than the allowed 200."
    ]
    assert "Line 2: the width 30000000 in “ljust” is larger than the allowed 200." in page_text(
        response
    )
    assert not MailTemplate.objects.exists()


@pytest.mark.django_db
def test_form_refuses_a_report_of_another_type(client_for, admin):
    response = english(client_for(admin)).post(
        url_for("create"), form_data(template_type="support")
    )

    assert response.context["form"].errors["report"] == [
        "The report “Instruments due for calibration” is not a report of the type SUPPORT."
    ]


@pytest.mark.django_db
def test_form_edit_shows_stored_texts(client_for, admin):
    template = MailTemplateFactory(
        texts={"de": {"subject": "Betreff {{ count }}", "body_html": "x"}}
    )

    response = client_for(admin).get(url_for("update", template.pk))

    assert response.context["form"]["subject_de"].value() == "Betreff {{ count }}"


@pytest.mark.django_db
def test_duplicate_view_copies_texts(client_for, admin):
    template = MailTemplateFactory(name="Vorlage")

    response = client_for(admin).post(
        url_for("duplicate", template.pk), {"name": "Vorlage 2", "owner_group": ""}
    )

    copy = MailTemplate.objects.get(name="Vorlage 2")
    assert response["Location"] == url_for("update", copy.pk)
    assert services.texts_of(copy) == services.texts_of(template)


# --- preview --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_preview_for_a_customer(client_for, admin, customer):
    template = MailTemplateFactory(name="Erinnerung")
    query = {"recipient": f"customer:{customer.pk}"}

    response = client_for(admin).get(url_for("preview", template.pk), query)
    text = page_text(response)
    rendered = response.context["preview"].rendered

    assert rendered.subject == "Fällige Kalibrierungen für Muster GmbH"
    assert rendered.row_count == 2
    assert "Fällige Kalibrierungen für Muster GmbH" in text
    assert (
        url_for("preview_attachment", template.pk) + f"?recipient=customer%3A{customer.pk}" in text
    )
    assert url_for("preview_body", template.pk) + f"?recipient=customer%3A{customer.pk}" in text


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["customer", "extern@example.com"])
def test_preview_says_what_the_recipients_report_covers(client_for, admin, customer, token):
    template = MailTemplateFactory(name="Erinnerung")
    recipient = f"customer:{customer.pk}" if token == "customer" else token
    scope = Scope.customer(customer.pk) if token == "customer" else Scope.none()

    response = client_for(admin).get(url_for("preview", template.pk), {"recipient": recipient})

    with translation.override("de"):
        covers = scope_labels([scope])[scope]
    assert f'data-testid="report-scope">{escape(covers)}</dd>' in page_text(response)


@pytest.mark.django_db
def test_preview_recipient_is_a_single_picker_showing_its_label(client_for, admin, customer):
    template = MailTemplateFactory(name="Erinnerung")
    query = {"recipient": f"customer:{customer.pk}"}

    response = client_for(admin).get(url_for("preview", template.pk), query)

    bound = response.context["preview"].form["recipient"]
    assert bound.field.widget.choices_for(bound.value())[0]["label"] == "1001 · Muster GmbH"
    text = response.content.decode()
    assert f'data-recipient-picker="{reverse("inventory:recipient_search")}"' in text
    assert "data-single" in text
    assert '<script src="/static/js/recipient-picker.js" defer></script>' in text
    assert "<script>" not in text.replace("<script src=", "")


@pytest.mark.django_db
def test_preview_attachment_is_the_file_as_sent(client_for, admin, customer):
    template = MailTemplateFactory()
    query = {"recipient": f"customer:{customer.pk}"}

    response = client_for(admin).get(url_for("preview_attachment", template.pk), query)
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active

    assert response["Content-Disposition"].startswith('attachment; filename="')
    assert response["Content-Disposition"].endswith('.xlsx"')
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["INV-1", "INV-2"]


@pytest.mark.django_db
def test_preview_body_is_sanitised_with_a_strict_policy(client_for, admin, customer):
    template = MailTemplateFactory(
        texts={
            "de": {
                "subject": "x",
                "body_html": '<p onclick="evil()">Hallo {{ recipient.name }}</p><img src="https://tracker.example/p.gif">',
            }
        }
    )

    response = client_for(admin).get(
        url_for("preview_body", template.pk), {"recipient": f"customer:{customer.pk}"}
    )
    text = page_text(response)

    assert "Hallo kalibrierung@kunde1001.example" in text or "Hallo Muster GmbH" in text
    assert "onclick" not in text and "tracker.example" not in text
    assert response["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.mark.django_db
def test_preview_language_choice_and_fallback(client_for, admin, customer):
    template = MailTemplateFactory(
        texts={
            "de": {"subject": "Deutsch", "body_html": "<p>de</p>"},
            "en": {"subject": "English", "body_html": "<p>en</p>"},
        }
    )
    only_german = MailTemplateFactory(texts={"de": {"subject": "Nur Deutsch", "body_html": "x"}})
    client = english(client_for(admin))

    in_english = client.get(
        url_for("preview", template.pk), {"recipient": f"customer:{customer.pk}", "language": "en"}
    )
    fallback = client.get(
        url_for("preview", only_german.pk),
        {"recipient": f"customer:{customer.pk}", "language": "en"},
    )

    assert in_english.context["preview"].rendered.subject == "English"
    assert fallback.context["preview"].rendered.subject == "Nur Deutsch"
    assert fallback.context["preview"].rendered.language_fallback is True
    assert "fallback" in page_text(fallback)


@pytest.mark.django_db
def test_preview_distribution_list_member(client_for, admin, customer):
    distribution_list = DistributionListFactory(
        customers=[customer], addresses=[("qs@calserver.example", "QS")]
    )
    template = MailTemplateFactory()

    response = client_for(admin).get(
        url_for("preview", template.pk), {"recipient": f"list:{distribution_list.pk}", "member": 1}
    )
    preview = response.context["preview"]

    assert [r.email for r in preview.recipients] == [
        f"kalibrierung@kunde{customer.number}.example",
        "qs@calserver.example",
    ]
    assert preview.recipient.email == "qs@calserver.example"
    assert 'name="member"' in page_text(response)


@pytest.mark.django_db
def test_preview_rejects_an_unknown_recipient(client_for, admin):
    template = MailTemplateFactory()

    response = english(client_for(admin)).get(
        url_for("preview", template.pk), {"recipient": "customer:999"}
    )

    assert response.context["preview"].rendered is None
    assert response.context["preview"].form.errors["recipient"] == [
        "The recipient customer:999 does not exist or is not available to you."
    ]


@pytest.mark.django_db
def test_preview_of_a_template_that_renders_too_much_shows_the_error(client_for, admin, customer):
    # Stored around the form (as before the cap, or through the admin): the render refuses it.
    # Messages of a render come in the mail's language (here English, as the test expects).
    template = MailTemplateFactory(
        default_language="en",
        texts={"en": {"subject": "Hello", "body_html": '{{ recipient.email|ljust:"30000000" }}'}},
    )
    query = {"recipient": f"customer:{customer.pk}"}
    client = english(client_for(admin))

    response = client.get(url_for("preview", template.pk), query)
    body = client.get(url_for("preview_body", template.pk), query)

    message = "Line 1: the width 30000000 in “ljust” is larger than the allowed 200."
    assert response.status_code == 200
    assert response.context["preview"].rendered is None
    assert response.context["preview"].error == message
    assert message in page_text(response)
    assert len(response.content) < 100_000
    assert body.status_code == 404
    assert len(body.content) < 100_000


@pytest.mark.django_db
def test_preview_of_a_subject_over_its_limit_shows_the_error(client_for, admin, customer, settings):
    settings.CALMAIL_TEMPLATE_MAX_SUBJECT_CHARS = 20
    template = MailTemplateFactory(
        default_language="en",
        texts={"en": {"subject": "Reminder for {{ recipient.name }}", "body_html": "x"}},
    )

    response = english(client_for(admin)).get(
        url_for("preview", template.pk), {"recipient": f"customer:{customer.pk}"}
    )

    message = "Line 1: the subject would be longer than the allowed 20 characters."
    assert response.context["preview"].rendered is None
    assert message in page_text(response)


@pytest.mark.django_db
def test_preview_empty_report_says_why_there_is_no_attachment(client_for, admin):
    empty = CustomerFactory()
    template = MailTemplateFactory()

    response = english(client_for(admin)).get(
        url_for("preview", template.pk), {"recipient": f"customer:{empty.pk}"}
    )
    attachment = english(client_for(admin)).get(
        url_for("preview_attachment", template.pk), {"recipient": f"customer:{empty.pk}"}
    )

    assert "The report is empty and the template attaches no empty report." in page_text(response)
    assert attachment.status_code == 404


# --- teams ----------------------------------------------------------------------------------

NO_TEAM = "You are not in any team yet — ask an administrator to add you to one."
EMPTY_OWNER_HELP = (
    "Empty: only administrators manage the template; everyone with access can still see and use it."
)


@pytest.mark.django_db
def test_form_preselects_the_single_team(client_for, teammate, team):
    response = english(client_for(teammate)).get(url_for("create"))

    assert response.context["form"]["owner_group"].value() == team.pk
    assert f'<option value="{team.pk}" selected>Labor Nord</option>' in page_text(response)
    assert 'data-testid="team-alert"' not in page_text(response)


@pytest.mark.django_db
def test_form_administrator_with_one_team_gets_it_preselected(client_for, admin, team):
    admin.groups.add(team)

    response = english(client_for(admin)).get(url_for("create"))

    assert response.context["form"]["owner_group"].value() == team.pk
    assert EMPTY_OWNER_HELP in page_text(response)


@pytest.mark.django_db
def test_form_administrator_may_leave_the_owner_empty(client_for, admin, team):
    client = english(client_for(admin))

    page = client.get(url_for("create"))
    response = client.post(url_for("create"), form_data(owner_group=""))

    assert EMPTY_OWNER_HELP in page_text(page)
    assert reverse("accounts:team_create") not in page_text(page)
    assert response.status_code == 302
    assert list(MailTemplate.objects.values_list("name", "owner_group")) == [
        ("Fällige Prüfmittel", None)
    ]


@pytest.mark.django_db
def test_form_administrator_without_any_team_is_shown_where_to_create_one(client_for, admin):
    response = english(client_for(admin)).get(url_for("create"))

    assert (
        f'{EMPTY_OWNER_HELP} There is no team yet. <a href="{reverse("accounts:team_create")}">'
        "Create a team</a>"
    ) in page_text(response)


@pytest.mark.django_db
def test_form_power_user_in_no_team_sees_why_and_keeps_the_input(client_for, power_user):
    client = english(client_for(power_user))

    page = client.get(url_for("create"))
    response = client.post(url_for("create"), form_data(name="Mein Entwurf", owner_group=""))

    html = page_text(response)
    assert NO_TEAM in page_text(page)
    assert response.status_code == 200
    assert response.context["form"].errors == {"owner_group": [NO_TEAM]}
    assert html.index('data-testid="team-alert"') < html.index('name="name"')
    assert 'value="Mein Entwurf"' in html
    assert "Fällig: {{ count }} Prüfmittel" in html
    assert MailTemplate.objects.exists() is False


@pytest.mark.django_db
def test_duplicate_of_shared_template_preselects_the_single_team(client_for, teammate, team):
    shared = MailTemplateFactory(name="Gemeinsam")

    response = english(client_for(teammate)).get(url_for("duplicate", shared.pk))

    assert response.context["form"]["owner_group"].value() == team.pk
    assert f'<option value="{team.pk}" selected>Labor Nord</option>' in page_text(response)


@pytest.mark.django_db
def test_duplicate_by_power_user_in_no_team_sees_why(client_for, power_user):
    shared = MailTemplateFactory(name="Gemeinsam")
    client = english(client_for(power_user))

    page = client.get(url_for("duplicate", shared.pk))
    response = client.post(url_for("duplicate", shared.pk), {"name": "Meine Kopie"})

    assert 'data-testid="team-alert"' in page_text(page)
    assert NO_TEAM in page_text(page)
    assert response.context["form"].errors == {"owner_group": [NO_TEAM]}
    assert 'value="Meine Kopie"' in page_text(response)
    assert list(MailTemplate.objects.values_list("name", flat=True)) == ["Gemeinsam"]


@pytest.mark.django_db
def test_duplicate_by_administrator_keeps_the_source_owner(client_for, admin, team, other_team):
    admin.groups.add(team)
    template = MailTemplateFactory(name="Süd", owner_group=other_team)

    response = english(client_for(admin)).get(url_for("duplicate", template.pk))

    assert response.context["form"]["owner_group"].value() == other_team.pk
    assert EMPTY_OWNER_HELP in page_text(response)
