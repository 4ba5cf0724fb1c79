import pytest

from templates_app.models import MailTemplateTranslation
from tests.factories import MailTemplateFactory
from tests.templates_app.conftest import english, page_text


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return english(client)


@pytest.mark.django_db
def test_admin_changelist_add_and_change_pages_open(superuser_client):
    template = MailTemplateFactory(name="Monatsreport")

    changelist = superuser_client.get("/admin/templates_app/mailtemplate/")
    add = superuser_client.get("/admin/templates_app/mailtemplate/add/")
    change = superuser_client.get(f"/admin/templates_app/mailtemplate/{template.pk}/change/")

    assert (changelist.status_code, add.status_code) == (200, 200)
    assert "Monatsreport" in page_text(changelist)
    assert "Fällige Kalibrierungen für {{ recipient.name }}" in page_text(change)


@pytest.mark.django_db
def test_admin_refuses_texts_the_sandbox_refuses(superuser_client):
    template = MailTemplateFactory(name="Monatsreport")
    translation = template.translations.get()
    prefix = "translations"
    data = {
        "name": "Monatsreport",
        "template_type": "inventory",
        "add_attachment": "report",
        "due_filter": "due_overdue",
        "due_window_days": "30",
        "report": "instruments_due",
        "export_type": "excel",
        "attachment_type": "file",
        "csv_separator": ";",
        "default_language": "de",
        f"{prefix}-TOTAL_FORMS": "1",
        f"{prefix}-INITIAL_FORMS": "1",
        f"{prefix}-0-id": str(translation.pk),
        f"{prefix}-0-template": str(template.pk),
        f"{prefix}-0-language": "de",
        f"{prefix}-0-subject": "Betreff",
        f"{prefix}-0-body_html": "<p>{% debug %}</p>",
        f"{prefix}-0-body_text": "",
    }

    response = superuser_client.post(
        f"/admin/templates_app/mailtemplate/{template.pk}/change/", data
    )

    assert response.status_code == 200
    assert "the tag {% debug %} is not available in templates." in page_text(response)
    assert MailTemplateTranslation.objects.get().body_html == translation.body_html
