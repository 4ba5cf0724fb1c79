import datetime as dt
from functools import partial

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django_tables2 import RequestConfig

from actions import runs, schedule, services
from actions.filters import ActionFilter
from actions.forms import ActionForm, AudiencePreviewForm, PreviewRuleForm
from actions.models import Action, ReportScope
from actions.selectors import (
    ADD,
    CHANGE,
    DELETE,
    VIEW,
    VIEW_RUNS,
    ActionRights,
    action_list,
    run_list,
    visible_actions,
)
from actions.tables import ActionRunTable, ActionTable
from actions.tasks import dispatch_run
from calmail.common.forms import add_service_errors
from calmail.common.lists import CalmailListView
from calmail.common.sections import SectionFormView, SectionObjectMixin
from inventory.recipients import check_selection
from inventory.selectors import Scope
from templates_app.models import AddAttachment

LIST_TITLE = gettext_lazy("Actions")
PREVIEW_COUNT = 10
# The audience preview lists this many recipients and skipped ones; the rest are counted.
AUDIENCE_SHOWN = 20


def next_runs(values: dict, *, count: int = PREVIEW_COUNT) -> tuple[list[dt.datetime], str]:
    """The next slots of a rule given as form values, or why there are none."""
    try:
        rule = schedule.Rule(
            time=values["time_of_day"],
            start=values["start"],
            end=values.get("end"),
            days=schedule.parse_days(values.get("days") or []),
            weekdays=schedule.parse_weekdays(values.get("weekdays") or []),
            months=schedule.parse_months(values.get("months") or []),
        )
    except (ValueError, KeyError, TypeError):
        return [], _("Enter a start to see the next runs.")
    if not schedule.can_ever_fire(rule):
        return [], _(
            "This rule can never fire: no date matches the days of month, weekdays and "
            "months together between start and end."
        )
    slots = schedule.next_slots(rule, timezone.now(), count)
    if not slots:
        return [], _("No further runs: the end has passed.")
    return slots, ""


def other_scope(report_scope: str, customers) -> Scope:
    """The report scope of the other addresses, from the form's values (as
    actions.selectors.action_other_scope gives it for a saved action)."""
    if report_scope == ReportScope.ALL:
        return Scope.all()
    if report_scope == ReportScope.CUSTOMERS and customers:
        return Scope.customers(customer.pk for customer in customers)
    return Scope.none()


def run_day(values) -> dt.date:
    """The day of the next run the rule in the form's values gives, else today (a run
    started by hand)."""
    rule = PreviewRuleForm(values)
    if rule.is_valid():
        slots, _message = next_runs(rule.cleaned_data, count=1)
        if slots:
            return timezone.localdate(slots[0])
    return timezone.localdate()


def audience_preview_context(values, *, user, action: Action | None = None) -> dict:
    """What the action form's audience preview shows for the form's values: the figures
    of the next run (actions.services.audience_preview), or why there are none. Only
    templates, customers and recipients the user may use count, as in the form; anything
    else gives the same message whether it exists or not."""
    form = AudiencePreviewForm(values, user=user)
    if not form.is_valid():
        problems = []
        if "template" in form.errors:
            problems.append(_("The chosen template does not exist or is not available to you."))
        if "report_scope_customers" in form.errors:
            problems.append(
                _("A chosen customer of the report does not exist or is not available to you.")
            )
        if "report_scope" in form.errors:
            problems += form.errors["report_scope"]
        return {"problems": problems}
    cleaned = form.cleaned_data
    template, recipients = cleaned["template"], cleaned["recipients"]
    if template is None or not recipients:
        return {
            "problems": [_("Choose recipients and a template to see who the next run reaches.")]
        }
    try:
        items = check_selection(recipients, user=user)
    except ValidationError as exc:
        return {"problems": exc.messages}
    customers = cleaned["report_scope_customers"] or []
    refusal = services.report_scope_refusal(
        report_scope=cleaned["report_scope"],
        customers=customers,
        recipients=recipients,
        user=user,
        previous=action.report_scope if action is not None else None,
    )
    if refusal:
        return {"problems": [message for messages in refusal.values() for message in messages]}
    day = run_day(values)
    try:
        preview = services.audience_preview(
            template=template,
            recipients=items,
            send_without_attachments=cleaned["send_without_attachments"],
            today=day,
            limit=AUDIENCE_SHOWN,
            other_scope=other_scope(cleaned["report_scope"], customers),
        )
    except ValidationError as exc:
        return {"problems": exc.messages}
    return {
        "preview": preview,
        "day": date_format(day, "l") + ", " + date_format(day, "DATE_FORMAT"),
        "more": preview.mails - len(preview.recipients),
        "skipped": preview.skipped[:AUDIENCE_SHOWN],
        "skipped_more": max(len(preview.skipped) - AUDIENCE_SHOWN, 0),
        "template": template,
        "attaches_report": bool(template.report)
        and template.add_attachment == AddAttachment.REPORT,
        "send_without_attachments": cleaned["send_without_attachments"],
    }


