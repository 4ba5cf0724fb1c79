from django.contrib import admin

from smtpconfig.models import SmtpConfiguration


@admin.register(SmtpConfiguration)
class SmtpConfigurationAdmin(admin.ModelAdmin):
    """Read-mostly admin for superusers; no secret (password, OAuth secrets) is shown or editable here."""

    list_display = (
        "name",
        "is_default",
        "mailer",
        "host",
        "port",
        "security",
        "smtp_auth",
        "auth_method",
        "username",
    )
    search_fields = ("name", "host", "username")
    exclude = ("password", "oauth_client_secret", "oauth_certificate", "oauth_service_account")
    readonly_fields = ("is_default", "created_at", "updated_at")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "oauth_token_url":
            # Token endpoints are HTTPS; Django 6 will assume so, say it now.
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)
