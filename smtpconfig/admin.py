from django.contrib import admin

from smtpconfig.models import SmtpConfiguration


@admin.register(SmtpConfiguration)
class SmtpConfigurationAdmin(admin.ModelAdmin):
    """Read-mostly admin for superusers; the password is neither shown nor editable here."""

    list_display = (
        "name",
        "is_default",
        "mailer",
        "host",
        "port",
        "security",
        "smtp_auth",
        "username",
    )
    search_fields = ("name", "host", "username")
    exclude = ("password",)
    readonly_fields = ("is_default", "created_at", "updated_at")
