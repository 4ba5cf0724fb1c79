"""Import pages (administrators only): upload, column mapping, dry run, confirm, progress,
rejected rows. Writes go through imports.services; the passes run in Celery tasks."""

import logging

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop
from django.views import View

from calmail.common.export import xlsx_response
from imports import selectors, services, tasks
from imports.forms import MappingForm, UploadForm
from imports.importers import IMPORTERS
from imports.models import ImportKind, ImportRun, ImportStatus
from imports.reading import UnreadableFile

logger = logging.getLogger(__name__)

TITLE = gettext_lazy("Import")


class AdministratorsOnly(View):
    """Role and permission, like Users & teams; anyone else gets a 403 (anonymous users
    the sign-in page, through LoginRequiredMiddleware)."""

    def dispatch(self, request, *args, **kwargs):
        if not selectors.may_import(request.user):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    def get_run(self, pk: int) -> ImportRun:
        try:
            return selectors.run_detail(pk=pk)
        except ImportRun.DoesNotExist:
            raise Http404 from None


def _queue(run: ImportRun, task, what: str) -> None:
    """Publish the task after the commit; with the broker down the run fails visibly
    instead of waiting for nothing (the user can start it again)."""

    def publish():
        try:
            task.delay(run.pk)
        except Exception:
            logger.exception("Could not queue %s of import %s", what, run.pk)
            services.run_fail(
                run=run,
                message=gettext_noop("The task could not be queued. Please try again later."),
            )

    transaction.on_commit(publish)


class IndexView(AdministratorsOnly):
    def get(self, request):
        return render(
            request,
            "imports/index.html",
            {
                "title": TITLE,
                "kinds": ImportKind.choices,
                "managed": selectors.kinds_managed_by_calserver(),
                "runs": selectors.run_list(),
            },
        )


class UploadView(AdministratorsOnly):
    def dispatch(self, request, *args, kind, **kwargs):
        if kind not in IMPORTERS:
            raise Http404
        self.kind = kind
        return super().dispatch(request, *args, **kwargs)

    def render_form(self, form, *, refused: str = ""):
        return render(
            self.request,
            "imports/upload.html",
            {
                "title": _("Import %(kind)s") % {"kind": ImportKind(self.kind).label},
                "list_url": reverse("imports:index"),
                "list_title": TITLE,
                "form": form,
                "fields": IMPORTERS[self.kind].fields,
                "refused": refused,
            },
        )

    def get(self, request):
        # Said before the upload, not after it: calServer manages this kind.
        refused = (
            _(services.MANAGED_BY_CALSERVER)
            if selectors.managed_by_calserver(kind=self.kind)
            else ""
        )
        return self.render_form(UploadForm(kind=self.kind), refused=refused)

    def post(self, request):
        form = UploadForm(request.POST, request.FILES, kind=self.kind)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                run = services.run_create(
                    kind=self.kind,
                    file_name=upload.name,
                    content=upload.read(),
                    user=request.user,
                    mapping=form.cleaned_data["template"],
                )
            except UnreadableFile as exc:
                form.add_error("file", str(exc))
            except services.ImportRefused as exc:
                return self.render_form(UploadForm(kind=self.kind), refused=_(str(exc)))
            else:
                return redirect("imports:mapping", pk=run.pk)
        return self.render_form(form)


class MappingView(AdministratorsOnly):
    def render_form(self, run, form):
        return render(
            self.request,
            "imports/mapping.html",
            {
                "title": _("Map the columns of %(file)s") % {"file": run.file_name},
                "list_url": reverse("imports:index"),
                "list_title": TITLE,
                "run": run,
                "form": form,
            },
        )

    def get(self, request, pk):
        run = self.get_run(pk)
        return self.render_form(run, MappingForm(run=run))

    def post(self, request, pk):
        run = self.get_run(pk)
        form = MappingForm(request.POST, run=run)
        if form.is_valid():
            try:
                with transaction.atomic():
                    run = services.run_set_mapping(
                        run=run,
                        mapping=form.mapping(),
                        mark_missing_inactive=form.cleaned_data.get("mark_missing_inactive", False),
                        save_as=form.cleaned_data["save_as"].strip(),
                        template=run.mapping,
                        user=request.user,
                    )
                    _queue(run, tasks.analyse, "the dry run")
            except services.ImportRefused as exc:
                messages.error(request, _(str(exc)))
            return redirect("imports:run", pk=run.pk)
        return self.render_form(run, form)


class RunView(AdministratorsOnly):
    def get(self, request, pk):
        run = self.get_run(pk)
        return render(
            request,
            "imports/run.html",
            {
                "title": str(run),
                "list_url": reverse("imports:index"),
                "list_title": TITLE,
                "run": run,
                "rejections": selectors.rejections_shown(run),
                "more_rejections": max(run.rejected - selectors.REJECTIONS_SHOWN, 0),
                "statuses": ImportStatus,
                "error": _(run.error) if run.error else "",
            },
        )


class ConfirmView(AdministratorsOnly):
    def post(self, request, pk):
        run = self.get_run(pk)
        try:
            with transaction.atomic():
                run = services.run_confirm(run=run)
                _queue(run, tasks.apply, "the import")
        except services.ImportRefused as exc:
            messages.error(request, _(str(exc)))
        return redirect("imports:run", pk=pk)


class ProgressView(AdministratorsOnly):
    def get(self, request, pk):
        try:
            return JsonResponse(selectors.run_progress(pk=pk))
        except ImportRun.DoesNotExist:
            raise Http404 from None


class RejectedRowsView(AdministratorsOnly):
    def get(self, request, pk):
        run = self.get_run(pk)
        return xlsx_response(
            selectors.rejected_rows(run),
            filename=f"rejected-rows-{run.pk}",
            sheet_title=_("Rejected rows"),
        )
