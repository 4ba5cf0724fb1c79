"""Writes for composing: drafts, their attachments, and sending through the outbox."""

import mimetypes
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from calmail.common.html import sanitise_body_html
from calmail.common.mailtypes import AttachmentSpec
from compose.models import Draft, DraftAttachment, SendMode
from inventory.recipients import Recipient, Resolution, Skipped, resolve_selection
from mailbox.models import OutboxMessage, Source
from mailbox.services import BatchValidationError, OutgoingMail, enqueue_many
from templates_app.rendering import html_to_text
from templates_app.reports.exporters import export_type_of
from templates_app.services import render_for_recipient

if TYPE_CHECKING:
    # For the annotation only.
    from templates_app.models import MailTemplate

# Files that run when opened: refused by name, whatever their content.
DANGEROUS_EXTENSIONS = frozenset(
    {
        "exe", "com", "bat", "cmd", "scr", "pif", "cpl", "msi", "msp", "msc", "dll", "sys",
        "js", "jse", "vbs", "vbe", "wsf", "wsh", "hta", "ps1", "psm1", "psd1", "jar", "sh",
        "bash", "zsh", "csh", "ksh", "app", "apk", "deb", "rpm", "run", "bin", "elf", "lnk",
        "reg", "inf", "gadget", "scf", "url", "py", "pl", "rb", "php",
    }
)  # fmt: skip
# ... and by what they start with, whatever their name: Windows (MZ), Linux (ELF),
# macOS (Mach-O) executables and scripts with an interpreter line.
DANGEROUS_MAGIC = (
    b"MZ",
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"#!",
)


def file_refusal(*, filename: str, head: bytes, size: int, max_bytes: int) -> str:
    """Why an uploaded file cannot be attached ("" when it can)."""
    name = PurePath(filename.replace("\\", "/")).name
    if not name or name in {".", ".."}:
        return _("“%(name)s” is not a valid file name.") % {"name": filename}
    if size > max_bytes:
        return _("%(name)s is %(size)s MB; at most %(limit)s MB are allowed per file.") % {
            "name": name,
            "size": f"{size / 1_000_000:.1f}",
            "limit": f"{max_bytes / 1_000_000:.0f}",
        }
    extensions = {part.lower() for part in name.split(".")[1:]}
    if extensions & DANGEROUS_EXTENSIONS:
        return _(
            "%(name)s looks like a program or script; such files are not sent for safety. "
            "Pack it in a ZIP archive if the recipient really needs it."
        ) % {"name": name}
    if head.startswith(DANGEROUS_MAGIC):
        return _(
            "%(name)s contains a program or script (whatever its name says); such files "
            "are not sent for safety."
        ) % {"name": name}
    return ""


def _content_type(filename: str, given: str = "") -> str:
    guessed, _encoding = mimetypes.guess_type(filename)
    return guessed or given or "application/octet-stream"


def draft_add_attachment(
    *, draft: Draft, filename: str, content: bytes, content_type: str = "", exported: bool = False
) -> DraftAttachment:
    """Store a file with the draft (under compose/drafts/ in the default storage)."""
    name = PurePath(filename.replace("\\", "/")).name
    attachment = DraftAttachment(
        draft=draft,
        filename=name,
        content_type=_content_type(name, content_type),
        size=len(content),
        exported=exported,
    )
    attachment.file.save(name, ContentFile(content), save=False)
    attachment.save()
    return attachment


def draft_remove_attachments(*, draft: Draft, ids: Sequence[int]) -> None:
    for attachment in draft.attachments.filter(pk__in=list(ids)):
        attachment.file.delete(save=False)
        attachment.delete()


def draft_save(*, owner: User, draft: Draft | None, values: dict) -> Draft:
    """Create or update a draft with the given field values, valid or not (a draft keeps
    what was typed; the checks run on preview and send)."""
    if draft is None:
        draft = Draft(owner=owner)
    if values.get("body_html"):
        # Stored as it will be sent: nothing active or remote survives (nh3).
        values = {**values, "body_html": sanitise_body_html(values["body_html"])}
    for name, value in values.items():
        setattr(draft, name, value)
    draft.save()
    return draft


def draft_delete(*, draft: Draft) -> None:
    for attachment in draft.attachments.all():
        attachment.file.delete(save=False)
    draft.delete()


# --- templates ------------------------------------------------------------------------------


def draft_apply_template(
    *, draft: Draft, template: "MailTemplate", recipient: Recipient
) -> list[str]:
    """Fill subject, text, sender and the report attachment in from a template rendered
    for one recipient; everything stays editable. Returns notes for the user (e.g. why the
    report was not attached). Raises TemplateRenderError."""
    rendered = render_for_recipient(template=template, recipient=recipient)
    draft.template = template
    draft.subject = rendered.subject
    # A template's HTML is its author's; in the draft it is kept as it will be sent.
    draft.body_html = sanitise_body_html(rendered.body_html or _plain_to_html(rendered.body_text))
    if rendered.from_email:
        draft.from_email = rendered.from_email
    if rendered.from_name:
        draft.from_name = rendered.from_name
    draft.save()
    for spec in rendered.attachments:
        draft_add_attachment(
            draft=draft,
            filename=spec.filename,
            content=spec.content,
            content_type=spec.content_type,
            exported=spec.exported,
        )
    return [rendered.attachment_skipped] if rendered.attachment_skipped else []


