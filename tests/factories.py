import datetime

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.utils import timezone

from smtpconfig.models import SmtpConfiguration


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for name in extracted or ():
            self.groups.add(Group.objects.get(name=name))


class SmtpConfigurationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SmtpConfiguration

    name = factory.Sequence(lambda n: f"Mailserver {n}")
    mailer = "smtp"
    host = factory.Sequence(lambda n: f"smtp{n}.example.com")
    port = 587
    security = "starttls"
    timeout = 10


# --- outbox (mailbox) ----------------------------------------------------------------------


class OutboxMessageFactory(factory.django.DjangoModelFactory):
    """A stored mail as the outbox shows it; bypasses enqueue() (no dispatch, no checks)."""

    class Meta:
        model = "mailbox.OutboxMessage"

    source = "compose"
    recipient = factory.Sequence(lambda n: f"empfaenger{n}@example.com")
    to = factory.LazyAttribute(lambda message: [message.recipient])
    from_email = "kalibrierlabor@example.com"
    subject = factory.Sequence(lambda n: f"Kalibrierschein {n}")
    body_text = "Guten Tag,\nanbei der Kalibrierschein."
    message_id = factory.Sequence(lambda n: f"<factory.{n}@example.com>")
    smtp_configuration = factory.SubFactory(SmtpConfigurationFactory)


class OutboxAttachmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "mailbox.OutboxAttachment"

    message = factory.SubFactory(OutboxMessageFactory)
    filename = factory.Sequence(lambda n: f"bericht-{n}.pdf")
    content_type = "application/pdf"
    size = factory.LazyAttribute(lambda attachment: len(attachment.content))
    file = factory.LazyAttribute(
        lambda attachment: ContentFile(attachment.content, name=attachment.filename)
    )
    created_at = factory.LazyFunction(timezone.now)

    class Params:
        content = b"%PDF-1.4 Kalibrierschein"


class DeliveryAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "mailbox.DeliveryAttempt"

    message = factory.SubFactory(OutboxMessageFactory)
    smtp_configuration = factory.SelfAttribute("message.smtp_configuration")
    started_at = factory.LazyFunction(timezone.now)
    duration_ms = 120
    worker = "celery@worker-1"
    outcome = "sent"
    reply_code = 250
    reply_text = "2.0.0 Ok: queued as 4F2A1"


# --- calServer data and recipients (inventory) ------------------------------------------------


class CustomerFactory(factory.django.DjangoModelFactory):
    """A customer with one contact address; CustomerFactory(emails=[...]) sets them (or none)."""

    class Meta:
        model = "inventory.Customer"
        skip_postgeneration_save = True

    number = factory.Sequence(lambda n: str(20001 + n))
    name = factory.Sequence(lambda n: f"Muster Messtechnik {n} GmbH")
    language = "de"
    city = "Jena"

    @factory.post_generation
    def emails(self, create, extracted, **kwargs):
        if not create:
            return
        if extracted is None:
            extracted = [f"kalibrierung@kunde{self.number}.example"]
        for position, email in enumerate(extracted):
            self.contacts.create(email=email, position=position)


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "inventory.Location"

    name = factory.Sequence(lambda n: f"Werk {n}")
    customer = factory.SubFactory(CustomerFactory)


class InstrumentFactory(factory.django.DjangoModelFactory):
    """Saved through Instrument.save(), so next_due_date follows last_calibration + interval."""

    class Meta:
        model = "inventory.Instrument"

    inventory_number = factory.Sequence(lambda n: f"T-INV-{n:05d}")
    description = "Digitalmultimeter"
    manufacturer = "Fluke"
    model = "87V"
    serial_number = factory.Sequence(lambda n: f"FL{n:08d}")
    customer = factory.SubFactory(CustomerFactory)
    last_calibration = factory.LazyFunction(
        lambda: timezone.localdate() - datetime.timedelta(days=180)
    )
    calibration_interval_months = 12


class SupportTicketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "inventory.SupportTicket"

    number = factory.Sequence(lambda n: f"TK-{n:05d}")
    subject = factory.Sequence(lambda n: f"Rückfrage zum Kalibrierschein {n}")
    customer = factory.SubFactory(CustomerFactory)
    due_date = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=14))


class DistributionListFactory(factory.django.DjangoModelFactory):
    """DistributionListFactory(users=[...], customers=[...], addresses=["a@x", ("b@x", "Name")])."""

    class Meta:
        model = "inventory.DistributionList"
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Verteiler {n}")

    @factory.post_generation
    def users(self, create, extracted, **kwargs):
        if create and extracted:
            self.users.set(extracted)

    @factory.post_generation
    def customers(self, create, extracted, **kwargs):
        if create and extracted:
            self.customers.set(extracted)

    @factory.post_generation
    def addresses(self, create, extracted, **kwargs):
        for position, entry in enumerate(extracted or () if create else ()):
            email, name = (entry, "") if isinstance(entry, str) else entry
            self.addresses.create(email=email, name=name, position=position)


class SystemAddressFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "inventory.SystemAddress"

    name = factory.Sequence(lambda n: f"Systemadresse {n}")
    email = factory.Sequence(lambda n: f"system{n}@calserver.example")
    language = "de"


# --- templates (templates_app) ------------------------------------------------------------------


class MailTemplateFactory(factory.django.DjangoModelFactory):
    """A template with German texts; MailTemplateFactory(texts={"en": {"subject": …}}) sets
    its texts per language instead (subject, body_html, body_text)."""

    class Meta:
        model = "templates_app.MailTemplate"
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Kalibriererinnerung {n}")
    template_type = "inventory"
    report = "instruments_due"
    due_filter = "due_overdue"
    due_window_days = 30
    add_attachment = "report"
    export_type = "excel"
    attachment_type = "file"
    default_language = "de"
    from_email = "kalibrierlabor@calserver.example"
    from_name = "Kalibrierlabor"

    @factory.post_generation
    def texts(self, create, extracted, **kwargs):
        if not create:
            return
        if extracted is None:
            extracted = {
                "de": {
                    "subject": "Fällige Kalibrierungen für {{ recipient.name }}",
                    "body_html": "<p>Guten Tag {{ recipient.name }},</p>"
                    "<p>{{ count }} Prüfmittel sind fällig.</p>",
                }
            }
        for language, values in extracted.items():
            self.translations.create(language=language, **values)
