"""Writes to the outbox. enqueue() is the one way a mail gets in."""

import json
import logging
import mimetypes
import random
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr
from typing import TYPE_CHECKING, Any

import psycopg
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.mail.message import make_msgid
from django.core.validators import validate_email
from django.db import IntegrityError, OperationalError, connections, router, transaction
from django.db.models import Field, Model
from django.db.models.constants import OnConflict
from django.db.models.fields.files import FieldFile
from django.db.models.sql import InsertQuery
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from calmail.common.mailtypes import AttachmentSpec

if TYPE_CHECKING:
    # For the annotation only: the outbox stands below actions (docs/architecture.md).
    from actions.models import Action
from mailbox import mime
from mailbox.dispatch import dispatch_delivery
from mailbox.links import attachment_url
from mailbox.models import (
    AddressType,
    AttachmentType,
    OutboxAttachment,
    OutboxMessage,
    Source,
    Status,
)
from mailbox.transitions import InvalidTransition, delete_refusal, resend_refusal, transition
from maillog.services import log_outbox_action
from smtpconfig.models import SmtpConfiguration
from smtpconfig.selectors import smtp_configuration_default

logger = logging.getLogger(__name__)
_jitter = random.Random()  # noqa: S311

# Mails per INSERT (and per commit outside a transaction): about 36 parameters each stay
# far below SQLite's and PostgreSQL's limits, and a chunk's delivery starts while the
# next is built.
ENQUEUE_CHUNK_SIZE = 500

# RFC 5322 2.2: printable ASCII but the colon, no space.
_HEADER_NAME = re.compile(r"[!-9;-~]+")

# Said alike wherever a header value is checked (compose forms, enqueue).
HEADER_INJECTION_MESSAGE = gettext_lazy(
    "Line breaks are not allowed here (they could inject mail headers)."
)


def _check_no_line_breaks(field: str, value: str, errors: dict) -> None:
    if "\r" in value or "\n" in value:
        errors.setdefault(field, []).append(HEADER_INJECTION_MESSAGE)


def _clean_addresses(
    field: str, addresses: Iterable[str], errors: dict, valid: set[str] | None = None
) -> list[str]:
    """The addresses, stripped and checked; ``valid`` remembers good ones across a batch
    (the same sender on 20,000 mails is checked once)."""
    cleaned = []
    for address in addresses:
        address = (address or "").strip()
        if not address:
            continue
        if valid is not None and address in valid:
            cleaned.append(address)
            continue
        if "\r" in address or "\n" in address:
            errors.setdefault(field, []).append(
                _("“%(address)s” contains a line break.")
                % {"address": address.replace("\r", "").replace("\n", "⏎")}
            )
            continue
        named = _NAMED_ADDRESS.fullmatch(address)
        bare = named.group("address").strip() if named else address
        try:
            validate_email(bare)
        except ValidationError:
            errors.setdefault(field, []).append(
                _("“%(address)s” is not a valid e-mail address.") % {"address": address}
            )
            continue
        if named:
            # "Name <address>" keeps its display name in the header; stored as the
            # standard form (quoted where the name needs it).
            address = format_address(bare, named.group("name").strip().strip('"').strip())
        if valid is not None:
            valid.add(address)
        cleaned.append(address)
    return cleaned


# "Laura Peters <laura@example.com>": a display name before an address in angle brackets.
_NAMED_ADDRESS = re.compile(r"(?P<name>[^<>]*)<(?P<address>[^<>]+)>")


def format_address(address: str, name: str = "") -> str:
    """ "Name <address>" with the name quoted where it has to be, or the bare address.
    A non-ASCII name stays readable here; the mail's header encodes it."""
    if not name:
        return address
    if name.isascii():
        return formataddr((name, address))
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>'


