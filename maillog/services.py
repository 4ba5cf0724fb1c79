"""Writes to the event log. Other apps' services call these; nothing here is a signal.

How to log
==========

Events (anything that happened)::

    from django.utils.translation import gettext_noop
    from maillog.models import Category, Level
    from maillog.services import log_event

    log_event(
        category=Category.SCHEDULER,
        level=Level.INFO,
        # An English msgid marked with gettext_noop (so makemessages finds it) and named
        # placeholders; it is translated when somebody reads the log, not now.
        message=gettext_noop("Run of %(action)s finished: %(sent)s mails queued, %(skipped)s skipped"),
        params={"action": action.description, "sent": 12, "skipped": 1},
        obj=action,                # the linked object (any model instance), optional
        group=action.owner_group,  # who may see the entry besides administrators
        details={"slot": slot.isoformat(), "run_id": run.pk},  # JSON, shown as is
    )

Scheduler examples (the actions app):

- run started: ``message=gettext_noop("Run of %(action)s started for %(slot)s")``
- run finished: ``gettext_noop("Run of %(action)s finished: %(sent)s mails queued,
  %(skipped)s skipped, %(failed)s failed")``
- recipient skipped (level WARNING): ``gettext_noop("%(recipient)s skipped: %(reason)s")``
  with ``details={"recipient": token, "reason_code": "no_address"}``
- missed slot (level WARNING): ``gettext_noop("Slot %(slot)s of %(action)s was missed")``
- catch-up: ``gettext_noop("Catching up %(count)s missed slot(s) of %(action)s")``

`log_scheduler_event(...)` is `log_event` with the category preset.

Audit entries (create/update/delete of configurations, templates, lists, actions)::

    before = snapshot(obj, FIELDS)
    ... change and save obj ...
    log_audit(action=AuditAction.UPDATED, obj=obj, changes=diff_fields(before, snapshot(obj, FIELDS)))

The actor defaults to the signed-in user of the current request (see maillog.context),
or the system outside requests; pass `actor=` to override. Never put a secret in params,
details or changes: `diff_fields` turns the fields named in `secret_fields` into
"changed". Delivery attempts are NOT logged here (hot path): the outbox lists its
DeliveryAttempt rows as a tab of the Log (mailbox.views.DeliveryAttemptListView).
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeAlias, overload

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import translation
from django.utils.translation import gettext_noop

from maillog.context import current_user
from maillog.models import AuditAction, Category, Level, LogEntry, render_message

if TYPE_CHECKING:
    # Types only: the Log is a sink and imports no section at run time.
    from django.contrib.auth.models import Group, User

    from mailbox.models import OutboxMessage
    from smtpconfig.models import SmtpConfiguration
    from smtpconfig.transport.probe import ConnectionReport

# What JSON can hold (jsonable's result).
JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"

CHANGED = "changed"
SYSTEM = "system"


class _Current:
    def __repr__(self) -> str:
        return "CURRENT_USER"


# Default for `actor`: the user of the current request (None outside requests = system).
CURRENT_USER = _Current()

AUDIT_MESSAGES: dict[str, str] = {
    AuditAction.CREATED: gettext_noop("%(object)s created"),
    AuditAction.UPDATED: gettext_noop("%(object)s changed: %(fields)s"),
    AuditAction.DELETED: gettext_noop("%(object)s deleted"),
}


@overload
def jsonable(value: dict[Any, Any]) -> dict[str, JSONValue]: ...
@overload
def jsonable(value: object) -> JSONValue: ...
def jsonable(value: object) -> JSONValue:
    """A value as JSON can hold it: model instances by their label, dates as ISO text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    return str(value)


def snapshot(obj: models.Model, fields: Iterable[str]) -> dict:
    """The current values of the named fields, for diff_fields."""
    return {name: getattr(obj, name, None) for name in fields}


def diff_fields(before: dict, after: dict, *, secret_fields: Iterable[str] = ("password",)) -> dict:
    """field -> [old, new] for every field that differs; a secret only as "changed".

    A field missing on one side counts as None (a creation diffs against {}).
    """
    secrets = set(secret_fields)
    changes: dict[str, object] = {}
    for name in [*before, *(key for key in after if key not in before)]:
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name in secrets:
            # Not even whether it was empty before: only that it changed.
            changes[name] = CHANGED
        else:
            changes[name] = [jsonable(old), jsonable(new)]
    return changes


def _actor_of(actor: User | _Current | None) -> User | None:
    if isinstance(actor, _Current):  # CURRENT_USER, its only instance
        return current_user()
    return actor


def _search_text(message: str, params: dict, *extra: str) -> str:
    # The message as every supported language renders it, so a search in the reader's
    # language finds it; plus the labels of user and object, details and changes. One
    # column with one trigram index answers the search box at millions of rows.
    texts = []
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            texts.append(render_message(message, params))
    return "\n".join(dict.fromkeys(text for text in [*texts, *extra] if text))


