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


class AuthMethod(models.TextChoices):
    """How a configuration signs in when SMTP auth is on."""

    PASSWORD = "password", _("Password")
    MICROSOFT = "microsoft", _("OAuth 2.0: Microsoft 365")
    GOOGLE = "google", _("OAuth 2.0: Google Workspace")
    OAUTH2 = "oauth2", _("OAuth 2.0: other provider")


OAUTH_METHODS = (AuthMethod.MICROSOFT, AuthMethod.GOOGLE, AuthMethod.OAUTH2)
# Exchange Online's SMTP endpoint, whose password sign-in Microsoft switches off.
MICROSOFT_SMTP_HOST = "smtp.office365.com"


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
    # A deactivated configuration takes no new mail (mailbox.services refuses it) but keeps
    # its history: one that has sent mail can never be deleted.
    is_active = models.BooleanField(
        _("active"),
        default=True,
        help_text=_(
            "Deactivated: no new mail may use it; mails already queued for it are still "
            "delivered, and its sent mails stay."
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
    auth_method = models.CharField(
        _("sign-in method"),
        max_length=10,
        choices=AuthMethod.choices,
        default=AuthMethod.PASSWORD,
    )
    oauth_tenant_id = models.CharField(
        _("directory (tenant) ID"),
        max_length=100,
        blank=True,
        help_text=_(
            "Microsoft Entra admin center → App registrations → your app → Overview: "
            "“Directory (tenant) ID”."
        ),
    )
    oauth_client_id = models.CharField(
        _("client ID"),
        max_length=255,
        blank=True,
        help_text=_(
            "Microsoft: “Application (client) ID” on the app registration's Overview. "
            "Other providers: the client ID of the application registered there."
        ),
    )
    # Secrets: encrypted like the password, never rendered (forms are write-only).
    oauth_client_secret = EncryptedTextField(_("client secret"), blank=True)
    oauth_certificate = EncryptedTextField(_("certificate"), blank=True)
    oauth_service_account = EncryptedTextField(_("service account key"), blank=True)
    oauth_token_url = models.URLField(
        _("token URL"),
        max_length=500,
        blank=True,
        help_text=_("The provider's OAuth 2.0 token endpoint (client-credentials grant)."),
    )
    oauth_scope = models.CharField(
        _("scope"),
        max_length=500,
        blank=True,
        help_text=_(
            "Scopes the token must carry, separated by spaces, as the provider documents them."
        ),
    )
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
            # Mails that name no configuration go through the default: it must take them.
            models.CheckConstraint(
                condition=Q(is_default=False) | Q(is_active=True),
                name="smtpconfig_default_is_active",
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
            errors.update(self._sign_in_errors())
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

    def _sign_in_errors(self) -> dict:
        errors = {}
        method = self.auth_method
        if not self.username:
            errors["username"] = (
                _("SMTP auth needs a username.")
                if method == AuthMethod.PASSWORD
                else _("Enter the mailbox to send as.")
            )
        if method == AuthMethod.PASSWORD and not self.password:
            errors["password"] = _("SMTP auth needs a password.")
        if method == AuthMethod.MICROSOFT:
            if not self.oauth_tenant_id:
                errors["oauth_tenant_id"] = _("Enter the directory (tenant) ID.")
            if not self.oauth_client_secret and not self.oauth_certificate:
                errors["oauth_client_secret"] = _(
                    "Enter a client secret or a certificate of the app registration."
                )
        if method in (AuthMethod.MICROSOFT, AuthMethod.OAUTH2) and not self.oauth_client_id:
            errors["oauth_client_id"] = _("Enter the client ID.")
        if method == AuthMethod.GOOGLE and not self.oauth_service_account:
            errors["oauth_service_account"] = _("Enter the service account key (JSON).")
        if method == AuthMethod.OAUTH2:
            if not self.oauth_token_url:
                errors["oauth_token_url"] = _("Enter the token URL.")
            if not self.oauth_client_secret:
                errors["oauth_client_secret"] = _("Enter the client secret.")
        if method in OAUTH_METHODS and self.security == Security.NONE:
            errors["security"] = _("OAuth sign-in sends a token: choose STARTTLS or SSL/TLS.")
        return errors

    @property
    def has_password(self) -> bool:
        return bool(self.password)

    @property
    def uses_oauth(self) -> bool:
        return self.mailer == Mailer.SMTP and self.smtp_auth and self.auth_method in OAUTH_METHODS

    @property
    def password_sign_in_retiring(self) -> bool:
        """Signs in to Exchange Online with a password, which Microsoft switches off."""
        return (
            self.mailer == Mailer.SMTP
            and self.smtp_auth
            and self.auth_method == AuthMethod.PASSWORD
            and self.host.strip().rstrip(".").lower() == MICROSOFT_SMTP_HOST
        )

    @property
    def sign_in_label(self) -> str:
        if self.mailer != Mailer.SMTP or not self.smtp_auth:
            return str(_("none"))
        return str(self.get_auth_method_display())

    @property
    def address(self) -> str:
        if self.mailer == Mailer.SENDMAIL:
            return self.sendmail_path
        return f"{self.host}:{self.port}"


class OAuthToken(models.Model):
    """The access token a configuration signs in with, kept until shortly before it expires.

    One row per configuration; its row lock makes sure only one worker asks the identity
    provider for a new token at a time (smtpconfig.transport.oauth).
    """

    configuration = models.OneToOneField(
        SmtpConfiguration, on_delete=models.CASCADE, related_name="oauth_token"
    )
    access_token = EncryptedTextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.CharField(max_length=1000, blank=True)
    # HMAC of the sign-in settings the token was obtained with: any change makes it stale.
    fingerprint = models.CharField(max_length=64, blank=True)
    obtained_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("OAuth access token")
        verbose_name_plural = _("OAuth access tokens")

    def __str__(self):
        return f"OAuth token of {self.configuration_id}"


def default_sender(configuration: SmtpConfiguration) -> str:
    return configuration.from_email or settings.DEFAULT_FROM_EMAIL
