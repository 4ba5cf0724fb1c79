"""The vocabulary every section shares about a mail: where it comes from, what kind of
address it goes to, how a report is attached and exported, and an attachment itself.

The outbox stores these values (mailbox.models), templates and actions produce them,
recipients resolve to them. They live here, below every section, so that none of them
has to import another section for a word. (docs/architecture.md, "Layers")
"""

from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _


class Source(models.TextChoices):
    # What the outbox's "Mail action" column shows for mails no action made: words a
    # reader understands, not the stored key.
    ACTION = "action", _("mail action")
    COMPOSE = "compose", _("written by hand")
    TEST = "test", _("test mail")
    SYSTEM = "system", _("system mail")


class AddressType(models.TextChoices):
    USER = "user", _("User")
    CUSTOMER = "customer", _("Customer")
    SYSTEM = "system", _("System")
    DISTRIBUTION = "distribution", _("Distribution group")
    ADDRESS = "address", _("Typed address")


class ExportType(models.TextChoices):
    NONE = "", _("none")
    EXCEL = "excel", "excel"
    PDF_HTML = "pdf_html", "pdf_html"
    CSV = "csv", "csv"


class AttachmentType(models.TextChoices):
    FILE = "file", _("file")
    LINK = "link", _("link")


@dataclass(frozen=True)
class AttachmentSpec:
    """A file to send with a mail; `exported` marks a report export (vs. an upload)."""

    filename: str
    content: bytes
    content_type: str = ""
    exported: bool = False
