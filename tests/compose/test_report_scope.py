"""Compose fills a template in with the recipient's report; an address that belongs to no
customer or user gets none (never every customer's records)."""

import datetime as dt

from django.urls import reverse
from django.utils import timezone

from compose.models import Draft
from tests.compose.test_views import form_data
from tests.factories import CustomerFactory, InstrumentFactory, MailTemplateFactory


def test_template_for_typed_address_attaches_no_report(client_for, power_user, configuration):
    customer = CustomerFactory(number="1001", name="Muster GmbH")
    InstrumentFactory(
        customer=customer, last_calibration=timezone.localdate() - dt.timedelta(days=400)
    )
    template = MailTemplateFactory(empty_attachment_allowed=True)

    client = client_for(power_user)
    client.post("/i18n/setlang/", {"language": "en"})
    response = client.post(
        reverse("compose:new"),
        form_data(configuration, to="info@firma.example", template=template.pk, action="template"),
        follow=True,
    )

    draft = Draft.objects.get()
    assert draft.attachments.count() == 0
    assert "There is no report for this recipient (report scope: no report)." in (
        response.content.decode()
    )