def _check_attachments(attachments: Sequence[AttachmentSpec], errors: dict) -> None:
    limit = settings.CALMAIL_ATTACHMENT_MAX_BYTES
    for attachment in attachments:
        if len(attachment.content) > limit:
            errors.setdefault("attachments", []).append(
                _("%(name)s is %(size)s MB; at most %(limit)s MB are allowed.")
                % {
                    "name": attachment.filename,
                    "size": f"{len(attachment.content) / 1_000_000:.1f}",
                    "limit": f"{limit / 1_000_000:.0f}",
                }
            )
        if not attachment.filename or "/" in attachment.filename or "\\" in attachment.filename:
            errors.setdefault("attachments", []).append(
                _("“%(name)s” is not a valid file name.") % {"name": attachment.filename}
            )


@dataclass(frozen=True, kw_only=True)
class OutgoingMail:
    """One mail to queue: what enqueue() takes as keyword arguments, as a value that
    enqueue_many() takes by the thousand."""

    to: Sequence[str]
    subject: str
    body_text: str = ""
    body_html: str = ""
    from_email: str = ""
    from_name: str = ""
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    reply_to: Sequence[str] = ()
    headers: dict[str, str] | None = None
    attachments: Sequence[AttachmentSpec] = ()
    attachment_type: str = AttachmentType.FILE
    smtp_configuration: SmtpConfiguration | None = None
    source: str = Source.SYSTEM
    source_label: str = ""
    address_type: str = AddressType.ADDRESS
    recipient_owner: str = ""
    export_type: str = ""
    parameters: dict | None = None
    scheduled_at: datetime | None = None
    idempotency_key: str | None = None
    owner_group: Group | None = None
    created_by: User | None = None
    action: "Action | None" = None


class BatchValidationError(ValidationError):
    """enqueue_many(all_or_nothing=True) refused the batch: ``by_index`` holds each bad
    mail's ValidationError (one message per bad field) under its position."""

    def __init__(self, by_index: dict[int, ValidationError]):
        self.by_index = by_index
        super().__init__(
            [
                _("Mail %(number)s: %(errors)s")
                % {"number": index + 1, "errors": " ".join(error.messages)}
                for index, error in sorted(by_index.items())
            ]
        )


@dataclass
class EnqueueResult:
    """What enqueue_many() did, by the position of each mail in the input."""

    # The stored mail (new, or the one its idempotency key already named); None if refused.
    messages: list[OutboxMessage | None]
    # Why a mail was refused: one ValidationError per bad mail, one message per bad field.
    errors: dict[int, ValidationError]
    # How many mails were stored now (the rest of messages existed already).
    created: int = 0

    @property
    def stored(self) -> list[OutboxMessage]:
        return [message for message in self.messages if message is not None]


def enqueue_many(
    mails: Iterable[OutgoingMail],
    *,
    all_or_nothing: bool = False,
    chunk_size: int = ENQUEUE_CHUNK_SIZE,
) -> EnqueueResult:
    """Validate mails, store them with their attachments and have them delivered.

    Bad mails are reported in ``result.errors`` by position and the good ones are stored;
    with ``all_or_nothing`` one bad mail stores none and raises BatchValidationError.
    Mails go in chunks of ``chunk_size``: one lookup of idempotency keys, one multi-row
    INSERT (a key stored meanwhile by a concurrent caller is skipped by the database and
    its mail returned) and one insert of the chunk's attachment rows. Outside a
    transaction every chunk commits on its own, so delivery starts on the first chunk
    while the next ones are built; each commit nudges delivery once per configuration.
    A mail whose idempotency key is already stored (or occurs earlier in the batch) is
    not stored again: its position holds the stored mail, unchanged.
    """
    batch = _Batch(list(mails))
    chunks = [
        range(first, min(first + chunk_size, len(batch.mails)))
        for first in range(0, len(batch.mails), chunk_size)
    ]
    if all_or_nothing:
        with transaction.atomic():
            planned = [batch.plan(positions) for positions in chunks]
            for chunk in planned:
                batch.resolve_keys(chunk)
            if batch.result.errors:
                raise BatchValidationError(batch.result.errors)
            for chunk in planned:
                batch.store(chunk)
    else:
        for positions in chunks:
            chunk = batch.plan(positions)
            _write_chunk(batch, chunk)
    batch.share_keys()
    return batch.result


