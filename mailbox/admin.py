from django.contrib import admin

from mailbox.models import DeliveryAttempt, OutboxAttachment, OutboxMessage


class ReadOnlyAdminMixin:
    """Look, never touch: mails change only through the services (status machine, files)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AttachmentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OutboxAttachment
    fields = (
        "filename",
        "content_type",
        "size",
        "exported",
        "download_count",
        "last_downloaded_at",
    )
    readonly_fields = fields
    extra = 0
    show_change_link = False


class AttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DeliveryAttempt
    fields = ("started_at", "outcome", "reply_code", "reply_text", "duration_ms", "worker")
    readonly_fields = fields
    extra = 0


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("subject", "recipient", "status", "source", "created_at", "sent_at")
    list_filter = ("status", "source", "attachment_type")
    search_fields = ("recipient", "subject", "message_id")
    # The admin's change list counts all rows by default; the outbox can hold millions.
    show_full_result_count = False
    inlines = (AttachmentInline, AttemptInline)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]
