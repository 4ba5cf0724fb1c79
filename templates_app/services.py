"""Writes to templates, and the render service actions and compose call.

render_for_recipient() is the one way a template becomes a mail: it picks the language,
builds the report for the recipient's scope through the report registry, exports it,
and renders subject and bodies in the restricted engine over plain data.
"""

import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import EllipsisType

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.db.models import ProtectedError, prefetch_related_objects
from django.db.models.deletion import Collector
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from calmail.common.mailtypes import AttachmentSpec, AttachmentType
from inventory.models import Language
from inventory.recipients import Recipient
from inventory.selectors import ScopeKind, scope_labels
from maillog.models import AuditAction, Category
from maillog.services import CHANGED, diff_fields, log_audit, snapshot
from templates_app import rendering
from templates_app.models import AddAttachment, MailTemplate, MailTemplateTranslation
from templates_app.placeholders import placeholder_names
from templates_app.reports import ReportData
from templates_app.reports.exporters import export_report, filter_description, report_filename
from templates_app.reports.registry import reports_built_ahead
from templates_app.selectors import recipient_details, recipients_details

EDITABLE_FIELDS = (
    "name",
    "template_type",
    "description",
    "add_attachment",
    "empty_attachment_allowed",
    "due_filter",
    "due_window_days",
    "report",
    "from_email",
    "from_name",
    "export_type",
    "attachment_type",
    "csv_separator",
    "default_language",
    "owner_group",
)
TEXT_FIELDS = ("subject", "body_html", "body_text")
LANGUAGES = tuple(Language.values)


# --- who uses a template --------------------------------------------------------------------


def template_usages(template: MailTemplate) -> list[str]:
    """Labels of what keeps the template from being deleted, sorted: the rows that refer to
    it with on_delete=PROTECT (the actions that send it), found as Django's delete finds
    them."""
    collector = Collector(using=router.db_for_write(MailTemplate, instance=template))
    try:
        collector.collect([template])
    except ProtectedError as exc:
        return sorted({str(obj) for obj in exc.protected_objects})
    return []


def _usage_refusal(template: MailTemplate, users: list[str]) -> ValidationError:
    shown = ", ".join(users[:10]) + (" …" if len(users) > 10 else "")
    return ValidationError(
        _("%(name)s is used by: %(users)s. Change those first, then delete the template.")
        % {"name": template.name, "users": shown},
        code="in_use",
    )


# --- checks ---------------------------------------------------------------------------------


def _present(texts: Mapping[str, str]) -> bool:
    return any((texts.get(name) or "").strip() for name in TEXT_FIELDS)


def validate_texts(
    *, template_type: str, default_language: str, translations: Mapping[str, Mapping[str, str]]
) -> None:
    """Each language given needs a subject and a body; the default language must be given;
    every text must compile in the restricted engine and use only the type's placeholders.

    Errors are keyed "<field>_<language>" (subject_de, body_html_en, …), as the form names
    its fields. Messages name the line of the problem.
    """
    errors: dict[str, list[str]] = {}
    names = placeholder_names(template_type)
    for language in LANGUAGES:
        texts = translations.get(language) or {}
        if not _present(texts):
            if language == default_language:
                errors.setdefault(f"subject_{language}", []).append(
                    _("The default language needs a subject and a body.")
                )
            continue
        if not (texts.get("subject") or "").strip():
            errors.setdefault(f"subject_{language}", []).append(_("Enter a subject."))
        if not ((texts.get("body_html") or "").strip() or (texts.get("body_text") or "").strip()):
            errors.setdefault(f"body_html_{language}", []).append(
                _("Enter an HTML body or a text body.")
            )
        for name in TEXT_FIELDS:
            problems = rendering.check_template(texts.get(name) or "", placeholders=names)
            if problems:
                errors.setdefault(f"{name}_{language}", []).extend(problems)
    if errors:
        raise ValidationError(errors)


# --- create, update, duplicate, delete ------------------------------------------------------


def _apply(template: MailTemplate, values: Mapping) -> list[str]:
    changed = []
    for name in EDITABLE_FIELDS:
        if name in values and getattr(template, name) != values[name]:
            setattr(template, name, values[name])
            changed.append(name)
    return changed


