"""Drafts: everything a composed mail is made of, kept until it is sent."""

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class SendMode(models.TextChoices):
    PER_RECIPIENT = "per_recipient", _("One mail per To recipient")
    ALL = "all", _("One mail to all recipients")


class Draft(models.Model):
    """An unsent mail. Recipients are selection tokens (inventory.recipients) as typed, so
    a draft keeps even what does not validate yet; the checks run on preview and send."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="compose_drafts",
        verbose_name=_("Owner"),
    )
    smtp_configuration = models.ForeignKey(
        "smtpconfig.SmtpConfiguration",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("SMTP configuration"),
    )
    owner_group = models.ForeignKey(
        "auth.Group",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("Group"),
    )
    from_email = models.CharField(_("From"), max_length=254, blank=True)
    from_name = models.CharField(_("From name"), max_length=200, blank=True)
    to = models.JSONField(_("To"), default=list, blank=True)
    cc = models.JSONField(_("Cc"), default=list, blank=True)
    bcc = models.JSONField(_("Bcc"), default=list, blank=True)
    subject = models.TextField(_("Subject"), blank=True)
    body_html = models.TextField(_("Text"), blank=True)
    send_mode = models.CharField(
        _("Sending"), max_length=20, choices=SendMode.choices, default=SendMode.PER_RECIPIENT
    )
    scheduled_at = models.DateTimeField(_("Send at"), null=True, blank=True)
    template = models.ForeignKey(
        "templates_app.MailTemplate",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("Template"),
    )
    created_at = models.DateTimeField(_("Created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("Changed"), auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-pk"]
        verbose_name = _("Draft")
        verbose_name_plural = _("Drafts")
        permissions = [("send_mail", _("Can compose and send mails"))]

    def __str__(self):
        # A str, never a lazy translation: str() refuses anything else.
        return self.subject or gettext("(no subject)")


def _draft_file_path(instance, filename):
    # A random directory per file: two uploads with the same name never collide, and the
    # path does not reveal whose draft it is.
    return f"compose/drafts/{uuid.uuid4().hex}/{filename}"


class DraftAttachment(models.Model):
    draft = models.ForeignKey(Draft, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=_draft_file_path, max_length=500)
    filename = models.CharField(_("File name"), max_length=255)
    content_type = models.CharField(max_length=200, blank=True)
    size = models.PositiveBigIntegerField(_("Size"), default=0)
    # A report export filled in from a template (vs. a file the user uploaded).
    exported = models.BooleanField(default=False)

    class Meta:
        ordering = ["pk"]
        verbose_name = _("Attachment")
        verbose_name_plural = _("Attachments")

    def __str__(self):
        return self.filename
