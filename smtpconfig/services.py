"""Writes to SMTP configurations. Views, commands and tasks go through these."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import ProtectedError, QuerySet
from django.utils.formats import number_format
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from maillog.models import AuditAction
from maillog.services import diff_fields, log_audit, snapshot
from smtpconfig.models import AuthMethod, SmtpConfiguration

# Fields a user edits; everything else (default flag, timestamps) is managed here.
EDITABLE_FIELDS = (
    "name",
    "mailer",
    "host",
    "port",
    "sendmail_path",
    "smtp_auth",
    "username",
    "password",
    "auth_method",
    "oauth_tenant_id",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_certificate",
    "oauth_service_account",
    "oauth_token_url",
    "oauth_scope",
    "security",
    "verify_certificate",
    "timeout",
    "from_email",
    "rate_limit_per_minute",
    "rate_limit_per_hour",
    "max_connections",
    "max_messages_per_connection",
)
# What the audit trail records (the password only as "changed").
AUDITED_FIELDS = (*EDITABLE_FIELDS, "is_default")
# Stored encrypted, never shown: the audit trail records only that one changed.
SECRET_FIELDS = ("password", "oauth_client_secret", "oauth_certificate", "oauth_service_account")
# The secrets each sign-in method uses; saving keeps only the chosen method's, so a
# configuration moved to OAuth has no password left in the database.
_SECRETS_OF_METHOD: dict[str, set[str]] = {
    AuthMethod.PASSWORD: {"password"},
    AuthMethod.MICROSOFT: {"oauth_client_secret", "oauth_certificate"},
    AuthMethod.GOOGLE: {"oauth_service_account"},
    AuthMethod.OAUTH2: {"oauth_client_secret"},
}


def _apply(configuration: SmtpConfiguration, values: dict) -> list[str]:
    """Set the editable fields from values; return the names of the fields that changed."""
    changed = []
    for name in EDITABLE_FIELDS:
        if name in values and getattr(configuration, name) != values[name]:
            setattr(configuration, name, values[name])
            changed.append(name)
    if configuration.smtp_auth:
        keep = _SECRETS_OF_METHOD.get(configuration.auth_method, set())
        for name in SECRET_FIELDS:
            if name not in keep and getattr(configuration, name):
                setattr(configuration, name, "")
                if name not in changed:
                    changed.append(name)
    return changed


def _lock_configurations() -> None:
    """Lock every configuration row (in pk order, so waiters cannot deadlock) until commit.

    Locking only the current default is not enough: a waiter re-checks that row after the
    first switch commits, finds it no longer default, and would proceed on a stale view
    and collide with the new default. Configurations are few; locking all is cheap.
    """
    list(SmtpConfiguration.objects.select_for_update().order_by("pk").values_list("pk", flat=True))


@transaction.atomic
def smtp_configuration_create(*, values: dict, make_default: bool = False) -> SmtpConfiguration:
    """Create a configuration. The first one ever becomes the default, whatever was asked."""
    configuration = SmtpConfiguration()
    _apply(configuration, values)
    configuration.full_clean()
    # Two truly simultaneous "first" creations both see no default; the unique constraint
    # then refuses the second, so there is never more than one.
    has_default = SmtpConfiguration.objects.filter(is_default=True).exists()
    configuration.save()
    log_audit(
        action=AuditAction.CREATED,
        obj=configuration,
        changes=diff_fields(
            {}, snapshot(configuration, AUDITED_FIELDS), secret_fields=SECRET_FIELDS
        ),
    )
    if make_default or not has_default:
        smtp_configuration_set_default(configuration=configuration)
    return configuration


@transaction.atomic
def smtp_configuration_update(
    *, configuration: SmtpConfiguration, values: dict, make_default: bool = False
) -> list[str]:
    """Update a configuration; returns the changed field names (a password shows only as its name)."""
    # The default flag is recorded by smtp_configuration_set_default itself.
    before = snapshot(configuration, EDITABLE_FIELDS)
    changed = _apply(configuration, values)
    configuration.full_clean()
    configuration.save()
    if make_default and not configuration.is_default:
        smtp_configuration_set_default(configuration=configuration)
        changed.append("is_default")
    changes = diff_fields(
        before, snapshot(configuration, EDITABLE_FIELDS), secret_fields=SECRET_FIELDS
    )
    if changes:
        log_audit(action=AuditAction.UPDATED, obj=configuration, changes=changes)
    return changed


@transaction.atomic
def smtp_configuration_set_default(*, configuration: SmtpConfiguration) -> None:
    """Make configuration the one default. Atomic: there is never a moment with two defaults,
    and the unique constraint on the flag refuses any writer that bypasses this."""
    _lock_configurations()
    configuration.refresh_from_db(fields=["is_active"])
    if not configuration.is_active:
        raise ValidationError(
            _("%(name)s is deactivated: reactivate it before making it the default.")
            % {"name": configuration.name},
            code="inactive",
        )
    SmtpConfiguration.objects.filter(is_default=True).exclude(pk=configuration.pk).update(
        is_default=False
    )
    updated = SmtpConfiguration.objects.filter(pk=configuration.pk, is_default=False).update(
        is_default=True
    )
    configuration.is_default = True
    if updated:
        log_audit(
            action=AuditAction.UPDATED, obj=configuration, changes={"is_default": [False, True]}
        )


def copy_name(name: str) -> str:
    suffix = _("(copy)")
    candidate = f"{name} {suffix}"
    number = 2
    while SmtpConfiguration.objects.filter(name=candidate[:100]).exists():
        candidate = f"{name} " + _("(copy %(number)s)") % {"number": number}
        number += 1
    if len(candidate) > 100:
        tail = candidate[len(name) :]
        candidate = name[: 100 - len(tail)] + tail
    return candidate


@transaction.atomic
def smtp_configuration_duplicate(
    *,
    configuration: SmtpConfiguration,
    copy_password: bool,
    name: str | None = None,
    password: str = "",
) -> SmtpConfiguration:
    """A copy with every setting but the default flag. The stored password (and OAuth
    client secret, certificate or key) is copied only when asked for; otherwise the copy
    gets `password` (a copy with SMTP auth needs one) and no OAuth secret."""
    values = {field: getattr(configuration, field) for field in EDITABLE_FIELDS}
    values["name"] = name or copy_name(configuration.name)
    if not copy_password:
        for field in SECRET_FIELDS:
            values[field] = ""
    values["password"] = configuration.password if copy_password else password
    return smtp_configuration_create(values=values)


# Counting what refers to a configuration stops here: the page says "10,000 or more".
USAGE_COUNT_CAP = 10_000


@dataclass(frozen=True)
class Usage:
    """What refers to a configuration: a kind of object (its plural name) and how many."""

    label: str
    count: int
    capped: bool = False
    url: str = ""

    def __str__(self) -> str:
        return f"{self.label}: {self.count_text}"

    @property
    def count_text(self) -> str:
        text = number_format(self.count, force_grouping=True)
        return _("%(count)s or more") % {"count": text} if self.capped else text


def smtp_configuration_usages(configuration: SmtpConfiguration) -> list[Usage]:
    """What keeps the configuration from being deleted (the references that PROTECT it),
    found through the model's relations: the sections that use it (actions, the outbox)
    sit above smtpconfig and are not imported here. Hidden relations (delivery attempts)
    belong to mails that are counted already."""
    usages = []
    for relation in SmtpConfiguration._meta.related_objects:
        if relation.on_delete is not models.PROTECT or relation.hidden:
            continue
        model = relation.related_model
        rows = model._base_manager.filter(**{relation.field.name: configuration})
        # A capped count: the outbox may hold millions of this configuration's mails.
        count = rows.order_by()[:USAGE_COUNT_CAP].count()
        if count:
            usages.append(
                Usage(
                    label=capfirst(str(model._meta.verbose_name_plural)),
                    count=count,
                    capped=count >= USAGE_COUNT_CAP,
                )
            )
    return usages


def _successors(configuration: SmtpConfiguration) -> QuerySet[SmtpConfiguration]:
    return SmtpConfiguration.objects.filter(is_active=True).exclude(pk=configuration.pk)


def smtp_configuration_needs_successor(configuration: SmtpConfiguration) -> bool:
    """Whether taking the configuration out of use (delete, deactivate) must name the new
    default: it is the default and others exist."""
    return (
        configuration.is_default and SmtpConfiguration.objects.exclude(pk=configuration.pk).exists()
    )


def smtp_configuration_delete_refusal(
    configuration: SmtpConfiguration, usages: list[Usage] | None = None
) -> str | None:
    """Why the configuration cannot be deleted (None if it can): mails and actions that
    refer to it keep it, since a sent mail's record cannot change. `usages` saves the
    caller that has counted them already a second count."""
    usages = smtp_configuration_usages(configuration) if usages is None else usages
    if usages:
        return _(
            "%(name)s cannot be deleted: %(what)s refer to it, and mails in the outbox keep "
            "their configuration for the record."
        ) % {"name": configuration.name, "what": ", ".join(str(usage) for usage in usages)}
    if (
        smtp_configuration_needs_successor(configuration)
        and not _successors(configuration).exists()
    ):
        return _(
            "%(name)s is the default and every other configuration is deactivated: "
            "reactivate one first, to become the default."
        ) % {"name": configuration.name}
    return None


def smtp_configuration_deactivate_refusal(configuration: SmtpConfiguration) -> str | None:
    """Why the configuration cannot be deactivated (None if it can)."""
    if not configuration.is_active:
        return _("%(name)s is already deactivated.") % {"name": configuration.name}
    if configuration.is_default and not _successors(configuration).exists():
        return _(
            "%(name)s is the default and there is no other active configuration to take "
            "over: create or reactivate one first."
        ) % {"name": configuration.name}
    return None


@transaction.atomic
def smtp_configuration_set_active(
    *,
    configuration: SmtpConfiguration,
    active: bool,
    successor: SmtpConfiguration | None = None,
) -> None:
    """Deactivate (no new mail may use it; queued mails still go out, history stays) or
    reactivate a configuration. The default is deactivated only with an active
    `successor`, which becomes the default first."""
    _lock_configurations()
    configuration.refresh_from_db(fields=["is_active", "is_default"])
    if configuration.is_active == active:
        return
    if not active:
        refusal = smtp_configuration_deactivate_refusal(configuration)
        if refusal:
            raise ValidationError(refusal, code="refused")
        if configuration.is_default:
            if successor is None or successor.pk == configuration.pk:
                raise ValidationError(
                    _(
                        "%(name)s is the default configuration. Choose which configuration "
                        "becomes the default."
                    )
                    % {"name": configuration.name},
                    code="successor",
                )
            smtp_configuration_set_default(configuration=successor)
            configuration.is_default = False
    configuration.is_active = active
    configuration.save(update_fields=["is_active", "updated_at"])
    log_audit(
        action=AuditAction.UPDATED, obj=configuration, changes={"is_active": [not active, active]}
    )


@transaction.atomic
def smtp_configuration_delete(
    *, configuration: SmtpConfiguration, successor: SmtpConfiguration | None = None
) -> None:
    """Delete a configuration. Deleting the default needs an active successor when others
    exist; a configuration still referenced (PROTECT) is refused with the reason."""
    refusal = smtp_configuration_delete_refusal(configuration)
    if refusal:
        raise ValidationError(refusal, code="in_use")
    needs_successor = smtp_configuration_needs_successor(configuration)
    if needs_successor and (
        successor is None or successor.pk == configuration.pk or not successor.is_active
    ):
        raise ValidationError(
            _(
                "%(name)s is the default configuration. Choose which configuration becomes the default."
            )
            % {"name": configuration.name}
        )
    log_audit(action=AuditAction.DELETED, obj=configuration)
    try:
        configuration.delete()
    except ProtectedError as exc:
        users = sorted({str(obj) for obj in exc.protected_objects})
        raise ValidationError(
            _("%(name)s is still used by: %(users)s. Change those first.")
            % {
                "name": configuration.name,
                "users": ", ".join(users[:10]) + (" …" if len(users) > 10 else ""),
            }
        ) from None
    if configuration.is_default and successor is not None:
        smtp_configuration_set_default(configuration=successor)