def _write_chunk(batch: "_Batch", chunk: "_Chunk") -> None:
    """One chunk in its own transaction: its known keys, its rows, their attachments."""
    with transaction.atomic(using=router.db_for_write(OutboxMessage)):
        batch.resolve_keys(chunk)
        batch.store(chunk)


def enqueue(**fields: Any) -> OutboxMessage:
    """Validate one mail (the fields of OutgoingMail), store it with its attachments and
    have it delivered after commit.

    Raises ValidationError with one message per bad field (each bad address named).
    With an idempotency_key that is already stored, returns that mail unchanged.
    """
    try:
        result = enqueue_many([OutgoingMail(**fields)], all_or_nothing=True)
    except BatchValidationError as exc:
        raise exc.by_index[0] from None
    message = result.messages[0]
    if message is None:  # all_or_nothing stores every mail or raises
        raise RuntimeError("enqueue_many() neither stored the mail nor refused it")
    return message


@dataclass
class _Chunk:
    """A chunk's mails once built: planned rows and refusals, by position."""

    positions: range
    # The unsaved row and its attachments (with their content).
    planned: dict[int, tuple[OutboxMessage, list[tuple[OutboxAttachment, bytes]]]]
    # Refused mails; a refusal stands unless the mail's key turns out to be stored.
    refused: dict[int, ValidationError]


