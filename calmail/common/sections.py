"""What the sections' pages (SMTP configurations, distribution lists, system addresses,
templates, actions, outbox) have in common: the mixin of the pages about one object, the
create/edit, duplicate and delete views built on it, the bulk view and the bulk "Delete"
action. Titles, URL names, permissions, forms and services stay with each section."""

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View

from calmail.common.forms import add_service_errors
from calmail.common.lists import BulkAction, BulkActionView, BulkResult


class SectionObjectMixin(PermissionRequiredMixin):
    """For the pages about one object of a section (detail, form, confirm): a missing
    permission is a 403, not a redirect to the login, and every page gets the link back to
    its list (`list_url_name`, `list_title`) for the breadcrumb."""

    raise_exception = True
    list_url_name = ""
    list_title = ""

    def object_from_url(self, queryset):
        """The object named by the URL's pk, looked for only in `queryset` (what the user
        may see): anything else is a 404, so hidden objects are indistinguishable from
        missing ones."""
        return get_object_or_404(queryset, pk=self.kwargs["pk"])

    def base_context(self, **extra):
        return {"list_url": reverse(self.list_url_name), "list_title": self.list_title, **extra}

    def render_form_page(self, form, title):
        """The shared one-form page (create, edit, duplicate) of the section."""
        return render(self.request, "common/form.html", self.base_context(form=form, title=title))

    def render_confirm_page(self, **context):
        """The shared "are you sure?" page of the section: GET shows it, POST does the work."""
        return render(self.request, "common/confirm.html", self.base_context(**context))


class SectionBulkView(PermissionRequiredMixin, BulkActionView):
    """Where a section's list posts its bulk actions: a missing permission is a 403."""

    raise_exception = True


class SectionFormView(SectionObjectMixin, View):
    """Create (URL without pk) and edit (URL with pk) in one view: the same form, but the
    permission to add or to change (`add_permission`, `change_permission`).

    A section implements `get_form(data=None)` (its instance new or loaded from the URL),
    `render_form(form)`, `create(form)` and `update(obj, form)` through its services, and
    `saved_redirect(obj)`; a ValidationError from a service goes onto the form
    (`add_errors`)."""

    add_permission = ""
    change_permission = ""

    def get_permission_required(self):
        return (self.change_permission,) if "pk" in self.kwargs else (self.add_permission,)

    def get(self, request, **kwargs):
        return self.render_form(self.get_form())

    def post(self, request, **kwargs):
        form = self.get_form(request.POST)
        if not form.is_valid():
            return self.render_form(form)
        try:
            if form.instance.pk:
                obj = form.instance
                # The form wrote the cleaned values onto its instance; reload so the
                # service compares them with what is really stored.
                obj.refresh_from_db()
                self.update(obj, form)
                messages.success(request, _("%(name)s saved.") % {"name": obj.name})
            else:
                obj = self.create(form)
                messages.success(request, _("%(name)s created.") % {"name": obj.name})
        except ValidationError as exc:
            self.add_errors(form, exc)
            return self.render_form(form)
        return self.saved_redirect(obj)

    def add_errors(self, form, exc: ValidationError) -> None:
        add_service_errors(form, exc)


class SectionDuplicateView(SectionObjectMixin, View):
    """Duplicate one object of a section: GET shows the form (with a proposed name), POST
    makes the copy through the section's service and opens the copy's edit page
    (`update_url_name`); a ValidationError from the service goes onto the form. A section
    implements `get_source()`, `get_initial(source)` (GET only: the proposed name costs
    queries), `get_form(source, *, data=None, initial=None)` and `duplicate(source, form)`."""

    update_url_name = ""

    def get_source(self):
        raise NotImplementedError

    def get_initial(self, source) -> dict:
        raise NotImplementedError

    def get_form(self, source, *, data=None, initial=None):
        raise NotImplementedError

    def duplicate(self, source, form):
        raise NotImplementedError

    def render_page(self, source, form):
        return self.render_form_page(form, _("Duplicate %(name)s") % {"name": source.name})

    def get(self, request, pk):
        source = self.get_source()
        return self.render_page(source, self.get_form(source, initial=self.get_initial(source)))

    def post(self, request, pk):
        source = self.get_source()
        form = self.get_form(source, data=request.POST)
        if form.is_valid():
            try:
                copy = self.duplicate(source, form)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, _("%(name)s created as a copy.") % {"name": copy.name})
                return redirect(self.update_url_name, pk=copy.pk)
        return self.render_page(source, form)


