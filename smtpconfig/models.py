import os

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from calmail.common.fields import EncryptedTextField


class Mailer(models.TextChoices):
    SMTP = "smtp", "smtp"
    SENDMAIL = "sendmail", "sendmail"


class Security(models.TextChoices):
    NONE = "none", _("no encryption")
    STARTTLS = "starttls", "STARTTLS"
    SSL = "ssl", "SSL/TLS"


class SmtpConfiguration(models.Model):
    """A mail server (or local sendmail binary) that mails are delivered through."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    is_default = models.BooleanField(
        _("default"),
        default=False,
        help_text=_(
            "Used for every mail that does not name a configuration. Exactly one is the default."
        ),
    )
    mailer = models.CharField(
        _("mailer"), max_length=10, choices=Mailer.choices, default=Mailer.SMTP
    )
    host = models.CharField(_("host"), max_length=255, blank=True)
    port = models.PositiveIntegerField(
        _("port"),
        default=587,
        validators=[MinValueValidator(1), MaxValueValidator(65535)],
        help_text=_("Usually 587 for STARTTLS, 465 for SSL/TLS, 25 without encryption."),
    )
    sendmail_path = models.CharField(
        _("sendmail"),
        max_length=255,
        blank=True,
        help_text=_(
            "Path of the sendmail binary, e.g. /usr/sbin/sendmail. Only for the sendmail mailer."
        ),
    )
    smtp_auth = models.BooleanField(_("SMTP auth"), default=False)
    username = models.CharField(_("username"), max_length=255, blank=True)
    password = EncryptedTextField(_("password"), blank=True)
    security = models.CharField(
        _("SMTP secure"), max_length=10, choices=Security.choices, default=Security.STARTTLS
    )
    verify_certificate = models.BooleanField(
        _("verify certificate"),
        default=True,
        help_text=_(
            "Turn off only for a server you trust on a network you control: it allows interception."
        ),
    )
    timeout = models.PositiveSmallIntegerField(
        _("timeout (seconds)"),
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(300)],
    )
    from_email = models.EmailField(
        _("default sender"),
        blank=True,
        help_text=_("Sender for test mails and for mails whose template names no sender."),
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        _("mails per minute"), null=True, blank=True, help_text=_("Empty means no limit.")
    )
    rate_limit_per_hour = models.PositiveIntegerField(
        _("mails per hour"), null=True, blank=True, help_text=_("Empty means no limit.")
    )
    max_connections = models.PositiveSmallIntegerField(
        _("parallel connections"),
        # Five sessions carry a relay that takes 200 ms per mail at 25 mails/s; each
        # worker process opens as many as its backlog needs (mailbox.delivery._Crew).
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_(
            "Open at most this many connections to the server at once, across all workers. "
            "Microsoft 365 accepts at most 3 per mailbox."
        ),
    )
    max_messages_per_connection = models.PositiveIntegerField(
        _("mails per connection"),
        default=100,
        validators=[MinValueValidator(1), MaxValueValidator(100000)],
        help_text=_("Reconnect after this many mails."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("SMTP configuration")
        verbose_name_plural = _("SMTP configurations")
        ordering = ["name"]
        permissions = [("test_smtpconfiguration", _("Can test connections and send test mails"))]
        constraints = [
            # At most one default; the services keep it at least one.
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True),
                name="smtpconfig_single_default",
            ),
            models.CheckConstraint(
                condition=Q(port__gte=1, port__lte=65535), name="smtpconfig_port_range"
            ),
            models.CheckConstraint(
                condition=Q(timeout__gte=1, timeout__lte=300), name="smtpconfig_timeout_range"
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.mailer == Mailer.SMTP and not self.host:
            errors["host"] = _("Enter the host name of the SMTP server.")
        if self.mailer == Mailer.SENDMAIL:
            if not self.sendmail_path:
                errors["sendmail_path"] = _("Enter the path of the sendmail binary.")
            elif not os.path.isabs(self.sendmail_path):
                errors["sendmail_path"] = _("Enter an absolute path, e.g. /usr/sbin/sendmail.")
            elif not (
                os.path.isfile(self.sendmail_path) and os.access(self.sendmail_path, os.X_OK)
            ):
                errors["sendmail_path"] = _("%(path)s does not exist or is not executable.") % {
                    "path": self.sendmail_path
                }
        if self.mailer == Mailer.SMTP and self.smtp_auth:
            if not self.username:
                errors["username"] = _("SMTP auth needs a username.")
            if not self.password:
                errors["password"] = _("SMTP auth needs a password.")
        if (
            self.rate_limit_per_minute
            and self.rate_limit_per_hour
            and self.rate_limit_per_minute > self.rate_limit_per_hour
        ):
            errors["rate_limit_per_minute"] = _(
                "The per-minute limit cannot exceed the per-hour limit."
            )
        if errors:
            raise ValidationError(errors)

    @property
    def has_password(self) -> bool:
        return bool(self.password)

    @property
    def address(self) -> str:
        if self.mailer == Mailer.SENDMAIL:
            return self.sendmail_path
        return f"{self.host}:{self.port}"


def default_sender(configuration: SmtpConfiguration) -> str:
    return configuration.from_email or settings.DEFAULT_FROM_EMAIL
