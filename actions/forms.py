import datetime as dt
from functools import partial

from crispy_forms.layout import Submit
from django import forms
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from actions.models import Action, ReportScope
from actions.schedule import LAST
from actions.services import report_scope_refusal
from calmail.common.forms import CrispyFormMixin, prepare_team_field
from calmail.common.roles import is_administrator
from calmail.common.teams import only_team
from calmail.common.widgets import RecipientPicker
from inventory.models import Customer
from inventory.recipients import TokenKind, describe_text, split_recipient_text, usable_references
from inventory.selectors import owner_group_choices
from smtpconfig.models import SmtpConfiguration
from smtpconfig.selectors import active_configurations
from templates_app.models import MailTemplate
from templates_app.selectors import visible_templates

DAY_CHOICES = [(str(day), str(day)) for day in range(1, 32)] + [(LAST, _("last"))]
WEEKDAY_CHOICES = [
    ("0", _("Monday")),
    ("1", _("Tuesday")),
    ("2", _("Wednesday")),
    ("3", _("Thursday")),
    ("4", _("Friday")),
    ("5", _("Saturday")),
    ("6", _("Sunday")),
]
MONTH_CHOICES = [
    ("1", _("January")),
    ("2", _("February")),
    ("3", _("March")),
    ("4", _("April")),
    ("5", _("May")),
    ("6", _("June")),
    ("7", _("July")),
    ("8", _("August")),
    ("9", _("September")),
    ("10", _("October")),
    ("11", _("November")),
    ("12", _("December")),
]
RULE_HELP = _(
    "Empty means any. Day of month, weekday and month combine with AND: days 1-7 with "
    "Monday means the first Monday of the month (unlike cron, which would take either). "
    "A day a month lacks (31 April) is skipped, never moved."
)
# The fields whose values decide the next run's audience (actions.js posts the form to the
# audience preview when one of them, or the rule, changes).
AUDIENCE_FIELDS = (
    "recipients",
    "template",
    "report_scope",
    "report_scope_customers",
    "send_without_attachments",
)


class ToggleGrid(forms.widgets.ChoiceWidget):
    """A multiple choice as a grid of toggle buttons: real checkboxes (Bootstrap's
    `btn-check`) with their labels as buttons, so the keyboard reaches each one (Tab,
    Space) and without JavaScript they submit as plain checkboxes; actions.js adds
    "select all / none" and the arrow keys. Not a CheckboxSelectMultiple: crispy-forms
    would render that as its own list of checkboxes."""

    allow_multiple_selected = True
    input_type = "checkbox"
    template_name = "actions/widgets/toggle_grid.html"
    add_id_index = True
    checked_attribute = {"checked": True}

    def __init__(self, attrs=None, choices=(), *, layout: str = "wide", group_label=""):
        super().__init__(attrs, choices)
        self.layout = layout
        self.group_label = group_label

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["layout"] = self.layout
        context["widget"]["group_label"] = self.group_label
        return context

    def use_required_attribute(self, initial):
        # "required" on each checkbox would ask for all of them.
        return False

    def value_from_datadict(self, data, files, name):
        try:
            return data.getlist(name)
        except AttributeError:
            return data.get(name)

    def value_omitted_from_data(self, data, files, name):
        # An unchecked grid submits nothing, which means "none chosen" (= any).
        return False

    def id_for_label(self, id_, index=None):
        # The field's label names the whole group (role="group"), not its first box; each
        # box still gets its own id (create_option passes its index).
        if index is None:
            return ""
        return super().id_for_label(id_, index)


def template_choices(user) -> QuerySet[MailTemplate]:
    return visible_templates(user=user).order_by("name")


def scope_customer_choices(user) -> QuerySet[Customer]:
    return usable_references(user=user)[TokenKind.CUSTOMER].order_by("number", "pk")