class SectionDeleteView(SectionObjectMixin, View):
    """Delete one object of a section: GET asks (naming it), POST deletes it through the
    section's service and returns to the list. A refusal (`get_refusal`, decided on GET
    already, or a ValidationError from the service) is shown instead of the question,
    without the delete button. A section sets `question` (with %(name)s), optionally
    `explanation`, and implements `get_target()` and `delete(obj)`."""

    question = ""
    explanation = None

    def get_target(self):
        raise NotImplementedError

    def delete(self, obj) -> None:
        raise NotImplementedError

    def get_refusal(self, obj) -> str | None:
        return None

    def render_page(self, obj, refusal=None):
        return self.render_confirm_page(
            title=_("Delete %(name)s") % {"name": obj.name},
            question=self.question % {"name": obj.name},
            explanation=self.explanation,
            refusal=refusal,
            blocked=bool(refusal),
            danger=True,
            confirm_label=_("Delete"),
            cancel_url=reverse(self.list_url_name),
        )

    def get(self, request, pk):
        obj = self.get_target()
        return self.render_page(obj, self.get_refusal(obj))

    def post(self, request, pk):
        obj = self.get_target()
        name = obj.name
        refusal = self.get_refusal(obj)
        if refusal:
            return self.render_page(obj, refusal)
        try:
            self.delete(obj)
        except ValidationError as exc:
            return self.render_page(obj, refusal=" ".join(exc.messages))
        messages.success(request, _("%(name)s deleted.") % {"name": name})
        return redirect(self.list_url_name)


def bulk_result(
    objects,
    *,
    perform: Callable[[object], object],
    refusal: Callable[[object], str | None] | None = None,
    errors: tuple[type[ValidationError], ...] = (ValidationError,),
) -> BulkResult:
    """The loop of a bulk action: each object is refused (`refusal(obj)`, a reason or None)
    or `perform(obj)` is done; one of `errors` raised by perform refuses it with its messages.
    One object's refusal never stops the others."""
    done, refused = 0, []
    for obj in objects:
        reason = refusal(obj) if refusal else None
        if reason is None:
            try:
                perform(obj)
            except errors as exc:
                reason = " ".join(exc.messages)
        if reason:
            refused.append((obj, reason))
        else:
            done += 1
    return BulkResult(done=done, refused=refused)


def bulk_delete_action(
    *,
    service: Callable[..., object],
    keyword: str,
    permission: str,
    done_message,
    refusal: Callable[[object], str | None] | None = None,
    refuse_before_deleting: bool = False,
) -> BulkAction:
    """The "Delete" bulk action of a list: `service(**{keyword: obj})` for each object; a
    ValidationError from the service leaves that object out with its messages as reason.

    `refusal(obj)` is what the confirmation page shows. With `refuse_before_deleting`, all
    refusals are also decided before the first deletion and those objects are left out
    with that reason, so deleting one object cannot change what was confirmed for another.
    """

    def run(objects, user):
        if refusal and refuse_before_deleting:
            refusals = {obj.pk: refusal(obj) for obj in objects}
            return bulk_result(objects, perform=delete, refusal=lambda obj: refusals[obj.pk])
        return bulk_result(objects, perform=delete)

    def delete(obj):
        service(**{keyword: obj})

    return BulkAction(
        label=gettext_lazy("Delete"),
        permission=permission,
        run=run,
        danger=True,
        done_message=done_message,
        **({"refusal": refusal} if refusal else {}),
    )
