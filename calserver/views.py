import logging
from functools import partial

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View

from calmail.common.forms import add_service_errors
from calserver import selectors, services
from calserver.forms import ConfirmForm, ConnectionForm
from calserver.mapping import KIND_LABELS
from calserver.models import SyncTrigger
from calserver.tasks import dispatch_sync

logger = logging.getLogger(__name__)

TITLE = gettext_lazy("calServer connection")


class _ConnectionView(PermissionRequiredMixin, View):
    raise_exception = True

    def context(self, **extra):
        return {"title": TITLE, "kind_labels": KIND_LABELS, **extra}


class ConnectionDetailView(_ConnectionView):
    permission_required = "calserver.view_calserverconnection"

    def get(self, request):
        connection = selectors.connection_get()
        runs = []
        success = None
        if connection is not None:
            runs = list(selectors.recent_runs(connection=connection))
            success = selectors.last_success(connection=connection)
        return render(
            request,
            "calserver/detail.html",
            self.context(
                connection=connection,
                runs=runs,
                last_success=success,
                data_age=(timezone.now() - success.finished_at) if success else None,
                warning=selectors.failing_sync_warning(),
                managed=sorted(selectors.managed_kinds(), key=list(KIND_LABELS).index),
                running=any(run.status == "running" for run in runs),
            ),
        )


def connection_redirect(request, pk):
    """The Log links its entries by pk; there is one connection page."""
    if not request.user.has_perm("calserver.view_calserverconnection"):
        raise Http404
    return redirect("calserver:detail")


class ConnectionFormView(_ConnectionView):
    permission_required = (
        "calserver.view_calserverconnection",
        "calserver.change_calserverconnection",
    )

    def get_form(self, data=None):
        connection = selectors.connection_get() or services.new_connection()
        return ConnectionForm(data, instance=connection, cancel_url=reverse("calserver:detail"))

    def render_form(self, form):
        return render(
            request=self.request,
            template_name="calserver/form.html",
            context=self.context(form=form),
        )

    def get(self, request):
        return self.render_form(self.get_form())

    def post(self, request):
        form = self.get_form(request.POST)
        if not form.is_valid():
            return self.render_form(form)
        wanted_schedule = form.cleaned_data["sync_enabled"]
        try:
            connection = services.connection_save(
                connection=form.instance,
                values=form.service_values(),
                secrets=form.service_secrets(),
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
            return self.render_form(form)
        messages.success(request, _("calServer connection saved."))
        if connection.tested_at is None:
            if wanted_schedule:
                messages.warning(
                    request,
                    _(
                        "The settings changed: test the connection again, then turn the schedule on."
                    ),
                )
            return redirect("calserver:test")
        return redirect("calserver:detail")


class ConnectionTestView(_ConnectionView):
    permission_required = (
        "calserver.view_calserverconnection",
        "calserver.sync_calserverconnection",
    )

    def get_connection(self):
        connection = selectors.connection_get()
        if connection is None:
            raise Http404
        return connection

    def get(self, request):
        connection = self.get_connection()
        return render(
            request,
            "calserver/test.html",
            self.context(connection=connection, result=None, form=ConfirmForm()),
        )

    def post(self, request):
        connection = self.get_connection()
        result = services.connection_test(connection=connection)
        logger.info(
            "calServer connection test by %s: %s",
            request.user.get_username(),
            "ok" if result.ok else "failed",
        )
        return render(
            request,
            "calserver/test.html",
            self.context(connection=connection, result=result, form=ConfirmForm()),
        )


class SyncNowView(_ConnectionView):
    permission_required = (
        "calserver.view_calserverconnection",
        "calserver.sync_calserverconnection",
    )
    http_method_names = ["post"]

    def post(self, request):
        connection = selectors.connection_get()
        if connection is None:
            raise Http404
        if connection.tested_at is None:
            messages.error(request, _("Test the connection first: the test must pass."))
            return redirect("calserver:detail")
        run = services.sync_run_create(
            connection=connection, trigger=SyncTrigger.MANUAL, user=request.user
        )
        if run is None:
            messages.info(request, _("A sync is running already."))
        else:
            transaction.on_commit(partial(dispatch_sync, run_id=run.pk))
            messages.success(request, _("The sync has started; this page shows its outcome."))
        return redirect("calserver:detail")


class SyncRunDetailView(_ConnectionView):
    permission_required = "calserver.view_calserverconnection"

    def get(self, request, pk):
        connection = selectors.connection_get()
        if connection is None:
            raise Http404
        run = get_object_or_404(connection.runs.select_related("requested_by"), pk=pk)
        per_kind = [
            {"kind": KIND_LABELS.get(kind, kind), **counts} for kind, counts in run.per_kind.items()
        ]
        return render(
            request,
            "calserver/run.html",
            self.context(connection=connection, run=run, per_kind=per_kind),
        )
