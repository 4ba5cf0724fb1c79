import logging

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext_lazy
from django.views import View
from django.views.generic import DetailView

from calmail.common.lists import CalmailListView
from calmail.common.sections import (
    SectionBulkView,
    SectionDuplicateView,
    SectionFormView,
    SectionObjectMixin,
    bulk_delete_action,
)
from maillog.services import log_transport_check
from smtpconfig import services, transport
from smtpconfig.filters import SmtpConfigurationFilter
from smtpconfig.forms import (
    ConnectionTestForm,
    DeleteForm,
    DuplicateForm,
    SmtpConfigurationForm,
    TestMailForm,
)
from smtpconfig.models import SmtpConfiguration, default_sender
from smtpconfig.selectors import smtp_configuration_list
from smtpconfig.tables import SmtpConfigurationTable

logger = logging.getLogger(__name__)

LIST_TITLE = gettext_lazy("SMTP configurations")


def _bulk_delete_refusal(configuration):
    if configuration.is_default and SmtpConfiguration.objects.count() > 1:
        return _("it is the default; delete it on its own page, where you choose the new default.")
    usages = services.smtp_configuration_usages(configuration)
    if usages:
        return _("%(what)s refer to it; deactivate it instead.") % {
            "what": ", ".join(str(usage) for usage in usages)
        }
    return None


BULK_ACTIONS = {
    "delete": bulk_delete_action(
        service=services.smtp_configuration_delete,
        keyword="configuration",
        permission="smtpconfig.delete_smtpconfiguration",
        refusal=_bulk_delete_refusal,
        # Deleting the default elsewhere in the batch must not change what was confirmed.
        refuse_before_deleting=True,
        done_message=ngettext_lazy(
            "%(count)d configuration deleted.", "%(count)d configurations deleted.", "count"
        ),
    )
}


class SmtpConfigurationListView(CalmailListView):
    permission_required = "smtpconfig.view_smtpconfiguration"
    model = SmtpConfiguration
    table_class = SmtpConfigurationTable
    filterset_class = SmtpConfigurationFilter
    title = LIST_TITLE
    export_name = "smtp-configurations"
    create_url_name = "smtpconfig:create"
    create_label = gettext_lazy("New SMTP configuration")
    create_permission = "smtpconfig.add_smtpconfiguration"
    bulk_url_name = "smtpconfig:bulk"
    bulk_actions = BULK_ACTIONS

    def get_queryset(self):
        return smtp_configuration_list(user=self.request.user)


class SmtpConfigurationBulkView(SectionBulkView):
    permission_required = "smtpconfig.view_smtpconfiguration"
    bulk_actions = BULK_ACTIONS
    list_url_name = "smtpconfig:list"

    def get_queryset(self):
        return smtp_configuration_list(user=self.request.user)


class ConfigurationMixin(SectionObjectMixin):
    """Loads the configuration from the URL, limited to what the user may see (else 404)."""

    list_url_name = "smtpconfig:list"
    list_title = LIST_TITLE

    def get_configuration(self) -> SmtpConfiguration:
        return self.object_from_url(smtp_configuration_list(user=self.request.user))


class SmtpConfigurationDetailView(ConfigurationMixin, DetailView):
    permission_required = "smtpconfig.view_smtpconfiguration"
    template_name = "smtpconfig/detail.html"
    context_object_name = "configuration"

    def get_object(self, queryset=None):
        return self.get_configuration()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(self.base_context(title=self.object.name))
        return context


class SmtpConfigurationFormView(ConfigurationMixin, SectionFormView):
    """Create (no pk) and edit (pk) share one view: the same form, the matching service."""

    template_name = "smtpconfig/form.html"

    add_permission = "smtpconfig.add_smtpconfiguration"
    change_permission = "smtpconfig.change_smtpconfiguration"

    def get_form(self, data=None):
        instance = self.get_configuration() if "pk" in self.kwargs else SmtpConfiguration()
        return SmtpConfigurationForm(data, instance=instance, cancel_url=reverse("smtpconfig:list"))

    def render_form(self, form):
        title = (
            _("Edit SMTP configuration %(name)s") % {"name": form.instance.name}
            if form.instance.pk
            else _("New SMTP configuration")
        )
        return render(self.request, self.template_name, self.base_context(form=form, title=title))

    def create(self, form):
        return services.smtp_configuration_create(
            values=form.service_values(),
            make_default=form.cleaned_data.get("make_default", False),
        )

    def update(self, obj, form):
        services.smtp_configuration_update(
            configuration=obj,
            values=form.service_values(),
            make_default=form.cleaned_data.get("make_default", False),
        )

    def add_errors(self, form, exc):
        # Unlike other sections, every service refusal is shown above the form.
        form.add_error(None, exc)

    def saved_redirect(self, obj):
        return redirect("smtpconfig:detail", pk=obj.pk)