class _Batch:
    """One enqueue_many() call: the mails, the result, and what chunks share.

    plan() validates and builds a chunk (Python only); resolve_keys() and store() write
    it. (Writing chunk N from a second connection while chunk N+1 was built measured no
    faster: the writer's parameter encoding holds the interpreter too.)"""

    def __init__(self, mails: list[OutgoingMail]):
        self.mails = mails
        self.result = EnqueueResult(messages=[None] * len(mails), errors={})
        # Positions whose key an earlier mail of the batch owns: they get that mail.
        self.same_key_as: dict[int, int] = {}
        self.first_with_key: dict[str, int] = {}
        self._default: SmtpConfiguration | None = None
        self._default_loaded = False
        self.now = timezone.now()
        self.valid_addresses: set[str] = set()

    def default_configuration(self) -> SmtpConfiguration | None:
        if not self._default_loaded:
            self._default = smtp_configuration_default()
            self._default_loaded = True
        return self._default

    def plan(self, positions: range) -> _Chunk:
        """Validate and build the chunk's mails, except those whose key an earlier mail
        of the batch owns. A refused mail owns no key: the next mail with it is built."""
        chunk = _Chunk(positions=positions, planned={}, refused={})
        for position in positions:
            key = self.mails[position].idempotency_key
            first = self.first_with_key.get(key) if key else None
            if first is not None:
                self.same_key_as[position] = first
                continue
            try:
                chunk.planned[position] = self._plan(self.mails[position])
            except ValidationError as exc:
                chunk.refused[position] = exc
                continue
            if key:
                self.first_with_key[key] = position
        return chunk

    def resolve_keys(self, chunk: _Chunk) -> None:
        """Mails whose key is stored already get that mail, unchanged (built or refused
        alike: a mail once stored is never checked again); the other refusals stand."""
        waiting: dict[str, list[int]] = {}
        for position in (*chunk.planned, *chunk.refused):
            key = self.mails[position].idempotency_key
            if key:
                waiting.setdefault(key, []).append(position)
        if waiting:
            for message in OutboxMessage.objects.filter(idempotency_key__in=list(waiting)):
                for position in waiting[message.idempotency_key or ""]:
                    self.result.messages[position] = message
                    chunk.planned.pop(position, None)
                    chunk.refused.pop(position, None)
        self.result.errors.update(chunk.refused)

    def store(self, chunk: _Chunk) -> None:
        """Insert the chunk's planned mails, then their attachments, and nudge delivery."""
        planned = sorted(chunk.planned.items())
        rows = [message for _position, (message, _files) in planned]
        inserted = _insert_retrying_deadlocks(rows)
        conflicting = [row.idempotency_key for row in rows if row.pk is None]
        existing = (
            {
                message.idempotency_key: message
                for message in OutboxMessage.objects.filter(idempotency_key__in=conflicting)
            }
            if conflicting
            else {}
        )
        attachments = []
        for position, (message, files) in planned:
            if message.pk is None:
                # A concurrent caller stored this key between the lookup and the insert.
                self.result.messages[position] = existing.get(message.idempotency_key)
                if self.result.messages[position] is None:
                    raise IntegrityError(f"Mail at position {position} was not stored.")
                continue
            self.result.messages[position] = message
            for attachment, content in files:
                attachment.message = message
                attachment.file.save(attachment.filename, ContentFile(content), save=False)
                attachments.append(attachment)
        if attachments:
            OutboxAttachment.objects.bulk_create(attachments)
        self.result.created += inserted
        for configuration_id in {
            row.smtp_configuration_id for row in rows if row.pk and row.status == Status.QUEUED
        }:
            _nudge_on_commit(configuration_id)

    def share_keys(self) -> None:
        """Positions whose key an earlier mail of the batch owns get that mail."""
        for position, first in self.same_key_as.items():
            self.result.messages[position] = self.result.messages[first]

    def _plan(
        self, mail: OutgoingMail
    ) -> tuple[OutboxMessage, list[tuple[OutboxAttachment, bytes]]]:
        """The validated, built, unsaved row; ValidationError with every bad field."""
        errors: dict[str, list[str]] = {}
        configuration = mail.smtp_configuration or self.default_configuration()
        if configuration is None:
            errors["smtp_configuration"] = [_("There is no SMTP configuration to send through.")]
        elif not configuration.is_active:
            # Deactivated: no new mail; what is queued already still goes out (delivery).
            errors["smtp_configuration"] = [
                _("The SMTP configuration %(name)s is deactivated; choose another one.")
                % {"name": configuration.name}
            ]
        from_email = (
            mail.from_email
            or (configuration.from_email if configuration else "")
            or settings.DEFAULT_FROM_EMAIL
        ).strip()
        [from_email] = _clean_addresses(
            "from_email", [from_email], errors, self.valid_addresses
        ) or [from_email]
        to = _clean_addresses("to", mail.to, errors, self.valid_addresses)
        cc = _clean_addresses("cc", mail.cc, errors, self.valid_addresses)
        bcc = _clean_addresses("bcc", mail.bcc, errors, self.valid_addresses)
        reply_to = _clean_addresses("reply_to", mail.reply_to, errors, self.valid_addresses)
        if not (to or cc or bcc) and "to" not in errors:
            errors["to"] = [_("Enter at least one recipient.")]
        if not mail.subject.strip():
            errors["subject"] = [_("Enter a subject.")]
        _check_no_line_breaks("subject", mail.subject, errors)
        _check_no_line_breaks("from_name", mail.from_name, errors)
        headers = {str(name): str(value) for name, value in (mail.headers or {}).items()}
        for name, value in headers.items():
            _check_no_line_breaks("headers", f"{name}{value}", errors)
            if not _HEADER_NAME.fullmatch(name) and "\n" not in name and "\r" not in name:
                errors.setdefault("headers", []).append(
                    _("“%(name)s” is not a valid header name.") % {"name": name}
                )
        _check_attachments(mail.attachments, errors)
        if mail.attachment_type not in AttachmentType.values:
            errors["attachment_type"] = [_("Unknown attachment type.")]
        _check_bounds(mail, errors)
        if errors:
            raise ValidationError(errors)

        now = self.now
        future = mail.scheduled_at is not None and mail.scheduled_at > now
        message = OutboxMessage(
            source=mail.source,
            source_label=mail.source_label,
            recipient=", ".join(to or cc or bcc)[:1000],
            recipient_owner=mail.recipient_owner,
            address_type=mail.address_type,
            attachment_count=len(mail.attachments),
            export_type=mail.export_type,
            parameters=mail.parameters or {},
            attachment_type=mail.attachment_type,
            exported_attachments=sum(1 for a in mail.attachments if a.exported),
            status=Status.SCHEDULED if future else Status.QUEUED,
            from_email=from_email,
            from_name=mail.from_name,
            to=to,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            subject=mail.subject,
            body_text=mail.body_text,
            body_html=mail.body_html,
            headers=headers,
            message_id=make_msgid(domain=from_email.rpartition("@")[2] or None),
            smtp_configuration=configuration,
            scheduled_at=mail.scheduled_at,
            next_attempt_at=mail.scheduled_at if future else now,
            idempotency_key=mail.idempotency_key or None,
            owner_group=mail.owner_group,
            created_by=mail.created_by,
            action=mail.action,
            created_at=now,
        )
        files = [(_attachment_row(spec, now), spec.content) for spec in mail.attachments]
        if mail.attachment_type == AttachmentType.LINK and files:
            _add_download_links(message, [attachment for attachment, _content in files])
        message.raw_message = mime.prebuilt(message)
        return message, files


