import django_filters
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from calmail.common.filters import CalmailFilterSet, DateRangeFilter
from calmail.common.roles import is_administrator
from maillog.links import linked_model_labels
from maillog.models import AuditAction, Category, Level, LogEntry


def _actors(request):
    # Others only ever see their own name here: the list of users is not theirs to browse.
    users = get_user_model().objects.order_by("username")
    if request is None or not is_administrator(request.user):
        return users.filter(pk=getattr(getattr(request, "user", None), "pk", None))
    return users


def _object_types(request):
    condition = Q(app_label="auth", model="user")
    for label in linked_model_labels():
        app_label, model = label.split(".", 1)
        condition |= Q(app_label=app_label, model=model)
    return ContentType.objects.filter(condition).order_by("app_label", "model")


class ObjectTypeField(django_filters.fields.ModelChoiceField):
    def label_from_instance(self, obj):
        model = obj.model_class()
        # capfirst: "SMTP configuration" keeps its capitals (capitalize() lowered them).
        return capfirst(model._meta.verbose_name if model else obj.model)


class ObjectTypeChoice(django_filters.ModelChoiceFilter):
    field_class = ObjectTypeField


class LogEntryFilter(CalmailFilterSet):
    """One filter per column of the log, plus a free-text search."""

    q = django_filters.CharFilter(label=_("Search (message, user, object)"), method="filter_search")
    time = DateRangeFilter(label=_("Time"))
    level = django_filters.ChoiceFilter(
        label=_("Level"), choices=Level.choices, empty_label=_("any")
    )
    category = django_filters.ChoiceFilter(
        label=_("Category"), choices=Category.choices, empty_label=_("any")
    )
    actor = django_filters.ModelChoiceFilter(
        label=_("User"), queryset=_actors, empty_label=_("any")
    )
    content_type = ObjectTypeChoice(
        label=_("Object type"), queryset=_object_types, empty_label=_("any")
    )
    object_id = django_filters.NumberFilter(label=_("Object ID"))
    audit_action = django_filters.ChoiceFilter(
        label=_("Audit"), choices=AuditAction.choices, empty_label=_("any")
    )

    class Meta:
        model = LogEntry
        fields = []

    @property
    def qs(self):
        # Sign-ins would drown everything else: shown only when their category is chosen
        # (also without any filter, when django-filter skips filter_queryset()).
        if not hasattr(self, "_qs"):
            queryset = super().qs
            if not (self.is_bound and self.form.is_valid() and self.form.cleaned_data["category"]):
                queryset = queryset.exclude(category=Category.SIGN_IN)
            self._qs = queryset
        return self._qs

    def filter_search(self, queryset, name, value):
        return queryset.filter(search_text__icontains=value)