def _format(slot: dt.datetime) -> str:
    local = timezone.localtime(slot)
    return f"{date_format(local, 'l')}, {date_format(local, 'DATETIME_FORMAT')}"


class ActionListView(CalmailListView):
    permission_required = VIEW
    model = Action
    table_class = ActionTable
    filterset_class = ActionFilter
    title = LIST_TITLE
    export_name = "actions"
    create_url_name = "actions:create"
    create_label = gettext_lazy("New action")
    create_permission = ADD

    def get_queryset(self):
        return action_list(user=self.request.user)


class ActionMixin(SectionObjectMixin):
    """Loads the action from the URL, limited to those the user may see (else 404)."""

    list_url_name = "actions:list"
    list_title = LIST_TITLE

    def get_action(self) -> Action:
        try:
            return visible_actions(user=self.request.user).get(pk=self.kwargs["pk"])
        except Action.DoesNotExist:
            raise Http404(_("No such action.")) from None

    def get_changeable_action(self) -> Action:
        action = self.get_action()
        if not ActionRights(self.request.user).can_change(action):
            raise PermissionDenied(_("Only members of the action's group can change it."))
        return action


class ActionFormView(ActionMixin, SectionFormView):
    """Create (no pk) and edit (pk). "Preview" re-renders the form with the next runs."""

    template_name = "actions/form.html"

    add_permission = ADD
    change_permission = CHANGE

    def get_form(self, data=None):
        instance = self.get_changeable_action() if "pk" in self.kwargs else Action()
        return ActionForm(
            data, instance=instance, user=self.request.user, cancel_url=reverse("actions:list")
        )

    def render_form(self, form, slots=None, slots_message="", audience=None):
        if slots is None and form.instance.pk:
            action = form.instance
            slots, slots_message = next_runs(
                {
                    "time_of_day": action.time_of_day,
                    "start": action.start,
                    "end": action.end,
                    "days": action.days,
                    "weekdays": action.weekdays,
                    "months": action.months,
                }
            )
        title = (
            _("Edit action %(name)s") % {"name": form.instance.description}
            if form.instance.pk
            else _("New action")
        )
        return render(
            self.request,
            self.template_name,
            self.base_context(
                form=form,
                title=title,
                slots=[_format(s) for s in slots or []],
                slots_message=slots_message,
                preview_url=reverse("actions:next_runs"),
                audience_url=(
                    reverse("actions:audience_preview", args=[form.instance.pk])
                    if form.instance.pk
                    else reverse("actions:audience_preview")
                ),
                audience=audience,
            ),
        )

    def get(self, request, **kwargs):
        return self.render_form(self.get_form())

    def post(self, request, **kwargs):
        form = self.get_form(request.POST)
        if not form.is_valid():
            return self.render_form(form, slots=[])
        if "preview" in request.POST:
            slots, message = next_runs(form.cleaned_data)
            # Without JavaScript the button also shows the audience.
            audience = render_to_string(
                "actions/audience_preview.html",
                audience_preview_context(
                    request.POST,
                    user=request.user,
                    action=form.instance if form.instance.pk else None,
                ),
                request=request,
            )
            return self.render_form(form, slots=slots, slots_message=message, audience=audience)
        try:
            if form.instance.pk:
                action = form.instance
                action.refresh_from_db()
                services.action_update(
                    action=action, values=form.service_values(), user=request.user
                )
                messages.success(request, _("%(name)s saved.") % {"name": action.description})
            else:
                action = services.action_create(values=form.service_values(), user=request.user)
                messages.success(request, _("%(name)s created.") % {"name": action.description})
        except ValidationError as exc:
            add_service_errors(form, exc)
            return self.render_form(form, slots=[])
        return redirect("actions:list")


class NextRunsView(PermissionRequiredMixin, View):
    """JSON for the form's live "next runs" list: {"runs": [...], "message": "..."}."""

    permission_required = VIEW
    raise_exception = True

    def get(self, request):
        form = PreviewRuleForm(request.GET)
        if not form.is_valid():
            return JsonResponse({"runs": [], "message": _("Enter a start to see the next runs.")})
        slots, message = next_runs(form.cleaned_data)
        return JsonResponse({"runs": [_format(s) for s in slots], "message": message})