class SmtpConfigurationDuplicateView(ConfigurationMixin, SectionDuplicateView):
    permission_required = "smtpconfig.add_smtpconfiguration"
    update_url_name = "smtpconfig:update"

    def get_source(self):
        return self.get_configuration()

    def get_initial(self, source):
        return {"name": services.copy_name(source.name)}

    def get_form(self, source, *, data=None, initial=None):
        return DuplicateForm(data, initial=initial, cancel_url=reverse("smtpconfig:list"))

    def duplicate(self, source, form):
        return services.smtp_configuration_duplicate(
            configuration=source,
            copy_password=form.cleaned_data["copy_password"],
            name=form.cleaned_data["name"],
            password=form.cleaned_data["password"],
        )


class SmtpConfigurationSetDefaultView(ConfigurationMixin, View):
    permission_required = "smtpconfig.change_smtpconfiguration"

    def render_page(self, configuration, refusal=None):
        return self.render_confirm_page(
            title=_("Make %(name)s the default") % {"name": configuration.name},
            question=_("Mails that name no configuration will be sent through %(name)s.")
            % {"name": configuration.name},
            refusal=refusal,
            blocked=bool(refusal),
            confirm_label=_("Make default"),
            cancel_url=reverse("smtpconfig:list"),
        )

    def get(self, request, pk):
        configuration = self.get_configuration()
        refusal = None
        if not configuration.is_active:
            refusal = _("%(name)s is deactivated: reactivate it before making it the default.") % {
                "name": configuration.name
            }
        return self.render_page(configuration, refusal)

    def post(self, request, pk):
        configuration = self.get_configuration()
        try:
            services.smtp_configuration_set_default(configuration=configuration)
        except ValidationError as exc:
            return self.render_page(configuration, refusal=" ".join(exc.messages))
        messages.success(
            request, _("%(name)s is now the default configuration.") % {"name": configuration.name}
        )
        return redirect("smtpconfig:list")


class SmtpConfigurationDeleteView(ConfigurationMixin, View):
    """Delete page. A configuration that anything refers to (sent mails above all) is
    refused up front, without the button, and offers to deactivate it instead."""

    permission_required = "smtpconfig.delete_smtpconfiguration"

    def render_page(self, configuration, form=None, refusal=None, usages=()):
        explanation = None
        if form is not None:
            explanation = _("It is the default configuration: choose which one takes over.")
        alternative = None
        if (
            refusal
            and usages
            and configuration.is_active
            and self.request.user.has_perm("smtpconfig.change_smtpconfiguration")
        ):
            alternative = {
                "url": reverse("smtpconfig:deactivate", args=[configuration.pk]),
                "label": _("Deactivate instead"),
                "text": _(
                    "Deactivate it instead: no new mail can use it, mails already queued "
                    "for it are still delivered, and its history stays."
                ),
            }
        elif refusal and usages and not configuration.is_active:
            alternative = {"text": _("It is deactivated already: no new mail can use it.")}
        return self.render_confirm_page(
            title=_("Delete %(name)s") % {"name": configuration.name},
            question=_("Delete the SMTP configuration %(name)s? This cannot be undone.")
            % {"name": configuration.name},
            explanation=explanation,
            form=form,
            refusal=refusal,
            refusal_links=usages,
            blocked=bool(refusal),
            alternative=alternative,
            danger=True,
            confirm_label=_("Delete"),
            cancel_url=reverse("smtpconfig:list"),
        )

    def refused_page(self, configuration):
        """The page of a refusal, or None when the configuration may be deleted."""
        usages = services.smtp_configuration_usages(configuration)
        refusal = services.smtp_configuration_delete_refusal(configuration, usages)
        if refusal is None:
            return None
        return self.render_page(configuration, refusal=refusal, usages=usages)

    def get(self, request, pk):
        configuration = self.get_configuration()
        refused = self.refused_page(configuration)
        if refused is not None:
            return refused
        form = (
            DeleteForm(configuration=configuration)
            if services.smtp_configuration_needs_successor(configuration)
            else None
        )
        return self.render_page(configuration, form)

    def post(self, request, pk):
        configuration = self.get_configuration()
        refused = self.refused_page(configuration)
        if refused is not None:
            return refused
        successor = None
        form = None
        if services.smtp_configuration_needs_successor(configuration):
            form = DeleteForm(request.POST, configuration=configuration)
            if not form.is_valid():
                return self.render_page(configuration, form)
            successor = form.cleaned_data["successor"]
        name = configuration.name
        try:
            services.smtp_configuration_delete(configuration=configuration, successor=successor)
        except ValidationError as exc:
            return self.render_page(configuration, form, refusal=" ".join(exc.messages))
        messages.success(request, _("%(name)s deleted.") % {"name": name})
        return redirect("smtpconfig:list")


