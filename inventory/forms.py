from crispy_forms.layout import Div, Fieldset, Layout
from django import forms
from django.core.exceptions import ValidationError
from django.utils.html import escape
from django.utils.translation import gettext_lazy as _

from calmail.common.forms import CrispyFormMixin
from inventory.models import Customer, DistributionList, SystemAddress
from inventory.recipients import parse_address, split_recipient_text, user_display_name
from inventory.selectors import active_users, owner_group_choices
from inventory.services import SYSTEM_ADDRESS_FIELDS, AddressEntry


class UserChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        name = user_display_name(obj)
        return f"{name} <{obj.email}>" if obj.email else name


class AddressListField(forms.CharField):
    """Typed addresses, one per line (commas and semicolons separate too), each optionally
    with a name: "Max Muster <max@example.com>". Cleans to a list of AddressEntry."""

    widget = forms.Textarea(attrs={"rows": 4})

    def to_python(self, value):
        value = super().to_python(value)
        entries, errors = [], []
        for text in split_recipient_text(value):
            try:
                item = parse_address(text)
            except ValidationError as exc:
                errors.extend(exc.messages)
            else:
                entries.append(AddressEntry(email=item.email, name=item.name))
        if errors:
            raise ValidationError(errors)
        return entries


def format_entries(entries) -> str:
    return "\n".join(
        f"{entry.name} <{entry.email}>" if entry.name else entry.email for entry in entries
    )


class DistributionListForm(CrispyFormMixin, forms.Form):
    """Create/edit a distribution list. The service validates and saves; its errors (a
    name in use, a bad address) come back onto these fields."""

    name = forms.CharField(label=_("Name"), max_length=100)
    description = forms.CharField(
        label=_("Description"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    owner_group = forms.ModelChoiceField(
        label=_("Owner group"),
        queryset=None,
        required=False,
        empty_label=_("none (visible to everyone with access to distribution lists)"),
        help_text=_("Only members of this group and administrators see the list."),
    )
    users = UserChoiceField(
        label=_("Users"),
        queryset=None,
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text=_("Each user receives mails at their own address, in their language."),
    )
    customers = forms.ModelMultipleChoiceField(
        label=_("Customers"),
        queryset=Customer.objects.order_by("number"),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text=_("Each customer receives mails at all of its contact addresses."),
    )
    addresses = AddressListField(label=_("Further addresses"), required=False)

    def __init__(self, *args, user, distribution_list: DistributionList | None = None, **kwargs):
        if distribution_list is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": distribution_list.name,
                "description": distribution_list.description,
                "owner_group": distribution_list.owner_group_id,
                "users": [obj.pk for obj in distribution_list.users.all()],
                "customers": [obj.pk for obj in distribution_list.customers.all()],
                "addresses": format_entries(distribution_list.addresses.all()),
            }
        self.user = user
        super().__init__(*args, **kwargs)

    def prepare_fields(self):
        # Help texts are rendered as HTML: escape the example's angle brackets.
        self.fields["addresses"].help_text = escape(
            _("One address per line, optionally with a name: Max Muster <max@example.com>")
        )
        self.fields["owner_group"].queryset = owner_group_choices(user=self.user)
        self.fields["users"].queryset = active_users().order_by(
            "last_name", "first_name", "username"
        )

    def build_layout(self):
        return Layout(
            Fieldset(_("List"), "name", "description", "owner_group"),
            Fieldset(
                _("Members"),
                Div(
                    Div("users", css_class="col-md-6"),
                    Div("customers", css_class="col-md-6"),
                    css_class="row",
                ),
                "addresses",
            ),
        )

    def service_values(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "description": data["description"],
            "owner_group": data["owner_group"],
            "users": list(data["users"]),
            "customers": list(data["customers"]),
            "addresses": data["addresses"],
        }


class SystemAddressForm(CrispyFormMixin, forms.ModelForm):
    class Meta:
        model = SystemAddress
        fields = SYSTEM_ADDRESS_FIELDS
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def service_values(self) -> dict:
        return {name: self.cleaned_data[name] for name in SYSTEM_ADDRESS_FIELDS}


class DuplicateForm(CrispyFormMixin, forms.Form):
    """The name of a copy; the model says whose names must be unique."""

    submit_label = _("Duplicate")

    name = forms.CharField(label=_("Name of the copy"), max_length=100)

    def __init__(self, *args, model, **kwargs):
        self.model = model
        super().__init__(*args, **kwargs)

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if self.model.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError(_("This name is already taken."))
        return name