def _column_field(name: str) -> Field:
    field = OutboxMessage._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"OutboxMessage.{name} is no column")
    return field


# Columns filled from the caller's values as they are: an over-long or unknown value is
# a refusal of its mail here, not a database error that fails the whole chunk.
_BOUNDS: dict[str, tuple[int | None, frozenset[str]]] = {
    field.name: (
        field.max_length,
        frozenset(str(key) for key, _label in field.choices or ()),
    )
    for field in (
        _column_field(name)
        for name in (
            "source",
            "source_label",
            "recipient_owner",
            "address_type",
            "export_type",
            "subject",
            "from_name",
            "idempotency_key",
        )
    )
}


def _check_bounds(mail: OutgoingMail, errors: dict) -> None:
    for name, (max_length, choices) in _BOUNDS.items():
        value = getattr(mail, name) or ""
        if choices and value and value not in choices:
            errors.setdefault(name, []).append(
                _("“%(value)s” is not a known value here.") % {"value": value[:50]}
            )
        elif max_length is not None and len(value) > max_length:
            errors.setdefault(name, []).append(
                _("At most %(limit)s characters are allowed here (%(length)s given).")
                % {"limit": max_length, "length": len(value)}
            )


def _attachment_row(spec: AttachmentSpec, now: datetime) -> OutboxAttachment:
    """The unsaved attachment row of a file; its file is written once the mail is stored."""
    content_type = (
        spec.content_type or mimetypes.guess_type(spec.filename)[0] or "application/octet-stream"
    )
    return OutboxAttachment(
        filename=spec.filename,
        content_type=content_type,
        size=len(spec.content),
        exported=spec.exported,
        created_at=now,
    )


def _add_download_links(message: OutboxMessage, attachments: list[OutboxAttachment]) -> None:
    """Attachment type "link": the files stay here; the mail carries signed, expiring URLs
    (signed over each attachment's uuid, so they exist before anything is stored)."""
    links = [(attachment.filename, attachment_url(attachment)) for attachment in attachments]
    heading = _("Downloads (valid for %(days)s days):") % {"days": settings.CALMAIL_LINK_TTL_DAYS}
    text_block = "\n".join([heading, *[f"- {name}: {url}" for name, url in links]])
    message.body_text = (
        f"{message.body_text.rstrip()}\n\n{text_block}\n"
        if message.body_text
        else text_block + "\n"
    )
    if message.body_html:
        items = "".join(
            format_html('<li><a href="{}">{}</a></li>', url, name) for name, url in links
        )
        message.body_html += format_html("<p>{}</p><ul>{}</ul>", heading, mark_safe(items))  # noqa: S308


