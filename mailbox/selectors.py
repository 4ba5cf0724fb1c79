"""Reads of the outbox: which mails a user may see."""

from uuid import UUID

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Prefetch, Q, QuerySet

from calmail.common.roles import is_administrator, team_groups
from mailbox.models import AttachmentType, DeliveryAttempt, OutboxAttachment, OutboxMessage

VIEW_PERMISSION = "mailbox.view_outboxmessage"
# The delivery attempts are a tab of the Log: whoever may read the Log reads them, for the
# mails they may see.
ATTEMPTS_PERMISSION = "maillog.view_logentry"


def outbox_message_list(*, user: User | AnonymousUser) -> QuerySet[OutboxMessage]:
    """Mails the user may see: administrators all; others with the view permission the mails
    of their team groups and the ones they created; everybody else none."""
    if not user.is_authenticated or not user.has_perm(VIEW_PERMISSION):
        return OutboxMessage.objects.none()
    messages = OutboxMessage.objects.all()
    if is_administrator(user):
        return messages
    return messages.filter(Q(owner_group__in=team_groups(user)) | Q(created_by=user))


def outbox_message_detail(*, user: User | AnonymousUser) -> QuerySet[OutboxMessage]:
    """The visible mails with everything the detail page shows, fetched in a fixed number of
    queries however many attachments and attempts a mail has."""
    return (
        outbox_message_list(user=user)
        .select_related("smtp_configuration", "owner_group", "created_by")
        .prefetch_related(
            Prefetch("attachments", queryset=OutboxAttachment.objects.order_by("id")),
            Prefetch(
                "attempts",
                queryset=DeliveryAttempt.objects.select_related("smtp_configuration").order_by(
                    "started_at", "id"
                ),
            ),
        )
    )


def outbox_attachment_visible(
    *, user: User | AnonymousUser, message_id: int, uuid: UUID | str
) -> QuerySet[OutboxAttachment]:
    """An attachment of a mail the user may see (empty if the mail is not visible)."""
    return OutboxAttachment.objects.filter(
        message__in=outbox_message_list(user=user).filter(pk=message_id).values("pk"),
        uuid=uuid,
    )


def outbox_link_attachment(*, uuid: UUID | str) -> OutboxAttachment | None:
    """The attachment behind a download link: only mails sent with links offer their files."""
    return (
        OutboxAttachment.objects.filter(uuid=uuid, message__attachment_type=AttachmentType.LINK)
        .only("pk", "file", "filename", "content_type", "size")
        .first()
    )


def delivery_attempt_list(*, user: User | AnonymousUser) -> QuerySet[DeliveryAttempt]:
    """Delivery attempts of the outbox mails the user may see."""
    if not user.is_authenticated or not user.has_perm(ATTEMPTS_PERMISSION):
        return DeliveryAttempt.objects.none()
    attempts = DeliveryAttempt.objects.all()
    if is_administrator(user):
        return attempts
    return attempts.filter(message__in=outbox_message_list(user=user).values("pk"))