def _plain_to_html(text: str) -> str:
    from django.utils.html import escape, linebreaks

    return linebreaks(escape(text)) if text else ""


# --- preview and sending ----------------------------------------------------------------------


@dataclass
class PlannedMail:
    """One outbox row as it will be created: the recipients it goes to (To/Cc/Bcc)."""

    to: list[Recipient]
    cc: list[Recipient]
    bcc: list[Recipient]

    @property
    def address_type(self) -> str:
        kinds = {str(recipient.address_type) for recipient in self.to or self.cc or self.bcc}
        return kinds.pop() if len(kinds) == 1 else "address"

    @property
    def recipient_owner(self) -> str:
        owners = []
        for recipient in self.to or self.cc or self.bcc:
            if recipient.owner and recipient.owner not in owners:
                owners.append(recipient.owner)
        return ", ".join(owners)[:300]


@dataclass
class Plan:
    mails: list[PlannedMail] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def plan_mails(*, to: Sequence[str], cc: Sequence[str], bcc: Sequence[str], mode: str) -> Plan:
    """Expand the selection (distribution lists into their members) and split it into the
    mails to create. Raises ValidationError on "to" when nobody is left to write to."""
    resolved: dict[str, Resolution] = {
        "to": resolve_selection(to),
        "cc": resolve_selection(cc),
        "bcc": resolve_selection(bcc),
    }
    plan = Plan(skipped=[s for r in resolved.values() for s in r.skipped])
    to_list = resolved["to"].recipients
    cc_list, bcc_list = resolved["cc"].recipients, resolved["bcc"].recipients
    if not (to_list or cc_list or bcc_list):
        raise ValidationError(
            {"to": [_("After expanding the selection there is no address left to write to.")]}
        )
    if mode == SendMode.PER_RECIPIENT and len(to_list) > 1:
        plan.mails = [PlannedMail(to=[r], cc=cc_list, bcc=bcc_list) for r in to_list]
    else:
        plan.mails = [PlannedMail(to=to_list, cc=cc_list, bcc=bcc_list)]
    return plan


def body_text_for(body_html: str) -> str:
    return html_to_text(body_html)


@transaction.atomic
def draft_send(
    *, draft: Draft, user: User, plan: Plan | None = None
) -> tuple[str, list[OutboxMessage]]:
    """Put the draft's mails in the outbox (one per To recipient or one for all), then
    delete the draft. Returns the batch id (stored in each mail's parameters, so the
    outbox can be filtered to them) and the mails. Raises ValidationError per field."""
    if plan is None:
        plan = plan_mails(to=draft.to, cc=draft.cc, bcc=draft.bcc, mode=draft.send_mode)
    stored = list(draft.attachments.all())
    attachments = [
        AttachmentSpec(
            filename=attachment.filename,
            content=_read(attachment),
            content_type=attachment.content_type,
            exported=attachment.exported,
        )
        for attachment in stored
    ]
    # The report a template attached (and the user kept) is the mail's export: its
    # type is read from the file, which is what the recipient gets.
    export_type = next((export_type_of(a.filename) for a in stored if a.exported), "")
    batch = uuid.uuid4().hex
    body_html = sanitise_body_html(draft.body_html) if draft.body_html.strip() else ""
    body_text = body_text_for(body_html)
    scheduled_at = draft.scheduled_at
    if scheduled_at is not None and scheduled_at <= timezone.now():
        raise ValidationError({"scheduled_at": [_("The planned time is in the past.")]})
    parameters = {"compose_batch": batch}
    if draft.template is not None:
        parameters["template"] = draft.template.name
    mails = [
        OutgoingMail(
            # With their display names, as the preview shows them ("Laura Peters <…>").
            to=[r.formatted for r in mail.to],
            cc=[r.formatted for r in mail.cc],
            bcc=[r.email for r in mail.bcc],
            subject=draft.subject,
            body_html=body_html,
            body_text=body_text,
            from_email=draft.from_email,
            from_name=draft.from_name,
            attachments=attachments,
            export_type=export_type,
            smtp_configuration=draft.smtp_configuration,
            source=Source.COMPOSE,
            address_type=mail.address_type,
            recipient_owner=mail.recipient_owner,
            parameters=parameters,
            scheduled_at=scheduled_at,
            owner_group=draft.owner_group,
            created_by=user,
        )
        for mail in plan.mails
    ]
    try:
        result = enqueue_many(mails, all_or_nothing=True)
    except BatchValidationError as exc:
        # The mails differ only in their recipients: the first bad one's fields say it.
        raise exc.by_index[min(exc.by_index)] from None
    messages = result.stored
    draft_delete(draft=draft)
    return batch, messages


def _read(attachment: DraftAttachment) -> bytes:
    with attachment.file.open("rb") as handle:
        return handle.read()


def max_files() -> int:
    return settings.CALMAIL_COMPOSE_MAX_FILES