# A deadlock between two callers inserting overlapping idempotency keys in a different
# order (PostgreSQL aborts one of them): the aborted INSERT runs again, up to this often.
DEADLOCK_ATTEMPTS = 5
_DEADLOCK = "40P01"


def _insert_retrying_deadlocks(rows: list[OutboxMessage]) -> int:
    """_insert_skipping_known_keys() in a savepoint, run again when PostgreSQL chose it as
    the victim of a deadlock: the other caller goes on and commits, and the next try skips
    the keys it stored. (Keys this transaction stored in an earlier chunk stay locked: a
    caller that needs all chunks in one transaction can still fail, with the error.)"""
    attempt = 1
    while True:
        try:
            with transaction.atomic():
                return _insert_skipping_known_keys(rows)
        except OperationalError as exc:
            if (
                getattr(exc.__cause__, "sqlstate", None) != _DEADLOCK
                or attempt == DEADLOCK_ATTEMPTS
            ):
                raise
            logger.info("An outbox insert was a deadlock's victim; try %s.", attempt + 1)
            # Not for security: two victims must not collide again in step.
            time.sleep(_jitter.uniform(0.01, 0.05) * attempt)
            attempt += 1


def _insert_skipping_known_keys(rows: list[OutboxMessage]) -> int:
    """Insert rows in one statement and give each its pk; returns how many were stored.

    A row whose idempotency key a concurrent caller stored meanwhile is skipped by the
    database (ON CONFLICT DO NOTHING; INSERT OR IGNORE on SQLite) and keeps pk None.
    Django's bulk_create() cannot say which rows it skipped, so the INSERT returns the
    Message-ID (unique, made here) of every row it did store.
    """
    if not rows:
        return 0
    meta = OutboxMessage._meta
    alias = router.db_for_write(OutboxMessage)
    db = connections[alias]
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    if db.vendor == "postgresql":
        returned = _insert_postgresql(db, fields, rows)
    else:
        objs: list[Model] = list(rows)
        query = InsertQuery(OutboxMessage, on_conflict=OnConflict.IGNORE)
        query.insert_values(fields, objs)
        compiler = query.get_compiler(using=alias)
        compiler.returning_fields = [meta.pk, meta.get_field("message_id")]
        [(sql, params)] = compiler.as_sql()
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            returned = cursor.fetchall()
    by_message_id = {row.message_id: row for row in rows}
    for pk, message_id in returned:
        row = by_message_id[message_id]
        row.pk = pk
        row._state.adding = False
        row._state.db = alias
    return len(returned)


# The session's staging table of enqueue_many() (PostgreSQL): temporary, emptied at commit.
_STAGE = "calmail_enqueue_stage"


def _insert_postgresql(db: Any, fields: list[Any], rows: list[OutboxMessage]) -> list[tuple]:
    """PostgreSQL: the chunk goes by COPY into a temporary table of the outbox's columns,
    and from there into the outbox with ON CONFLICT DO NOTHING … RETURNING.

    COPY formats the rows in psycopg's C code; the array parameters of an INSERT … SELECT
    FROM UNNEST (the way before) were escaped element by element in Python, a quarter of a
    plain mail's enqueue (measured: 4,900 → 6,000 mails/s). Django's bulk_create binds
    every value on the client, which at 500 rows of 36 columns costs more to parse than to
    insert. The table is created once per database session (temporary, its rows emptied at
    commit and after each chunk, so several chunks of one transaction never meet), and a
    rolled-back savepoint that created it just has it created again.
    """
    quote = db.ops.quote_name
    table = quote(OutboxMessage._meta.db_table)
    columns = ", ".join(quote(field.column) for field in fields)
    values = [_column_values(field, rows, db) for field in fields]
    db.ensure_connection()
    # Identifiers from the models only; every value goes through COPY.
    with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} ON COMMIT DELETE ROWS AS "  # noqa: S608
            f"SELECT {columns} FROM {table} WITH NO DATA"
        )
        with cursor.copy(f"COPY {_STAGE} ({columns}) FROM STDIN") as copy:
            for row in zip(*values, strict=True):
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {_STAGE} "  # noqa: S608
            "ON CONFLICT DO NOTHING "
            f"RETURNING {quote(OutboxMessage._meta.pk.column)}, {quote('message_id')}"
        )
        returned = cursor.fetchall()
        cursor.execute(f"TRUNCATE {_STAGE}")
        return returned