class AudiencePreviewView(ActionMixin, View):
    """The action form's live audience preview (actions.js posts the whole form): an HTML
    fragment with the next run's figures. For whom the form is: the permission to add
    (new action) or to change this action (its pk: 404 if hidden, 403 if not the user's
    to change)."""

    http_method_names = ["post"]

    def get_permission_required(self):
        return (CHANGE,) if "pk" in self.kwargs else (ADD,)

    def post(self, request, **kwargs):
        action = self.get_changeable_action() if "pk" in self.kwargs else None
        return render(
            request,
            "actions/audience_preview.html",
            audience_preview_context(request.POST, user=request.user, action=action),
        )


class ConfirmView(ActionMixin, View):
    """A row-menu mutation: GET asks, POST does it."""

    permission_required = CHANGE
    question = ""
    confirm_label = ""
    danger = False

    def get_target(self) -> Action:
        return self.get_changeable_action()

    def render_page(self, action, refusal=None):
        return self.render_confirm_page(
            title=self.get_title(action),
            question=self.get_question(action),
            refusal=refusal,
            blocked=bool(refusal),
            danger=self.danger,
            confirm_label=self.get_confirm_label(action),
            cancel_url=reverse("actions:list"),
        )

    def get_title(self, action):
        return self.get_confirm_label(action)

    def get_question(self, action):
        return self.question % {"name": action.description}

    def get_confirm_label(self, action):
        return self.confirm_label

    def get(self, request, pk):
        return self.render_page(self.get_target())

    def post(self, request, pk):
        action = self.get_target()
        return self.perform(action)


class ActionDuplicateView(ConfirmView):
    permission_required = (ADD, CHANGE)
    question = gettext_lazy(
        "Make an unpublished copy of %(name)s? You can check and publish it afterwards."
    )
    confirm_label = gettext_lazy("Duplicate")

    def perform(self, action):
        copy = services.action_duplicate(action=action)
        messages.success(
            self.request, _("%(name)s created as a copy.") % {"name": copy.description}
        )
        return redirect("actions:update", pk=copy.pk)


class ActionToggleView(ConfirmView):
    def get_question(self, action):
        if action.published:
            return _("Deactivate %(name)s? It will not run until activated again.") % {
                "name": action.description
            }
        return _("Activate %(name)s? It runs from its next slot on; missed slots are not sent.") % {
            "name": action.description
        }

    def get_confirm_label(self, action):
        return _("Deactivate") if action.published else _("Activate")

    def perform(self, action):
        services.action_set_published(action=action, published=not action.published)
        text = _("%(name)s activated.") if action.published else _("%(name)s deactivated.")
        messages.success(self.request, text % {"name": action.description})
        return redirect("actions:list")


class ActionRunNowView(ConfirmView):
    question = gettext_lazy("Run %(name)s now? Its mails are put in the outbox at once.")
    confirm_label = gettext_lazy("Run now")

    def perform(self, action):
        run = runs.action_run_now(action=action)
        transaction.on_commit(partial(dispatch_run, run_id=run.pk))
        messages.success(
            self.request,
            _("%(name)s is running; its mails appear in the outbox.")
            % {"name": action.description},
        )
        return redirect("actions:runs", pk=action.pk)


class ActionDeleteView(ConfirmView):
    permission_required = DELETE
    question = gettext_lazy(
        "Delete the action %(name)s and its run history? This cannot be undone."
    )
    confirm_label = gettext_lazy("Delete")
    danger = True

    def get_target(self):
        action = self.get_action()
        if not ActionRights(self.request.user).can_delete(action):
            raise PermissionDenied(_("Only members of the action's group can delete it."))
        return action

    def perform(self, action):
        name = action.description
        services.action_delete(action=action)
        messages.success(self.request, _("%(name)s deleted.") % {"name": name})
        return redirect("actions:list")


class ActionRunListView(ActionMixin, View):
    permission_required = (VIEW, VIEW_RUNS)

    def get(self, request, pk):
        action = self.get_action()
        table = ActionRunTable(run_list(user=request.user, action=action), user=request.user)
        RequestConfig(request, paginate={"per_page": 50}).configure(table)
        return render(
            request,
            "actions/runs.html",
            self.base_context(
                title=_("Run history of %(name)s") % {"name": action.description},
                action=action,
                table=table,
            ),
        )