class ActionForm(CrispyFormMixin, forms.ModelForm):
    """The action form; the service validates the rule (refusing one that can never fire)
    and the recipients, and its errors come back onto the fields."""

    days = forms.MultipleChoiceField(
        label=_("Day of month"),
        choices=DAY_CHOICES,
        required=False,
        help_text=RULE_HELP,
        widget=ToggleGrid(layout="days"),
    )
    weekdays = forms.MultipleChoiceField(
        label=_("Weekday"),
        choices=WEEKDAY_CHOICES,
        required=False,
        widget=ToggleGrid(layout="wide"),
    )
    months = forms.MultipleChoiceField(
        label=_("Month"),
        choices=MONTH_CHOICES,
        required=False,
        widget=ToggleGrid(layout="wide"),
    )
    time_of_day = forms.TimeField(
        label=_("Time of day"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text=_("Local time of the installation; empty = the start's time of day."),
    )
    start = forms.DateTimeField(
        label=_("Start"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    end = forms.DateTimeField(
        label=_("End"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("Empty = open ended. Start and end on the same day make a one-off action."),
    )
    recipients = forms.CharField(
        label=_("Recipients"),
        widget=RecipientPicker,
        help_text=_(
            "Users, customers, distribution lists, system addresses or typed addresses, "
            "separated by commas; type to search."
        ),
    )

    report_scope = forms.ChoiceField(
        label=_("Report for other addresses"),
        choices=ReportScope.choices,
        initial=ReportScope.NONE,
        # Left out (an older client, a test): no report, the safe default.
        required=False,
        widget=forms.RadioSelect,
        help_text=_(
            "Customers and users always get a report of their own records. This decides "
            "the report of system addresses, typed addresses and the extra addresses of "
            "distribution lists: none, the chosen customers' records, or every customer's "
            "records, which only administrators may choose and only system addresses "
            "receive."
        ),
    )
    report_scope_customers = forms.ModelMultipleChoiceField(
        label=_("Customers of the report"),
        queryset=Customer.objects.none(),
        required=False,
        help_text=_("For “chosen customers”: whose records the report of those addresses covers."),
    )

    class Meta:
        model = Action
        fields = (
            "description",
            "days",
            "weekdays",
            "months",
            "time_of_day",
            "start",
            "end",
            "recipients",
            "report_scope",
            "report_scope_customers",
            "template",
            # Next to the template: whether it attaches a report decides what this does.
            "send_without_attachments",
            "smtp_configuration",
            "group",
            "published",
        )
        help_texts = {
            "send_without_attachments": _(
                "Only for templates that attach a report: when a recipient's report is "
                "empty (and the template attaches no empty report) or there is no report "
                "for the recipient, the mail goes without an attachment if this is on and "
                "is skipped if it is off; templates without any attachment always send."
            ),
        }

    def __init__(self, *args, user, **kwargs):
        self.user = user
        instance = kwargs.get("instance")
        initial = kwargs.setdefault("initial", {})
        if instance is not None and instance.pk:
            initial.setdefault("days", [str(d) for d in instance.days])
            initial.setdefault("weekdays", [str(d) for d in instance.weekdays])
            initial.setdefault("months", [str(d) for d in instance.months])
            initial.setdefault("recipients", ", ".join(instance.recipients))
        else:
            default = SmtpConfiguration.objects.filter(is_default=True).first()
            if default is not None:
                initial.setdefault("smtp_configuration", default.pk)
            initial.setdefault("start", timezone.localtime().replace(second=0, microsecond=0))
            # Not the model's default (an empty list), which a text input shows as "[]".
            initial.setdefault("recipients", "")
            team = only_team(user)
            if team is not None:
                initial.setdefault("group", team.pk)
        super().__init__(*args, **kwargs)
        preview = Submit("preview", _("Show next runs"))
        # crispy's Submit is "btn btn-primary" plus css_class; an outline class on top of
        # that made the button look disabled. A secondary action, clearly clickable.
        preview.field_classes = "btn btn-outline-primary"
        self.helper.add_input(preview)

    def prepare_fields(self):
        self.fields["template"].queryset = template_choices(self.user)
        self.fields["smtp_configuration"].queryset = active_configurations().order_by("name")
        customers = self.fields["report_scope_customers"]
        customers.queryset = scope_customer_choices(self.user)
        customers.widget.attrs.update(
            # actions.js shows the list only while "chosen customers" is picked.
            {"size": 8, "data-shown-for-scope": ReportScope.CUSTOMERS}
        )
        group = self.fields["group"]
        group.queryset = owner_group_choices(user=self.user)
        self.team_alert = prepare_team_field(
            group,
            administrator=is_administrator(self.user),
            empty_help=_("Empty: only administrators see and manage the action."),
        )
        for name in ("days", "weekdays", "months"):
            field = self.fields[name]
            field.widget.attrs["data-rule-field"] = name
            field.widget.group_label = field.label
        for name in ("time_of_day", "start", "end"):
            self.fields[name].widget.attrs["data-rule-field"] = name
        for name in AUDIENCE_FIELDS:
            self.fields[name].widget.attrs["data-audience-field"] = name
        # Actions (unlike compose) also offer the audiences, found when a run executes.
        self.fields["recipients"].widget.attrs["data-audiences"] = ""
        self.fields["recipients"].widget.configure(
            search_url=reverse("inventory:recipient_search"),
            describe=partial(describe_text, user=self.user),
        )

    def clean_report_scope(self):
        return self.cleaned_data.get("report_scope") or ReportScope.NONE

    def clean_recipients(self):
        return split_recipient_text(self.cleaned_data["recipients"])

    def clean(self):
        cleaned = super().clean()
        start = cleaned.get("start")
        if start is not None and cleaned.get("time_of_day") is None:
            cleaned["time_of_day"] = timezone.localtime(start).time().replace(second=0)
        if "report_scope" in cleaned:
            refusal = report_scope_refusal(
                report_scope=cleaned["report_scope"],
                customers=cleaned.get("report_scope_customers") or [],
                recipients=cleaned.get("recipients") or [],
                user=self.user,
                previous=self.instance.report_scope if self.instance.pk else None,
            )
            for name, messages in refusal.items():
                self.add_error(name, messages)
        return cleaned

    def _post_clean(self):
        # The service validates and saves (rule, recipients); skip the model's own checks
        # on the JSON lists, which the form holds as strings until the service parses them.
        pass

    def service_values(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in self.Meta.fields}


class PreviewRuleForm(forms.Form):
    """The rule part of the form, for the "next runs" endpoint (GET)."""

    days = forms.MultipleChoiceField(choices=DAY_CHOICES, required=False)
    weekdays = forms.MultipleChoiceField(choices=WEEKDAY_CHOICES, required=False)
    months = forms.MultipleChoiceField(choices=MONTH_CHOICES, required=False)
    time_of_day = forms.TimeField(required=False)
    start = forms.DateTimeField()
    end = forms.DateTimeField(required=False)

    def clean(self):
        cleaned = super().clean()
        start = cleaned.get("start")
        if start is not None and cleaned.get("time_of_day") is None:
            cleaned["time_of_day"] = timezone.localtime(start).time().replace(second=0)
        return cleaned


class AudiencePreviewForm(forms.Form):
    """The fields of the action form that decide the next run's audience, for the live
    audience preview (POST), with the same choices as the action form: only templates
    and customers the user may use. The recipients are checked by the view
    (check_selection), as the action's service checks them."""

    recipients = forms.CharField(required=False)
    template = forms.ModelChoiceField(queryset=MailTemplate.objects.none(), required=False)
    report_scope = forms.ChoiceField(choices=ReportScope.choices, required=False)
    report_scope_customers = forms.ModelMultipleChoiceField(
        queryset=Customer.objects.none(), required=False
    )
    send_without_attachments = forms.BooleanField(required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = template_choices(user)
        self.fields["report_scope_customers"].queryset = scope_customer_choices(user)

    def clean_report_scope(self):
        return self.cleaned_data.get("report_scope") or ReportScope.NONE

    def clean_recipients(self):
        return split_recipient_text(self.cleaned_data["recipients"])


def minute(value: dt.datetime) -> dt.datetime:
    return value.replace(second=0, microsecond=0)
