from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from calmail.common.mailtypes import AttachmentType, ExportType
from inventory.models import DueFilter, Language, default_language
from inventory.selectors import DEFAULT_DUE_WINDOW_DAYS
from templates_app.reports import registry
from templates_app.reports.registry import TemplateType

__all__ = [
    "AddAttachment",
    "CsvSeparator",
    "MailTemplate",
    "MailTemplateTranslation",
    "TemplateExportType",
    "TemplateType",
]

MAX_DUE_WINDOW_DAYS = 3650


class AddAttachment(models.TextChoices):
    """5.6.3 "Anhang hinzufügen": nothing, or the template's report as a file or link."""

    NONE = "none", _("none")
    REPORT = "report", _("report")


class TemplateExportType(models.TextChoices):
    """The export types (calmail.common.mailtypes.ExportType) a report can be made as."""

    EXCEL = ExportType.EXCEL.value, ExportType.EXCEL.label
    PDF_HTML = ExportType.PDF_HTML.value, ExportType.PDF_HTML.label
    CSV = ExportType.CSV.value, ExportType.CSV.label


class CsvSeparator(models.TextChoices):
    SEMICOLON = ";", _("semicolon (;), for Excel with German settings")
    COMMA = ",", _("comma (,)")


class MailTemplate(models.Model):
    """Vorlage (5.6.3): what a mail says and which report it carries.

    The texts per language live in MailTemplateTranslation; the default language's
    translation is the fallback for recipients whose language the template lacks.
    """

    name = models.CharField(_("name"), max_length=200, unique=True)
    template_type = models.CharField(
        _("type"), max_length=20, choices=TemplateType.choices, default=TemplateType.INVENTORY
    )
    description = models.CharField(_("description"), max_length=500, blank=True)
    add_attachment = models.CharField(
        _("add attachment"),
        max_length=10,
        choices=AddAttachment.choices,
        default=AddAttachment.NONE,
        help_text=_("Attach the report to the mail (as a file or a download link)."),
    )
    empty_attachment_allowed = models.BooleanField(
        _("empty attachment allowed"),
        default=False,
        help_text=_(
            "Attach the report even when it has no rows. Otherwise such a mail has no attachment."
        ),
    )
    due_filter = models.CharField(
        _("filter"), max_length=12, choices=DueFilter.choices, default=DueFilter.ALL
    )
    due_window_days = models.PositiveSmallIntegerField(
        _("due window (days)"),
        default=DEFAULT_DUE_WINDOW_DAYS,
        validators=[MinValueValidator(0), MaxValueValidator(MAX_DUE_WINDOW_DAYS)],
        help_text=_("“Due” means due from today up to this many days ahead."),
    )
    report = models.CharField(
        _("report name"),
        max_length=100,
        blank=True,
        help_text=_(
            "The report whose rows the mail lists and attaches. Only reports of the template's type fit."
        ),
    )
    from_email = models.EmailField(
        _("from"),
        blank=True,
        help_text=_("Empty: the sender of the SMTP configuration the mail goes through."),
    )
    from_name = models.CharField(_("from name"), max_length=200, blank=True)
    export_type = models.CharField(
        _("export type"),
        max_length=10,
        choices=TemplateExportType.choices,
        default=TemplateExportType.EXCEL,
    )
    attachment_type = models.CharField(
        _("attachment type"),
        max_length=4,
        choices=AttachmentType.choices,
        default=AttachmentType.FILE,
        help_text=_("A file in the mail, or a signed download link that expires."),
    )
    csv_separator = models.CharField(
        _("CSV separator"),
        max_length=1,
        choices=CsvSeparator.choices,
        default=CsvSeparator.SEMICOLON,
    )
    default_language = models.CharField(
        _("default language"),
        max_length=2,
        choices=Language.choices,
        default=default_language,
        help_text=_("Used for recipients whose language the template has no text for."),
    )
    owner_group = models.ForeignKey(
        Group,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("owner group"),
        help_text=_(
            "Members of this group manage the template. Empty: only administrators change it; everyone with access sees it."
        ),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("template")
        verbose_name_plural = _("templates")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(due_window_days__lte=MAX_DUE_WINDOW_DAYS),
                name="templates_app_due_window_range",
            )
        ]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.report:
            try:
                report = registry.get(self.report)
            except registry.ReportNotFound:
                errors["report"] = _("There is no report “%(report)s”.") % {"report": self.report}
            else:
                if report.template_type != self.template_type:
                    errors["report"] = _(
                        "The report “%(report)s” is not a report of the type %(type)s."
                    ) % {"report": report.title, "type": self.get_template_type_display()}
        if self.add_attachment == AddAttachment.REPORT and not self.report:
            errors["report"] = _("Choose the report to attach.")
        if errors:
            raise ValidationError(errors)

    @property
    def report_provider(self):
        """The registered report, or None (no report chosen, or no longer registered)."""
        if not self.report:
            return None
        try:
            return registry.get(self.report)
        except registry.ReportNotFound:
            return None

    @property
    def report_label(self) -> str:
        provider = self.report_provider
        if provider is not None:
            return str(provider.title)
        return self.report


class MailTemplateTranslation(models.Model):
    """A template's texts in one language.

    A row per language (rather than columns per language) keeps "this language is missing"
    a plain fact and lets an installation add a language without a migration.
    """

    template = models.ForeignKey(
        MailTemplate,
        on_delete=models.CASCADE,
        related_name="translations",
        verbose_name=_("template"),
    )
    language = models.CharField(_("language"), max_length=2, choices=Language.choices)
    subject = models.CharField(_("subject"), max_length=998)
    body_html = models.TextField(_("HTML body"), blank=True)
    body_text = models.TextField(
        _("text body"),
        blank=True,
        help_text=_("Empty: the text part is made from the HTML body."),
    )

    class Meta:
        verbose_name = _("template text")
        verbose_name_plural = _("template texts")
        ordering = ["template", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "language"], name="templates_app_one_text_per_language"
            )
        ]

    def __str__(self):
        return f"{self.template} ({self.language})"
