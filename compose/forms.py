"""The compose form. It is lenient when a draft is saved (a draft keeps whatever was typed)
and strict for preview and sending; uploaded files are always checked, because a refused
file cannot be kept."""

import json
from functools import partial

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Field, Fieldset, Layout
from django import forms
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from calmail.common.html import sanitise_body_html
from calmail.common.roles import team_groups
from calmail.common.widgets import RecipientPicker
from compose import selectors
from compose.models import Draft, SendMode
from compose.services import file_refusal, max_files
from inventory.recipients import (
    check_selection,
    describe_text,
    parse_tokens,
    split_recipient_text,
    unavailable_references,
)
from mailbox.services import HEADER_INJECTION_MESSAGE

RECIPIENT_FIELDS = ("to", "cc", "bcc")
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.Field):
    """Several uploaded files at once; checked one by one in ComposeForm.clean_new_files."""

    widget = MultipleFileInput

    def clean(self, value):
        if not value:
            return []
        return list(value) if isinstance(value, list | tuple) else [value]


def _has_control_characters(value: str) -> bool:
    return any(ord(char) < 32 or ord(char) == 127 for char in value)


INJECTION_MESSAGE = HEADER_INJECTION_MESSAGE
# Said alike of what is gone and what the user may not see, and never with its name.
UNAVAILABLE_MESSAGE = _(
    "Recipient %(position)s (%(token)s): unknown selection. It does not exist or is not "
    "available to you; remove it."
)


class RichTextarea(forms.Textarea):
    """The rich-text editor's textarea. compose.js puts its value into the editor as HTML,
    so the value is sanitised however it got here: a draft stored before drafts were
    sanitised, or a refused submission shown again."""

    def format_value(self, value):
        value = super().format_value(value)
        return sanitise_body_html(value) if value else value


class ConfigurationSelect(forms.Select):
    """Each option carries its configuration's sender, so compose.js can make the From
    field follow a change of configuration (no extra query: the options' instances)."""

    def create_option(self, name, value, *args, **kwargs):
        option = super().create_option(name, value, *args, **kwargs)
        instance = getattr(value, "instance", None)
        if instance is not None:
            option["attrs"]["data-from-email"] = instance.from_email
        return option