def log_event(
    *,
    category: str,
    message: str,
    level: str = Level.INFO,
    params: dict | None = None,
    actor: User | _Current | None = CURRENT_USER,
    obj: models.Model | None = None,
    object_label: str = "",
    details: dict | None = None,
    group: Group | int | None = None,
    audit_action: str = "",
    changes: dict | None = None,
    time: datetime.datetime | None = None,
    actor_label: str | None = None,
) -> LogEntry:
    """Write one entry. `message` is an English msgid (mark it with gettext_noop) with
    %(name)s placeholders filled from `params` when the entry is displayed. Without an
    actor the entry is the system's; `actor_label` overrides the name shown."""
    actor = _actor_of(actor)
    params = jsonable(params or {})
    entry = LogEntry(
        level=level,
        category=category,
        actor=actor,
        actor_label=(
            actor_label
            if actor_label is not None
            else actor.get_username()
            if actor is not None
            else SYSTEM
        ),
        message=message,
        params=params,
        details=jsonable(details or {}),
        audit_action=audit_action,
        changes=changes or {},
    )
    # A Group or its id (callers that hold only owner_group_id save a query).
    if isinstance(group, int):
        entry.group_id = group
    else:
        entry.group = group
    if time is not None:
        entry.time = time
    if obj is not None:
        entry.content_type = ContentType.objects.get_for_model(obj, for_concrete_model=False)
        entry.object_id = obj.pk
        entry.object_label = (object_label or str(obj))[:300]
    entry.search_text = _search_text(
        message,
        params,
        entry.actor_label,
        entry.object_label,
        json.dumps(entry.details, ensure_ascii=False) if entry.details else "",
        json.dumps(entry.changes, ensure_ascii=False) if entry.changes else "",
    )
    # The references come from objects in hand: checking that they exist would cost a
    # query each, per entry (a bulk resend of 1,000 mails writes 1,000 entries).
    entry.full_clean(exclude=["actor", "content_type", "group"])
    entry.save()
    return entry


def log_scheduler_event(*, message: str, level: str = Level.INFO, **kwargs: Any) -> LogEntry:
    """log_event for the scheduler (actions app): runs, skipped recipients, missed slots."""
    return log_event(category=Category.SCHEDULER, message=message, level=level, **kwargs)


def log_audit(
    *,
    action: str,
    obj: models.Model,
    category: str = Category.CONFIGURATION,
    changes: dict | None = None,
    actor: User | _Current | None = CURRENT_USER,
    group: Group | int | None = None,
    object_label: str = "",
) -> LogEntry:
    """Record that obj was created, updated or deleted, with which fields changed how.

    Call it inside the service's transaction (a rolled-back change leaves no entry); for
    a deletion call it before the delete, while obj still has its primary key.
    """
    changes = changes or {}
    return log_event(
        category=category,
        level=Level.INFO,
        message=AUDIT_MESSAGES[action],
        params={
            "object": object_label or str(obj),
            "fields": ", ".join(changes),
        },
        actor=actor,
        obj=obj,
        object_label=object_label,
        group=group,
        audit_action=action,
        changes=changes,
    )


TRANSPORT_CHECK_MESSAGES = {
    ("test", True): gettext_noop("Connection test of %(object)s succeeded"),
    ("test", False): gettext_noop("Connection test of %(object)s failed"),
    ("test_mail", True): gettext_noop("Test mail through %(object)s to %(recipient)s accepted"),
    ("test_mail", False): gettext_noop("Test mail through %(object)s to %(recipient)s failed"),
}


def log_transport_check(
    *,
    configuration: SmtpConfiguration,
    kind: str,
    report: ConnectionReport,
    recipient: str = "",
) -> LogEntry:
    """A connection test ("test") or test mail ("test_mail") of an SMTP configuration and
    its outcome. smtpconfig.transport has redacted the password from the report's texts
    (a server may quote it in a reply)."""
    return log_event(
        category=Category.CONFIGURATION,
        level=Level.INFO if report.ok else Level.WARNING,
        message=TRANSPORT_CHECK_MESSAGES[(kind, bool(report.ok))],
        params={"object": configuration.name, "recipient": recipient},
        obj=configuration,
        details={
            "verdict": str(report.verdict),
            "reply_code": report.reply_code,
            "reply_text": report.reply_text,
            "duration_ms": round(report.duration * 1000),
        },
    )


OUTBOX_MESSAGES = {
    "resend": gettext_noop("Mail “%(subject)s” to %(recipient)s queued to be sent again"),
    "cancel": gettext_noop("Mail “%(subject)s” to %(recipient)s cancelled"),
    "delete": gettext_noop("Mail “%(subject)s” to %(recipient)s deleted"),
}


def log_outbox_action(*, message: OutboxMessage, action: str) -> LogEntry:
    """A resend, cancel or delete of an outbox mail ("resend" | "cancel" | "delete").
    Enqueueing is deliberately not logged per mail: the outbox itself records it."""
    return log_event(
        category=Category.DELIVERY,
        level=Level.INFO,
        message=OUTBOX_MESSAGES[action],
        params={"subject": message.subject, "recipient": message.recipient},
        obj=message,
        group=message.owner_group_id,
        details={"status": message.status, "message_id": message.message_id},
    )
