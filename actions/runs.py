"""Runs of actions: a manual run, and the execution of a run (the fan-out of its mails).

Creating and dispatching are apart: what creates a run returns it, and the task layer
(actions.tasks) has a worker execute it after commit.
"""

import datetime as dt
import hashlib

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from actions.models import Action, ActionRun, RunStatus, Trigger
from actions.selectors import action_other_scope
from actions.services import audience_context
from calmail.common.i18n import DeferredText
from calmail.common.mailtypes import Source
from inventory.recipients import Recipient, resolve_selection
from inventory.selectors import Scope, ScopeKind
from mailbox.services import OutgoingMail, enqueue_many
from maillog.models import Level
from maillog.services import log_scheduler_event
from templates_app.models import AddAttachment
from templates_app.rendering import TemplateRenderError
from templates_app.services import RenderedMail, render_for_recipients

# Mails queued per database transaction while a run fans out.
COMMIT_EVERY = 100
# The run history shows this many of a run's recipients with their report's rows.
RUN_AUDIENCE_SHOWN = 20


@transaction.atomic
def action_run_now(*, action: Action, now: dt.datetime | None = None) -> ActionRun:
    """A manual run. The caller has a worker execute it after commit
    (actions.tasks.dispatch_run); a run no task carries is dispatched again by the tick."""
    return ActionRun.objects.create(
        action=action, slot=now or timezone.now(), trigger=Trigger.MANUAL
    )


# A pending run older than this lost its task message (broker outage): dispatch it again.
# Long enough that a message merely waiting behind other tasks is not sent twice.
RUN_REDISPATCH_SECONDS = 300


def waiting_run_ids(*, now: dt.datetime | None = None) -> list[int]:
    """The runs that have been pending too long: their task message was lost (the tick
    dispatches them again)."""
    since = (now or timezone.now()) - dt.timedelta(seconds=RUN_REDISPATCH_SECONDS)
    return list(
        ActionRun.objects.filter(status=RunStatus.PENDING, created_at__lt=since)
        .order_by("created_at")
        .values_list("pk", flat=True)[:100]
    )


def _claim(run_id: int) -> ActionRun | None:
    with transaction.atomic():
        run = (
            ActionRun.objects.select_for_update()
            .select_related("action", "action__template", "action__smtp_configuration")
            .filter(pk=run_id)
            .first()
        )
        # A retried run carries on where it stopped: the idempotency keys skip mails made.
        if run is None or run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
            return None
        now = timezone.now()
        if run.trigger != Trigger.MANUAL and not run.action.published:
            run.status = RunStatus.CANCELLED
            run.error_message = _("The action was no longer published when the run started.")
            run.started_at = run.finished_at = now
            run.save()
            return None
        run.status = RunStatus.RUNNING
        run.started_at = run.started_at or now
        run.save(update_fields=["status", "started_at"])
        return run


def run_execute(*, run_id: int) -> ActionRun | None:
    """Resolve the recipients, render the template for each (their language, their report
    scope) and put one mail per recipient in the outbox, idempotently per (run, recipient).

    Skips are recorded with their reason: references that no longer resolve, and mails
    that end up without an attachment while the action may not send those.
    """
    run = _claim(run_id)
    if run is None:
        return None
    action = run.action
    # The template's texts once for the whole fan-out, not once per recipient.
    prefetch_related_objects([action.template], "translations")
    queued = failed = 0
    skipped: list[dict] = []
    reached: list[dict] = []
    today = timezone.localdate(run.slot)
    try:
        # Audiences are found now, with the template's report and the run's day.
        resolution = resolve_selection(
            action.recipients,
            other_scope=action_other_scope(action),
            audience=audience_context(template=action.template, today=today),
            per_report=True,
        )
    except ValidationError as exc:
        resolution = None
        run.error_message = "; ".join(exc.messages)
    log_scheduler_event(
        message=gettext_noop(
            "Run of %(action)s started (%(trigger)s, slot %(slot)s) for %(recipients)s recipient(s)."
        ),
        level=Level.INFO,
        params={
            "action": action.description,
            "trigger": run.trigger,
            "slot": run.slot.isoformat(),
            "recipients": len(resolution.recipients) if resolution is not None else 0,
        },
        obj=action,
        group=action.group_id,
        actor=None,
    )
    if resolution is not None:
        skipped += [
            _skip_entry(
                s.label, str(s.reason), DeferredText(s.reason_msgid) if s.reason_msgid else None
            )
            for s in resolution.skipped
        ]
        recipients = resolution.recipients
        for first in range(0, len(recipients), COMMIT_EVERY):
            # One commit per chunk, not per mail, and one bulk insert for the chunk's
            # mails; a crash mid-run is redone by the retry (idempotency keys).
            chunk = recipients[first : first + COMMIT_EVERY]
            mails: list[OutgoingMail] = []
            # Per mail: the address, whose it is and its report's rows (None: no report).
            addressed: list[tuple[str, str, int | None]] = []
            # The chunk's reports with one query, its customers' and users' details with
            # one each (templates_app.rendering.render_for_recipients).
            rendered = render_for_recipients(action.template, chunk, today)
            for recipient, outcome in zip(chunk, rendered, strict=True):
                prepared = _mail_for(run=run, action=action, recipient=recipient, rendered=outcome)
                if isinstance(prepared, OutgoingMail):
                    mails.append(prepared)
                    addressed.append(
                        (recipient.email, recipient.owner, (prepared.parameters or {}).get("rows"))
                    )
                else:
                    failed += prepared[0] == "failed"
                    skipped.append(_skip_entry(recipient.email, str(prepared[1]), prepared[1]))
            with transaction.atomic():
                result = enqueue_many(mails)
            for position, (email, owner, rows) in enumerate(addressed):
                error = result.errors.get(position)
                if error is None:
                    queued += 1
                    if len(reached) < RUN_AUDIENCE_SHOWN:
                        reached.append({"email": email, "owner": owner, "rows": rows})
                else:
                    failed += 1
                    skipped.append({"recipient": email, "reason": "; ".join(error.messages)})
    run.queued_count = queued
    run.failed_count = failed
    run.skipped_count = len(skipped) - failed
    run.skipped = skipped
    run.audience = {"mails": queued, "recipients": reached, "skipped": run.skipped_count}
    run.status = RunStatus.FAILED if resolution is None else RunStatus.DONE
    run.finished_at = timezone.now()
    run.save()
    log_scheduler_event(
        message=gettext_noop(
            "Run of %(action)s (%(trigger)s, slot %(slot)s): %(queued)s mail(s) queued, "
            "%(skipped)s skipped, %(failed)s failed."
        ),
        level=Level.WARNING if (skipped or run.error_message) else Level.INFO,
        params={
            "action": action.description,
            "trigger": run.trigger,
            "slot": run.slot.isoformat(),
            "queued": run.queued_count,
            "skipped": run.skipped_count,
            "failed": run.failed_count,
        },
        # The reasons, as in the run history (bounded: a fan-out may skip thousands).
        details={"skipped": skipped[:200], "error": run.error_message},
        obj=action,
        group=action.group_id,
        actor=None,
    )
    return run