class ComposeForm(forms.Form):
    smtp_configuration = forms.ModelChoiceField(
        label=_("SMTP configuration"),
        queryset=None,
        required=False,
        empty_label=None,
        widget=ConfigurationSelect(attrs={"data-sender-source": ""}),
    )
    owner_group = forms.ModelChoiceField(
        label=_("Group"),
        queryset=Group.objects.none(),
        required=False,
        help_text=_("The team the mails belong to in the outbox."),
    )
    from_email = forms.CharField(
        label=_("From"),
        required=False,
        max_length=254,
        help_text=_("Empty: the SMTP configuration's sender address."),
    )
    from_name = forms.CharField(label=_("From name"), required=False, max_length=200)
    to = forms.CharField(
        label=_("To"),
        required=False,
        widget=RecipientPicker,
        help_text=_(
            "Users, customers, distribution lists, system addresses or typed addresses, "
            "separated by commas. Distribution lists are expanded when the mail is sent."
        ),
    )
    cc = forms.CharField(label=_("Cc"), required=False, widget=RecipientPicker)
    bcc = forms.CharField(label=_("Bcc"), required=False, widget=RecipientPicker)
    send_mode = forms.ChoiceField(
        label=_("Sending"),
        choices=SendMode.choices,
        initial=SendMode.PER_RECIPIENT,
        widget=forms.RadioSelect,
        help_text=_("With one mail per To recipient, Cc and Bcc receive a copy of each."),
    )
    template = forms.ModelChoiceField(label=_("Start from template"), queryset=None, required=False)
    template_recipient = forms.CharField(
        label=_("Render the template for"),
        required=False,
        widget=RecipientPicker(single=True),
        help_text=_(
            "A recipient whose data (and report) fill the template; empty: the first To recipient."
        ),
    )
    subject = forms.CharField(label=_("Subject"), required=False)
    body_html = forms.CharField(
        label=_("Text"),
        required=False,
        widget=RichTextarea(attrs={"rows": 12, "data-rich-editor": ""}),
    )
    remove_attachments = forms.MultipleChoiceField(
        label=_("Remove attached files"), required=False, widget=forms.CheckboxSelectMultiple
    )
    new_files = MultipleFileField(label=_("Attach files"), required=False)
    scheduled_at = forms.DateTimeField(
        label=_("Send at"),
        required=False,
        input_formats=[LOCAL_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_FORMAT),
        help_text=_("Empty: send now. Otherwise a time in the future (%(zone)s)."),
    )

    def __init__(self, *args, user, draft: Draft | None = None, strict: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.draft = draft
        self.strict = strict
        self.accepted_files = []
        configurations = selectors.usable_configurations(user=user)
        self.fields["smtp_configuration"].queryset = configurations
        self.fields["template"].queryset = selectors.usable_templates(user=user)
        teams = team_groups(user).order_by("name")
        self.team_count = teams.count()
        self.fields["owner_group"].queryset = teams
        if self.team_count < 2:
            # One team (or none) needs no choice: the mails belong to it.
            del self.fields["owner_group"]
        self.fields["scheduled_at"].help_text = self.fields["scheduled_at"].help_text % {
            "zone": timezone.get_current_timezone_name()
        }
        self.fields["new_files"].help_text = _(
            "At most %(count)s files of %(size)s MB each. Programs and scripts are refused."
        ) % {
            "count": max_files(),
            "size": f"{settings.CALMAIL_ATTACHMENT_MAX_BYTES / 1_000_000:.0f}",
        }
        self.attachments = list(draft.attachments.all()) if draft is not None else []
        self.fields["remove_attachments"].choices = [
            (str(a.pk), f"{a.filename} ({_size(a.size)})") for a in self.attachments
        ]
        if not self.attachments:
            del self.fields["remove_attachments"]
        search_url = reverse("inventory:recipient_search")
        for name in (*RECIPIENT_FIELDS, "template_recipient"):
            self.fields[name].widget.configure(
                search_url=search_url, describe=partial(describe_text, user=user)
            )
        self.fields["body_html"].widget.attrs["data-labels"] = json.dumps(
            {
                "bold": str(_("Bold")),
                "italic": str(_("Italic")),
                "underline": str(_("Underline")),
                "insertUnorderedList": str(_("Bulleted list")),
                "insertOrderedList": str(_("Numbered list")),
                "createLink": str(_("Link")),
                "removeFormat": str(_("Remove formatting")),
                "url": str(_("Link address")),
            },
            ensure_ascii=False,
        )
        self.helper = self._helper()

    def _helper(self) -> FormHelper:
        helper = FormHelper(self)
        helper.form_tag = False
        helper.disable_csrf = True
        sender = ["smtp_configuration", "from_email", "from_name"]
        if "owner_group" in self.fields:
            sender.insert(1, "owner_group")
        files = ["new_files"]
        if "remove_attachments" in self.fields:
            files.insert(0, "remove_attachments")
        helper.layout = Layout(
            Fieldset(
                _("Template"),
                Div(
                    Div("template", css_class="col-md-5"),
                    Div("template_recipient", css_class="col-md-5"),
                    Div(
                        HTML(
                            format_html(
                                '<button type="submit" name="action" value="template" '
                                'class="btn btn-outline-secondary mt-md-4">{}</button>',
                                _("Fill in"),
                            )
                        ),
                        css_class="col-md-2",
                    ),
                    css_class="row",
                ),
            ),
            Fieldset(_("Sender"), *sender),
            Fieldset(_("Recipients"), "to", "cc", "bcc", "send_mode"),
            Fieldset(_("Message"), "subject", Field("body_html")),
            Fieldset(_("Attachments"), *files),
            Fieldset(_("When"), "scheduled_at"),
        )
        return helper

    # --- field checks ------------------------------------------------------------------

    def _recipient_tokens(self, name: str) -> list[str]:
        value = self.cleaned_data.get(name) or ""
        # The field is one line: a line break can only come from a crafted request.
        if self.strict and _has_control_characters(value):
            raise ValidationError(INJECTION_MESSAGE, code="header_injection")
        tokens = split_recipient_text(value)
        errors = []
        if self.strict:
            try:
                parse_tokens(tokens)
            except ValidationError as exc:
                errors.extend(exc.error_list)
        # Also when only saving: the draft may keep a reference it cannot use, but the
        # user is told at once, and a template is never filled in for it.
        errors.extend(
            ValidationError(
                UNAVAILABLE_MESSAGE,
                code="unavailable",
                params={"position": position, "token": item.token},
            )
            for position, item in unavailable_references(tokens, user=self.user)
        )
        if errors:
            raise ValidationError(errors)
        return tokens

    def clean_to(self):
        return self._recipient_tokens("to")

    def clean_cc(self):
        return self._recipient_tokens("cc")

    def clean_bcc(self):
        return self._recipient_tokens("bcc")

    def clean_template_recipient(self):
        tokens = split_recipient_text(self.cleaned_data.get("template_recipient") or "")
        if tokens:
            check_selection(tokens[:1], user=self.user)
        return tokens[:1]

    def clean_subject(self):
        subject = self.cleaned_data.get("subject") or ""
        if self.strict:
            if not subject.strip():
                raise ValidationError(_("Enter a subject."), code="required")
            if _has_control_characters(subject):
                raise ValidationError(INJECTION_MESSAGE, code="header_injection")
        return subject

    def clean_from_email(self):
        value = self.cleaned_data.get("from_email") or ""
        if self.strict and value:
            if _has_control_characters(value):
                raise ValidationError(INJECTION_MESSAGE, code="header_injection")
            try:
                validate_email(value)
            except ValidationError:
                raise ValidationError(
                    _("“%(address)s” is not a valid e-mail address."),
                    code="invalid",
                    params={"address": value},
                ) from None
        return value

    def clean_from_name(self):
        value = self.cleaned_data.get("from_name") or ""
        if self.strict and _has_control_characters(value):
            raise ValidationError(INJECTION_MESSAGE, code="header_injection")
        return value

    def clean_smtp_configuration(self):
        value = self.cleaned_data.get("smtp_configuration")
        if self.strict and value is None:
            raise ValidationError(_("There is no SMTP configuration to send through."))
        return value

    def clean_owner_group(self):
        value = self.cleaned_data.get("owner_group")
        if self.strict and value is None:
            raise ValidationError(_("Choose the group the mails belong to."), code="required")
        return value

    def clean_scheduled_at(self):
        value = self.cleaned_data.get("scheduled_at")
        if self.strict and value is not None and value <= timezone.now():
            raise ValidationError(
                _(
                    "The planned time is in the past. Choose a later time or leave it empty to send now."
                ),
                code="past",
            )
        return value

    def clean_remove_attachments(self):
        return [int(pk) for pk in self.cleaned_data.get("remove_attachments") or []]

    def clean_new_files(self):
        files = self.cleaned_data.get("new_files") or []
        removed = set(self.cleaned_data.get("remove_attachments") or [])
        kept = sum(1 for a in self.attachments if a.pk not in removed)
        limit, max_bytes = max_files(), settings.CALMAIL_ATTACHMENT_MAX_BYTES
        errors = []
        for upload in files:
            head = upload.read(8)
            upload.seek(0)
            refusal = file_refusal(
                filename=upload.name, head=head, size=upload.size, max_bytes=max_bytes
            )
            if not refusal and kept + len(self.accepted_files) >= limit:
                refusal = _("%(name)s was not attached: at most %(count)s files are allowed.") % {
                    "name": upload.name,
                    "count": limit,
                }
            if refusal:
                errors.append(ValidationError(refusal, code="refused_file"))
            else:
                self.accepted_files.append(upload)
        if errors:
            raise ValidationError(errors)
        return self.accepted_files

    def clean(self):
        cleaned = super().clean()
        if (
            self.strict
            and not any(cleaned.get(name) for name in RECIPIENT_FIELDS)
            and not any(name in self.errors for name in RECIPIENT_FIELDS)
        ):
            self.add_error(
                "to", ValidationError(_("Enter at least one recipient."), code="required")
            )
        return cleaned

    # --- into the draft ----------------------------------------------------------------

    def draft_values(self) -> dict:
        """What the draft keeps: the checked values where they passed, else what was typed
        (so an invalid address or a past time is still there to be corrected)."""
        data, cleaned = self.data, getattr(self, "cleaned_data", {})

        def raw(name):
            return data.get(name, "") or ""

        def tokens(name):
            return split_recipient_text(raw(name))

        values = {
            "from_email": self.followed_sender(raw("from_email")[:254]),
            "from_name": raw("from_name")[:200],
            "to": tokens("to"),
            "cc": tokens("cc"),
            "bcc": tokens("bcc"),
            "subject": raw("subject"),
            "body_html": raw("body_html"),
            "send_mode": raw("send_mode")
            if raw("send_mode") in SendMode.values
            else SendMode.PER_RECIPIENT,
            "smtp_configuration": cleaned.get("smtp_configuration"),
            "template": cleaned.get("template"),
        }
        if "scheduled_at" in cleaned or "scheduled_at" in self.errors:
            values["scheduled_at"] = cleaned.get("scheduled_at") or _past_value(
                self.fields["scheduled_at"], raw("scheduled_at")
            )
        if "owner_group" in self.fields:
            values["owner_group"] = cleaned.get("owner_group")
        else:
            values["owner_group"] = self.fields_default_group()
        return values

    def followed_sender(self, typed: str) -> str:
        """The chosen configuration's sender when the configuration was changed and the
        From field still holds the previous one's: that address was the default, not the
        user's choice (compose.js does the same in the browser)."""
        chosen = getattr(self, "cleaned_data", {}).get("smtp_configuration")
        if chosen is None or not typed:
            return typed
        if self.draft is not None:
            previous = self.draft.smtp_configuration
        else:
            # A new mail's form showed the configuration initial_for_new() chose.
            previous = selectors.usable_configurations(user=self.user).first()
        if previous is None or previous.pk == chosen.pk or not previous.from_email:
            return typed
        if typed.strip().lower() == previous.from_email.lower():
            return chosen.from_email
        return typed

    def fields_default_group(self):
        return team_groups(self.user).order_by("name").first()


def _past_value(field, text: str):
    """A typed time that failed only because it is in the past is still kept."""
    try:
        return field.to_python(text)
    except ValidationError:
        return None


def _size(size: int) -> str:
    from django.template.defaultfilters import filesizeformat

    return filesizeformat(size)


def initial_from_draft(draft: Draft) -> dict:
    """The form's data for a stored draft (as if it had been submitted)."""
    scheduled = ""
    if draft.scheduled_at is not None:
        scheduled = timezone.localtime(draft.scheduled_at).strftime(LOCAL_FORMAT)
    data = {
        "smtp_configuration": draft.smtp_configuration_id or "",
        "owner_group": draft.owner_group_id or "",
        "from_email": draft.from_email,
        "from_name": draft.from_name,
        "to": ", ".join(draft.to),
        "cc": ", ".join(draft.cc),
        "bcc": ", ".join(draft.bcc),
        "send_mode": draft.send_mode,
        "template": draft.template_id or "",
        "subject": draft.subject,
        "body_html": draft.body_html,
        "scheduled_at": scheduled,
    }
    return data


def initial_for_new(*, user) -> dict:
    configuration = selectors.usable_configurations(user=user).first()
    return {
        "smtp_configuration": configuration.pk if configuration else None,
        "from_email": configuration.from_email if configuration else "",
        "from_name": user.get_full_name(),
        "send_mode": SendMode.PER_RECIPIENT,
    }
