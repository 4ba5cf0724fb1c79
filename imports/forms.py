from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms
from django.utils.translation import gettext_lazy as _

from imports.importers import IMPORTERS, fields_for
from imports.models import DateFormat, ImportKind, ImportRun, MappingTemplate
from imports.selectors import templates_for

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class UploadForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=_("XLSX, or CSV separated by ; or , (UTF-8 or Windows-1252)."),
        widget=forms.ClearableFileInput(attrs={"accept": ".xlsx,.csv,.txt"}),
    )
    template = forms.ModelChoiceField(
        label=_("Mapping template"),
        queryset=MappingTemplate.objects.none(),
        required=False,
        empty_label=_("(new mapping)"),
    )

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = templates_for(kind=kind)
        self.helper = FormHelper(self)
        self.helper.attrs = {"enctype": "multipart/form-data"}
        self.helper.add_input(Submit("upload", _("Upload and map columns")))

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("The file is larger than 50 MB."))
        return upload


def _key(text: str) -> str:
    return "".join(ch for ch in str(text).casefold() if ch.isalnum())


def guess_columns(kind: str, headers: list[str]) -> dict[str, str]:
    """Source column → field by name or label (English or German), for a new mapping."""
    from django.utils import translation

    names: dict[str, str] = {}
    for field in fields_for(kind):
        names[_key(field.name)] = field.name
        for language in ("en", "de"):
            with translation.override(language):
                names.setdefault(_key(field.label), field.name)
    guessed: dict[str, str] = {}
    used: set[str] = set()
    for header in headers:
        target = names.get(_key(header))
        if target and target not in used:
            guessed[header] = target
            used.add(target)
    return guessed


def parse_value_maps(text: str, kind: str) -> dict[str, dict[str, str]]:
    """Lines "field: source text = calmail value" (e.g. "status: Offen = open")."""
    known = {field.name for field in fields_for(kind)}
    maps: dict[str, dict[str, str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        target, colon, rest = line.partition(":")
        source, equals, value = rest.partition("=")
        target = target.strip()
        if not colon or not equals or target not in known:
            raise forms.ValidationError(
                _("Line %(line)s: write “field: source text = value” with a known field."),
                params={"line": number},
            )
        maps.setdefault(target, {})[source.strip()] = value.strip()
    return maps


def format_value_maps(maps: dict) -> str:
    return "\n".join(
        f"{target}: {source} = {value}"
        for target, values in maps.items()
        for source, value in values.items()
    )


class MappingForm(forms.Form):
    """One choice per column of the file: which calmail field it feeds, or none."""

    date_format = forms.ChoiceField(label=_("Date format"), choices=DateFormat.choices)
    value_maps = forms.CharField(
        label=_("Value maps"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "One per line: “field: text in the file = calmail value”, e.g. “status: Erledigt = closed”."
        ),
    )
    mark_missing_inactive = forms.BooleanField(
        label=_("Mark records missing from this full export as inactive"),
        required=False,
        help_text=_(
            "Only for a complete export: records not in the file drop out of reports and audiences. Nothing is deleted."
        ),
    )
    save_as = forms.CharField(
        label=_("Save as mapping template"),
        required=False,
        max_length=100,
        help_text=_("A name to reuse this mapping for the next file; empty: not saved."),
    )

    def __init__(self, *args, run: ImportRun, **kwargs):
        super().__init__(*args, **kwargs)
        self.run = run
        used = run.mapping_used or {}
        columns = used.get("columns") or guess_columns(run.kind, run.headers)
        choices = [("", _("— not imported —"))] + [
            (field.name, f"{field.label}{' *' if field.required else ''}")
            for field in fields_for(run.kind)
        ]
        self.column_fields = []
        for position, header in enumerate(run.headers):
            name = f"column_{position}"
            self.fields[name] = forms.ChoiceField(
                label=header, choices=choices, required=False, initial=columns.get(header, "")
            )
            self.column_fields.append(name)
        self.fields["date_format"].initial = used.get("date_format", DateFormat.GERMAN)
        self.fields["value_maps"].initial = format_value_maps(used.get("value_maps") or {})
        self.fields["mark_missing_inactive"].initial = run.mark_missing_inactive
        if not IMPORTERS[run.kind].supports_inactive:
            del self.fields["mark_missing_inactive"]
        if run.mapping is not None:
            self.fields["save_as"].initial = run.mapping.name
        # The column choices first, the options after them.
        self.order_fields(self.column_fields)
        self.helper = FormHelper(self)
        self.helper.add_input(Submit("dry_run", _("Start the dry run")))

    def clean_value_maps(self):
        return parse_value_maps(self.cleaned_data["value_maps"], self.run.kind)

    def clean(self):
        cleaned = super().clean()
        chosen = [cleaned.get(name) for name in self.column_fields if cleaned.get(name)]
        twice = {target for target in chosen if chosen.count(target) > 1}
        labels = {field.name: field.label for field in fields_for(self.run.kind)}
        if twice:
            raise forms.ValidationError(
                _("Each field can take one column only: %(fields)s"),
                params={"fields": ", ".join(str(labels[t]) for t in sorted(twice))},
            )
        missing = [
            f.label for f in fields_for(self.run.kind) if f.required and f.name not in chosen
        ]
        if missing:
            raise forms.ValidationError(
                _("Choose a column for: %(fields)s"),
                params={"fields": ", ".join(str(label) for label in missing)},
            )
        if self.run.kind == ImportKind.USERS and "username" not in chosen and "email" not in chosen:
            raise forms.ValidationError(
                _("Choose a column for the user name or the e-mail address.")
            )
        return cleaned

    def mapping(self) -> dict:
        return {
            "columns": {
                self.run.headers[position]: self.cleaned_data[name]
                for position, name in enumerate(self.column_fields)
                if self.cleaned_data[name]
            },
            "date_format": self.cleaned_data["date_format"],
            "value_maps": self.cleaned_data["value_maps"],
        }