def _skip_entry(recipient: str, reason: str, text: object) -> dict:
    """A skipped recipient as the run stores it: the reason as written now (the Log's
    search, exports) and, where it is a fixed text, its msgid and parameters, so the run
    history shows it in its reader's language (calmail.common.i18n.render_stored)."""
    entry: dict[str, object] = {"recipient": recipient, "reason": reason}
    if isinstance(text, DeferredText):
        entry["reason_text"] = text.as_json()
    return entry


def idempotency_key(run_id: int, email: str, scope: Scope | None = None) -> str:
    """One mail per run and address, or per run, address and customer where customers
    share an address (resolve_selection's per_report)."""
    key = f"run:{run_id}:{email.lower()}"
    if scope is not None and scope.kind == ScopeKind.CUSTOMER:
        key += f":{scope}"
    # The outbox column holds 200 characters; an address can be longer.
    return (
        key
        if len(key) <= 200
        else f"run:{run_id}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    )


# Scopes that are not the recipient's own records: the outbox says which report went.
_CHOSEN_SCOPES = (ScopeKind.NONE, ScopeKind.CUSTOMERS, ScopeKind.ALL)
OWNER_MAX_LENGTH = 200


def _owner_with_scope(recipient: Recipient, rendered: RenderedMail) -> str:
    """ "info@firma.de · Report: all customers (internal)" for an address whose report
    scope the action chose; a customer's or user's own name otherwise."""
    label = rendered.parameters.get("report_scope")
    if not label or recipient.scope.kind not in _CHOSEN_SCOPES:
        return recipient.owner
    owner = _("%(owner)s · Report: %(scope)s") % {
        "owner": recipient.owner or recipient.email,
        "scope": label,
    }
    if len(owner) > OWNER_MAX_LENGTH:
        owner = owner[: OWNER_MAX_LENGTH - 1] + "…"
    return owner


def _mail_for(
    *,
    run: ActionRun,
    action: Action,
    recipient: Recipient,
    rendered: RenderedMail | TemplateRenderError,
) -> OutgoingMail | tuple[str, str | DeferredText]:
    """The recipient's mail, or why there is none: ("failed" | "skipped", reason); a
    fixed reason as a DeferredText, shown in each reader's language."""
    if isinstance(rendered, TemplateRenderError):
        return ("failed", str(rendered))
    # docs/design.md 5.6.1: a template without any attachment always sends; the action's switch
    # only decides about a mail whose template has a report that did not come out.
    if (
        action.template.add_attachment != AddAttachment.NONE
        and not rendered.has_attachment
        and not action.send_without_attachments
    ):
        reason = rendered.attachment_skipped or DeferredText(
            gettext_noop("the mail has no attachment")
        )
        return (
            "skipped",
            DeferredText(
                gettext_noop("not sent without an attachment: %(reason)s"), {"reason": reason}
            ),
        )
    return OutgoingMail(
        # The outbox takes bare addresses; the owner column names the person.
        to=[recipient.email],
        subject=rendered.subject,
        body_html=rendered.body_html,
        body_text=rendered.body_text,
        from_email=rendered.from_email,
        from_name=rendered.from_name,
        attachments=rendered.attachments,
        attachment_type=rendered.attachment_type,
        smtp_configuration=action.smtp_configuration,
        source=Source.ACTION,
        source_label=action.description,
        action=action,
        address_type=str(recipient.address_type),
        recipient_owner=_owner_with_scope(recipient, rendered),
        export_type=rendered.export_type,
        parameters=rendered.parameters,
        owner_group=action.group,
        idempotency_key=idempotency_key(run.pk, recipient.email, recipient.scope),
    )
