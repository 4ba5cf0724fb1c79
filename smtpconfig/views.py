import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext_lazy
from django.views import View
from django.views.generic import DetailView

from calmail.common.lists import BulkAction, BulkActionView, BulkResult, CalmailListView
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
    return None


def _bulk_delete(objects, user):
    # Decide refusals up front, exactly as the confirmation page showed them.
    refusals = {configuration.pk: _bulk_delete_refusal(configuration) for configuration in objects}
    done, refused = 0, []
    for configuration in objects:
        reason = refusals[configuration.pk]
        if reason is None:
            try:
                services.smtp_configuration_delete(configuration=configuration)
            except ValidationError as exc:
                reason = " ".join(exc.messages)
        if reason:
            refused.append((configuration, reason))
        else:
            done += 1
    return BulkResult(done=done, refused=refused)


BULK_ACTIONS = {
    "delete": BulkAction(
        label=gettext_lazy("Delete"),
        permission="smtpconfig.delete_smtpconfiguration",
        run=_bulk_delete,
        refusal=_bulk_delete_refusal,
        danger=True,
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
    create_permission = "smtpconfig.add_smtpconfiguration"
    bulk_url_name = "smtpconfig:bulk"
    bulk_actions = BULK_ACTIONS

    def get_queryset(self):
        return smtp_configuration_list(user=self.request.user)


class SmtpConfigurationBulkView(PermissionRequiredMixin, BulkActionView):
    permission_required = "smtpconfig.view_smtpconfiguration"
    raise_exception = True
    bulk_actions = BULK_ACTIONS
    list_url_name = "smtpconfig:list"

    def get_queryset(self):
        return smtp_configuration_list(user=self.request.user)


class ConfigurationMixin(PermissionRequiredMixin):
    """Loads the configuration from the URL, limited to what the user may see (else 404)."""

    raise_exception = True

    def get_configuration(self) -> SmtpConfiguration:
        return get_object_or_404(
            smtp_configuration_list(user=self.request.user), pk=self.kwargs["pk"]
        )

    def base_context(self, **extra):
        return {"list_url": reverse("smtpconfig:list"), "list_title": LIST_TITLE, **extra}


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


class SmtpConfigurationFormView(ConfigurationMixin, View):
    """Create (no pk) and edit (pk) share one view: the same form, the matching service."""

    template_name = "common/form.html"

    def get_permission_required(self):
        if "pk" in self.kwargs:
            return ("smtpconfig.change_smtpconfiguration",)
        return ("smtpconfig.add_smtpconfiguration",)

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

    def get(self, request, **kwargs):
        return self.render_form(self.get_form())

    def post(self, request, **kwargs):
        form = self.get_form(request.POST)
        if not form.is_valid():
            return self.render_form(form)
        make_default = form.cleaned_data.get("make_default", False)
        try:
            if form.instance.pk:
                configuration = form.instance
                # The form wrote the cleaned values onto its instance; reload so the
                # service compares them with what is really stored.
                configuration.refresh_from_db()
                services.smtp_configuration_update(
                    configuration=configuration,
                    values=form.service_values(),
                    make_default=make_default,
                )
                messages.success(request, _("%(name)s saved.") % {"name": configuration.name})
            else:
                configuration = services.smtp_configuration_create(
                    values=form.service_values(), make_default=make_default
                )
                messages.success(request, _("%(name)s created.") % {"name": configuration.name})
        except ValidationError as exc:
            form.add_error(None, exc)
            return self.render_form(form)
        return redirect("smtpconfig:detail", pk=configuration.pk)


class SmtpConfigurationDuplicateView(ConfigurationMixin, View):
    permission_required = "smtpconfig.add_smtpconfiguration"

    def render_form(self, configuration, form):
        title = _("Duplicate %(name)s") % {"name": configuration.name}
        return render(self.request, "common/form.html", self.base_context(form=form, title=title))

    def get(self, request, pk):
        configuration = self.get_configuration()
        form = DuplicateForm(
            initial={"name": services.copy_name(configuration.name)},
            cancel_url=reverse("smtpconfig:list"),
        )
        return self.render_form(configuration, form)

    def post(self, request, pk):
        configuration = self.get_configuration()
        form = DuplicateForm(request.POST, cancel_url=reverse("smtpconfig:list"))
        if form.is_valid():
            try:
                copy = services.smtp_configuration_duplicate(
                    configuration=configuration,
                    copy_password=form.cleaned_data["copy_password"],
                    name=form.cleaned_data["name"],
                    password=form.cleaned_data["password"],
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(request, _("%(name)s created as a copy.") % {"name": copy.name})
                return redirect("smtpconfig:update", pk=copy.pk)
        return self.render_form(configuration, form)


class SmtpConfigurationSetDefaultView(ConfigurationMixin, View):
    permission_required = "smtpconfig.change_smtpconfiguration"

    def get(self, request, pk):
        configuration = self.get_configuration()
        return render(
            request,
            "common/confirm.html",
            self.base_context(
                title=_("Make %(name)s the default") % {"name": configuration.name},
                question=_("Mails that name no configuration will be sent through %(name)s.")
                % {"name": configuration.name},
                confirm_label=_("Make default"),
                cancel_url=reverse("smtpconfig:list"),
            ),
        )

    def post(self, request, pk):
        configuration = self.get_configuration()
        services.smtp_configuration_set_default(configuration=configuration)
        messages.success(
            request, _("%(name)s is now the default configuration.") % {"name": configuration.name}
        )
        return redirect("smtpconfig:list")


class SmtpConfigurationDeleteView(ConfigurationMixin, View):
    permission_required = "smtpconfig.delete_smtpconfiguration"

    def needs_successor(self, configuration) -> bool:
        return (
            configuration.is_default
            and SmtpConfiguration.objects.exclude(pk=configuration.pk).exists()
        )

    def render_page(self, configuration, form=None, refusal=None):
        explanation = None
        if form is not None:
            explanation = _("It is the default configuration: choose which one takes over.")
        return render(
            self.request,
            "common/confirm.html",
            self.base_context(
                title=_("Delete %(name)s") % {"name": configuration.name},
                question=_("Delete the SMTP configuration %(name)s? This cannot be undone.")
                % {"name": configuration.name},
                explanation=explanation,
                form=form,
                refusal=refusal,
                danger=True,
                confirm_label=_("Delete"),
                cancel_url=reverse("smtpconfig:list"),
            ),
        )

    def get(self, request, pk):
        configuration = self.get_configuration()
        form = (
            DeleteForm(configuration=configuration) if self.needs_successor(configuration) else None
        )
        return self.render_page(configuration, form)

    def post(self, request, pk):
        configuration = self.get_configuration()
        successor = None
        form = None
        if self.needs_successor(configuration):
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
            # Verdicts are built from server replies and never contain the password.
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
