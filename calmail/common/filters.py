"""Filter building blocks shared by the list pages."""

import django_filters
from django import forms
from django.utils.translation import gettext_lazy as _

YES_NO_CHOICES = (("yes", _("yes")), ("no", _("no")))


class YesNoField(django_filters.fields.ChoiceField):
    def to_python(self, value):
        value = super().to_python(value)
        return {"yes": True, "no": False}.get(value)

    def validate(self, value):
        if value is None:
            return super().validate("")
        return super().validate("yes" if value else "no")


class YesNoFilter(django_filters.ChoiceFilter):
    """A boolean as a select with "any / yes / no" (a checkbox cannot express "any").

    The cleaned value is True, False or None (any), also for `method=` filters.
    """

    field_class = YesNoField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", YES_NO_CHOICES)
        kwargs.setdefault("empty_label", _("any"))
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value is None:
            return qs
        return super().filter(qs, value)


class RangeInputs(django_filters.widgets.RangeWidget):
    """From/to inputs side by side in one input group."""

    template_name = "common/widgets/range.html"

    def __init__(self, attrs=None, input_type="number"):
        super().__init__(attrs={"class": "form-control", **(attrs or {})})
        self.widgets[0].input_type = self.widgets[1].input_type = input_type
        self.widgets[0].attrs["placeholder"] = _("from")
        self.widgets[1].attrs["placeholder"] = _("to")


class NumberRangeFilter(django_filters.RangeFilter):
    """From/to inputs for a number column."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra["widget"] = RangeInputs()


class DateRangeFilter(django_filters.DateFromToRangeFilter):
    """From/to date inputs (the "to" day is included)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra["widget"] = RangeInputs(input_type="date")


class CalmailFilterSet(django_filters.FilterSet):
    """Base filterset: Bootstrap widgets on every field."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.form.fields.values():
            widget = field.widget
            if isinstance(widget, forms.Select):
                widget.attrs.setdefault("class", "form-select form-select-sm")
            elif not isinstance(widget, forms.MultiWidget):
                widget.attrs.setdefault("class", "form-control form-control-sm")