def _save_translations(
    template: MailTemplate, translations: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """Store the texts per language; a language left empty is removed. Returns the
    changed field names ("subject_de", …)."""
    existing = {obj.language: obj for obj in template.translations.all()}
    changed: list[str] = []
    for language in LANGUAGES:
        texts = translations.get(language) or {}
        current = existing.get(language)
        if not _present(texts):
            if current is not None:
                current.delete()
                changed.extend(f"{name}_{language}" for name in TEXT_FIELDS)
            continue
        obj = current or MailTemplateTranslation(template=template, language=language)
        for name in TEXT_FIELDS:
            value = texts.get(name) or ""
            if name == "subject":
                value = " ".join(value.split())
            if getattr(obj, name) != value:
                setattr(obj, name, value)
                changed.append(f"{name}_{language}")
        obj.full_clean(exclude=["template"])
        obj.save()
    return changed


@transaction.atomic
def mail_template_create(
    *, values: Mapping, translations: Mapping[str, Mapping[str, str]]
) -> MailTemplate:
    """Create a template with its texts. ValidationError (field errors, line numbers in
    template errors) when anything does not fit."""
    template = MailTemplate()
    _apply(template, values)
    _validate(template, translations)
    template.save()
    text_changes = _save_translations(template, translations)
    _audit(template, AuditAction.CREATED, {}, text_changes)
    return template


@transaction.atomic
def mail_template_update(
    *, template: MailTemplate, values: Mapping, translations: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """Update a template and its texts; returns the names of the changed fields."""
    before = snapshot(template, EDITABLE_FIELDS)
    changed = _apply(template, values)
    _validate(template, translations)
    template.save()
    text_changes = _save_translations(template, translations)
    changed += text_changes
    _audit(template, AuditAction.UPDATED, before, text_changes)
    return changed


def _audit(template: MailTemplate, action: str, before: dict, text_changes: list[str]) -> None:
    # Texts can be long: the trail says which ones changed, not their whole content.
    changes = diff_fields(before, snapshot(template, EDITABLE_FIELDS))
    changes.update(dict.fromkeys(text_changes, CHANGED))
    if changes or action != AuditAction.UPDATED:
        log_audit(
            action=action,
            obj=template,
            category=Category.TEMPLATE,
            changes=changes,
            group=template.owner_group_id,
        )


def _validate(template: MailTemplate, translations: Mapping[str, Mapping[str, str]]) -> None:
    errors: dict[str, list] = {}
    try:
        template.full_clean()
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        validate_texts(
            template_type=template.template_type,
            default_language=template.default_language,
            translations=translations,
        )
    except ValidationError as exc:
        for key, messages in exc.message_dict.items():
            errors.setdefault(key, []).extend(messages)
    if errors:
        raise ValidationError(errors)


def texts_of(template: MailTemplate) -> dict[str, dict[str, str]]:
    return {
        obj.language: {name: getattr(obj, name) for name in TEXT_FIELDS}
        for obj in template.translations.all()
    }


def copy_name(name: str) -> str:
    """A free name for a copy: "Name (copy)", then "Name (copy 2)", …"""
    max_length = MailTemplate._meta.get_field("name").max_length or 200
    # Not f-strings: gettext's extractor does not look inside one.
    suffix = " " + _("(copy)")
    number = 2
    while True:
        candidate = name[: max_length - len(suffix)] + suffix
        if not MailTemplate.objects.filter(name=candidate).exists():
            return candidate
        suffix = " " + _("(copy %(number)s)") % {"number": number}
        number += 1


@transaction.atomic
def mail_template_duplicate(
    *,
    template: MailTemplate,
    name: str | None = None,
    owner_group: Group | EllipsisType | None = ...,
) -> MailTemplate:
    """A copy with every setting and text; the owner group is kept unless one is given."""
    values = {name_: getattr(template, name_) for name_ in EDITABLE_FIELDS}
    values["name"] = name or copy_name(template.name)
    if owner_group is not ...:
        values["owner_group"] = owner_group
    return mail_template_create(values=values, translations=texts_of(template))


@transaction.atomic
def mail_template_delete(*, template: MailTemplate) -> None:
    """Delete a template; refused with a reason while an action (anything that protects
    it) uses it. The refusal rolls the audit entry back with the transaction."""
    log_audit(
        action=AuditAction.DELETED,
        obj=template,
        category=Category.TEMPLATE,
        group=template.owner_group_id,
    )
    try:
        template.delete()
    except ProtectedError as exc:
        raise _usage_refusal(
            template, sorted({str(obj) for obj in exc.protected_objects})
        ) from None


# --- rendering ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedMail:
    """A template rendered for one recipient: everything the outbox needs.

    attachments holds the report export (AttachmentSpec, exported=True) unless it was left
    out; attachment_skipped says why it was (empty report not allowed, no report for the
    recipient's scope) for the caller's decision and log. With attachment type "link" the
    outbox stores the same files and sends signed links instead.
    """

    subject: str
    body_html: str
    body_text: str
    language: str
    from_email: str
    from_name: str
    attachment_type: str
    export_type: str
    row_count: int | None
    attachments: list[AttachmentSpec] = field(default_factory=list)
    attachment_filename: str = ""
    attachment_skipped: str = ""
    language_fallback: bool = False
    parameters: dict = field(default_factory=dict)

    @property
    def has_attachment(self) -> bool:
        return bool(self.attachments)


def choose_language(
    *, available: set[str], default_language: str, wanted: str | None
) -> tuple[str, bool]:
    """The language to write in and whether it is a fallback: the wanted (recipient's)
    language if the template has it, else the default language; without a wish (a typed
    address) the default language, which is no fallback."""
    if wanted and wanted in available:
        return wanted, False
    if default_language in available:
        return default_language, bool(wanted)
    if available:
        return sorted(available)[0], True
    raise rendering.TemplateRenderError(_("The template has no texts in any language."))


def _plain_report(report: ReportData | None) -> dict:
    if report is None:
        return {"title": "", "filter": "", "columns": []}
    return {
        "title": report.title,
        "filter": filter_description(report),
        "columns": [
            {"key": column.key, "label": header}
            for column, header in zip(report.columns, report.headers(), strict=True)
        ],
    }


def render_for_recipient(
    *,
    template: MailTemplate,
    recipient: Recipient,
    today: datetime.date | None = None,
    link_builder: Callable[[str], str] | None = None,
    language: str | None = None,
    export: bool = True,
    details: dict | None = None,
    scope_label: str | None = None,
) -> RenderedMail:
    """Render a template for one recipient.

    - language: the recipient's if the template has it, else the template's default
      (`language` overrides the recipient's wish, e.g. in the preview);
    - report: built for the recipient's scope and the template's filter, through the
      report registry; empty reports are detected before any export;
    - attachment ("add attachment" = report): exported as the template's export type;
      an empty report is attached only if "empty attachment allowed", otherwise
      attachment_skipped gives the reason; a recipient whose scope is "no report" gets no
      attachment either (rows and count are empty); export=False skips making the file
      (the preview page only names it);
    - {{ link }}: link_builder(file name) when the attachment goes as a link and the
      caller can say where it will be (else empty; the outbox adds its links anyway).
    - details: the recipient's customer/user data as templates_app.selectors
      .recipient_details gives it, when the caller already has it (a fan-out loads its
      customers in one query per chunk rather than one per recipient).
    - scope_label: what the recipient's report covers in words (inventory.selectors
      .scope_labels), when the caller has it; the parameters carry it as report_scope.

    Raises rendering.TemplateRenderError with a message for the user when a text cannot be
    rendered, or the report is no longer registered.
    """
    today = today or timezone.localdate()
    translations = {obj.language: obj for obj in template.translations.all()}
    chosen, fallback = choose_language(
        available=set(translations),
        default_language=template.default_language,
        wanted=language or recipient.language,
    )
    texts = translations[chosen]
    # Messages for the person sending (errors, skip reasons) stay in their language;
    # only what the recipient reads is made in the mail's language.
    provider = template.report_provider if template.report else None
    if template.report and provider is None:
        raise rendering.TemplateRenderError(
            _("The report “%(report)s” is not available.") % {"report": template.report}
        )
    empty_report_skipped = no_report_skipped = False
    with translation.override(chosen):
        report = None
        if provider is not None:
            report = provider.build(
                scope=recipient.scope,
                due_filter=template.due_filter,
                window_days=template.due_window_days,
                today=today,
            )

        attachments: list[AttachmentSpec] = []
        filename = ""
        skipped = ""
        if template.add_attachment == AddAttachment.REPORT and report is not None:
            if recipient.scope.kind == ScopeKind.NONE:
                no_report_skipped = True
            elif report.is_empty and not template.empty_attachment_allowed:
                empty_report_skipped = True
            else:
                filename = report_filename(report.title, today, template.export_type)
                if export:
                    attachments.append(
                        export_report(
                            report,
                            export_type=template.export_type,
                            recipient_label=recipient.owner or recipient.formatted,
                            csv_separator=template.csv_separator,
                        )
                    )

        link = ""
        if (
            filename
            and template.attachment_type == AttachmentType.LINK
            and link_builder is not None
        ):
            link = link_builder(filename)

        if details is None:
            details = recipient_details(recipient)
        data = {
            "recipient": {
                "name": recipient.name,
                "email": recipient.email,
                "language": recipient.language or "",
                "owner": recipient.owner,
                "address_type": str(recipient.address_type),
            },
            "customer": details["customer"],
            "user": details["user"],
            "count": report.count if report is not None else 0,
            "rows": report.rows if report is not None else [],
            "report": _plain_report(report),
            "link": link,
            "today": today,
            "due_window_days": template.due_window_days,
            "due_until": today + datetime.timedelta(days=template.due_window_days),
            "sender": {"name": template.from_name, "email": template.from_email},
            "template": {"name": template.name, "description": template.description},
        }
        subject = rendering.render_subject(texts.subject, data)
        body_html = rendering.render_html(texts.body_html, data) if texts.body_html else ""
        if texts.body_text.strip():
            body_text = rendering.render_text(texts.body_text, data)
        else:
            body_text = rendering.html_to_text(body_html)

    if empty_report_skipped:
        skipped = _("The report is empty and the template attaches no empty report.")
    elif no_report_skipped:
        skipped = _("There is no report for this recipient (report scope: no report).")

    parameters = {
        "template": template.name,
        "language": chosen,
        "filter": template.due_filter,
        "due_window_days": template.due_window_days,
    }
    if report is not None:
        if scope_label is None:
            scope_label = scope_labels([recipient.scope])[recipient.scope]
        parameters.update(
            report=report.key,
            rows=report.count,
            scope=str(recipient.scope),
            # The same in words, for the outbox and the run history.
            report_scope=scope_label,
        )
    return RenderedMail(
        subject=subject,
        body_html=body_html,
        body_text=body_text,
        language=chosen,
        from_email=template.from_email,
        from_name=template.from_name,
        attachment_type=template.attachment_type,
        export_type=template.export_type if filename else "",
        row_count=report.count if report is not None else None,
        attachments=attachments,
        attachment_filename=filename,
        attachment_skipped=skipped,
        language_fallback=fallback,
        parameters=parameters,
    )


# --- a chunk of recipients -----------------------------------------------------------------


def render_for_recipients(
    template: MailTemplate,
    recipients: Sequence[Recipient],
    today: datetime.date | None = None,
    details_by_recipient: Mapping[Recipient, dict | None] | None = None,
    *,
    link_builder: Callable[[str], str] | None = None,
) -> list["RenderedMail | rendering.TemplateRenderError"]:
    """render_for_recipient() for each of a chunk of recipients, in their order: the
    rendered mail, or the rendering.TemplateRenderError that recipient's render raised (other
    errors propagate). The mails are those render_for_recipient() makes one by one.

    Shared work is done once for the chunk: the template's texts are read once, the
    report rows of all the chunk's customers (or users) are read with one query per
    language (the report's provider's build_many()), and the customer/user details
    missing from details_by_recipient (or all, without it) with one query per kind.
    details_by_recipient maps a recipient to what templates_app.selectors
    .recipient_details() gives for it (None: load it here).

    Meant for chunks of about a hundred recipients: the chunk's report rows are held
    until it is done (up to the provider's bound; the rest are read one by one).
    """
    today = today or timezone.localdate()
    prefetch_related_objects([template], "translations")
    details = _details_of_many(recipients, details_by_recipient or {})
    # One query for the chunk's chosen customers (if any), not one per recipient.
    labels = scope_labels(recipient.scope for recipient in recipients)
    results: list[RenderedMail | rendering.TemplateRenderError] = []
    with reports_built_ahead() as ahead:
        provider = template.report_provider if template.report else None
        available = {texts.language for texts in template.translations.all()}
        if provider is not None and available:
            scopes_by_language: dict[str, list] = {}
            for recipient in recipients:
                language, _fallback = choose_language(
                    available=available,
                    default_language=template.default_language,
                    wanted=recipient.language,
                )
                scopes_by_language.setdefault(language, []).append(recipient.scope)
            for language, scopes in scopes_by_language.items():
                # The rows' texts ("overdue") in the language each mail is written in.
                with translation.override(language):
                    ahead.add(
                        provider,
                        scopes=scopes,
                        due_filter=template.due_filter,
                        window_days=template.due_window_days,
                        today=today,
                    )
        for recipient in recipients:
            try:
                results.append(
                    render_for_recipient(
                        template=template,
                        recipient=recipient,
                        today=today,
                        link_builder=link_builder,
                        details=details[recipient],
                        scope_label=labels[recipient.scope],
                    )
                )
            except rendering.TemplateRenderError as exc:
                results.append(exc)
    return results


def _details_of_many(
    recipients: Sequence[Recipient], given: Mapping[Recipient, dict | None]
) -> dict[Recipient, dict]:
    """The details given for a recipient, and recipients_details() for the rest."""
    missing = [recipient for recipient in recipients if given.get(recipient) is None]
    details = recipients_details(missing) if missing else {}
    result: dict[Recipient, dict] = {}
    for recipient in recipients:
        known = given.get(recipient)
        result[recipient] = details[recipient] if known is None else known
    return result