# Columns whose Python value psycopg takes as it is: read straight from the instances
# instead of through Field.get_db_prep_save(), which costs a few microseconds per value
# (x 36 columns x every mail). JSON and anything else go through Django.
_PLAIN_COLUMNS = {
    "BigIntegerField",
    "BinaryField",
    "CharField",
    "DateTimeField",
    "ForeignKey",
    "IntegerField",
    "PositiveIntegerField",
    "PositiveSmallIntegerField",
    "TextField",
}


def _column_values(field: Any, rows: list[OutboxMessage], db: Any) -> list[Any]:
    internal_type = field.get_internal_type()
    if internal_type in _PLAIN_COLUMNS and not getattr(field, "auto_now", False):
        name = field.attname
        return [getattr(row, name) for row in rows]
    if internal_type == "JSONField" and field.encoder is None:
        # The JSON text as Django would write it (json.dumps, no encoder), read by the
        # staging table's jsonb column: six JSON columns a mail, each through Field and a
        # psycopg Jsonb wrapper, cost more than the rest of the row.
        name = field.attname
        return [json.dumps(getattr(row, name)) for row in rows]
    return [field.get_db_prep_save(field.pre_save(row, True), db) for row in rows]


class _DeliveryNudge:
    """The after-commit callback that dispatches delivery for one configuration."""

    def __init__(self, configuration_id: int):
        self.configuration_id = configuration_id

    def __call__(self) -> None:
        dispatch_delivery(configuration_id=self.configuration_id)


def _nudge_on_commit(configuration_id: int) -> None:
    """Dispatch delivery after commit, once per configuration and transaction: a mail
    action enqueueing 20,000 mails publishes one task, not 20,000 (the engine drains the
    backlog and fans out to free connection slots). A rolled-back savepoint drops its
    callbacks, which is why this looks at the ones still registered."""
    registered = transaction.get_connection().run_on_commit
    for _savepoints, callback, _robust in registered:
        if isinstance(callback, _DeliveryNudge) and callback.configuration_id == configuration_id:
            return
    transaction.on_commit(_DeliveryNudge(configuration_id))


def message_resend(*, message: OutboxMessage) -> None:
    """A sent, failed or cancelled mail goes back to queued as a new delivery cycle."""
    refusal = resend_refusal(message)
    if refusal is not None:
        raise InvalidTransition(refusal, code="invalid_transition")
    now = timezone.now()
    transition(
        message,
        Status.QUEUED,
        attempt_count=0,
        next_attempt_at=now,
        error_message="",
        error_text={},
        sent_at=None,
        lease_expires_at=None,
        claimed_by="",
    )
    log_outbox_action(message=message, action="resend")
    _nudge_on_commit(message.smtp_configuration_id)


def message_cancel(*, message: OutboxMessage) -> None:
    """Scheduled, queued or deferred mail is not sent."""
    transition(message, Status.CANCELLED, next_attempt_at=None)
    log_outbox_action(message=message, action="cancel")


def _delete_files(files: list[FieldFile]) -> None:
    for file in files:
        if file.name:
            file.storage.delete(file.name)


def message_delete(*, message: OutboxMessage) -> None:
    """Delete a mail with its attachment files; one being sent right now is refused."""
    refusal = delete_refusal(message)
    if refusal is not None:
        raise InvalidTransition(refusal)
    files = [attachment.file for attachment in message.attachments.all()]
    log_outbox_action(message=message, action="delete")
    message.delete()
    # Remove files only once the rows are surely gone.
    transaction.on_commit(lambda: _delete_files(files))