class SmtpConfigurationActivationView(ConfigurationMixin, View):
    """Deactivate (`active = False`) or reactivate a configuration: GET asks, POST does
    it. Deactivating the default asks which active configuration takes over."""

    permission_required = "smtpconfig.change_smtpconfiguration"
    active = False

    def refusal(self, configuration) -> str | None:
        if self.active:
            if configuration.is_active:
                return _("%(name)s is already active.") % {"name": configuration.name}
            return None
        return services.smtp_configuration_deactivate_refusal(configuration)

    def successor_form(self, configuration, data=None):
        if self.active or not configuration.is_default:
            return None
        return DeleteForm(data, configuration=configuration)

    def render_page(self, configuration, form=None, refusal=None):
        name = {"name": configuration.name}
        if self.active:
            title = _("Reactivate %(name)s") % name
            question = _("Reactivate %(name)s? New mails and actions can use it again.") % name
            explanation = None
        else:
            title = _("Deactivate %(name)s") % name
            question = _("Deactivate the SMTP configuration %(name)s?") % name
            explanation = _(
                "No new mail can use it: forms no longer offer it, and actions that still "
                "name it cannot queue mail until they use another configuration. Mails "
                "already queued for it are still delivered; its sent mails and log entries "
                "stay. You can reactivate it at any time."
            )
            if form is not None:
                explanation = " ".join(
                    [str(explanation), _("It is the default: choose which one takes over.")]
                )
        usages = [] if self.active else services.smtp_configuration_usages(configuration)
        return self.render_confirm_page(
            title=title,
            question=question,
            explanation=explanation,
            form=form,
            refusal=refusal,
            blocked=bool(refusal),
            # What still refers to it, so the admin sees which actions to move.
            usages=usages,
            danger=not self.active,
            confirm_label=_("Reactivate") if self.active else _("Deactivate"),
            cancel_url=reverse("smtpconfig:detail", args=[configuration.pk]),
        )

    def get(self, request, pk):
        configuration = self.get_configuration()
        refusal = self.refusal(configuration)
        form = None if refusal else self.successor_form(configuration)
        return self.render_page(configuration, form, refusal)

    def post(self, request, pk):
        configuration = self.get_configuration()
        refusal = self.refusal(configuration)
        if refusal:
            return self.render_page(configuration, refusal=refusal)
        form = self.successor_form(configuration, request.POST)
        if form is not None and not form.is_valid():
            return self.render_page(configuration, form)
        try:
            services.smtp_configuration_set_active(
                configuration=configuration,
                active=self.active,
                successor=form.cleaned_data["successor"] if form is not None else None,
            )
        except ValidationError as exc:
            return self.render_page(configuration, form, refusal=" ".join(exc.messages))
        done = _("%(name)s reactivated.") if self.active else _("%(name)s deactivated.")
        messages.success(request, done % {"name": configuration.name})
        return redirect("smtpconfig:detail", pk=configuration.pk)


class _TransportCheckView(ConfigurationMixin, View):
    """Shared by "test connection" and "send test mail": a form, then the server's answer."""

    permission_required = "smtpconfig.test_smtpconfiguration"
    form_class = None
    title_text = ""

    def initial(self, configuration):
        sender = default_sender(configuration)
        return {"sender": sender, "recipient": self.request.user.email or sender}

    def render_page(self, configuration, form, report=None):
        return render(
            self.request,
            "smtpconfig/check.html",
            self.base_context(
                configuration=configuration,
                form=form,
                report=report,
                title=self.title_text % {"name": configuration.name},
                ca_file=bool(settings.CALMAIL_SMTP_CA_FILE),
            ),
        )

    def get(self, request, pk):
        configuration = self.get_configuration()
        return self.render_page(configuration, self.form_class(initial=self.initial(configuration)))

    def post(self, request, pk):
        configuration = self.get_configuration()
        form = self.form_class(request.POST)
        report = None
        if form.is_valid():
            report = self.run_check(configuration, **form.cleaned_data)
            log_transport_check(
                configuration=configuration,
                kind=self.log_kind,
                report=report,
                recipient=form.cleaned_data["recipient"],
            )
            # transport redacts the password from every server text in the report.
            logger.info(
                "%s of SMTP configuration #%s (%s) by %s: %s",
                self.log_name,
                configuration.pk,
                configuration.address,
                request.user.get_username(),
                report.verdict,
            )
        return self.render_page(configuration, form, report)


class SmtpConfigurationTestView(_TransportCheckView):
    form_class = ConnectionTestForm
    log_name = "Connection test"
    log_kind = "test"
    title_text = gettext_lazy("Test connection: %(name)s")

    def run_check(self, configuration, *, sender, recipient):
        return transport.test_connection(configuration, sender=sender, recipient=recipient)


class SmtpConfigurationTestMailView(_TransportCheckView):
    form_class = TestMailForm
    log_name = "Test mail"
    log_kind = "test_mail"
    title_text = gettext_lazy("Send test mail: %(name)s")

    def run_check(self, configuration, *, sender, recipient):
        return transport.send_test_mail(configuration, sender=sender, recipient=recipient)
