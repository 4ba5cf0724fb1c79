"""Users & teams (administrators only): lists, forms and confirm pages. Every write goes
through accounts.services."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import translation
from django.utils.translation import check_for_language, gettext_lazy, gettext_noop, ngettext_lazy
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

from accounts import services
from accounts.filters import TeamFilter, UserFilter
from accounts.forms import (
    AdminSetPasswordForm,
    PasswordMode,
    PasswordResetByOutboxForm,
    TeamForm,
    UserForm,
)
from accounts.models import Team
from accounts.selectors import (
    ADD_TEAM,
    ADD_USER,
    CHANGE_TEAM,
    CHANGE_USER,
    DELETE_TEAM,
    DELETE_USER,
    VIEW_TEAMS,
    VIEW_USERS,
    may_manage_people,
    stored_language,
    team_dependents,
    team_list,
    team_members,
    user_list,
    user_references,
)
from accounts.tables import TeamTable, UserTable
from calmail.common.forms import add_service_errors
from calmail.common.lists import BulkAction, CalmailListView
from calmail.common.roles import ROLE_LABELS, role_of
from calmail.common.sections import (
    SectionBulkView,
    SectionDeleteView,
    SectionObjectMixin,
    bulk_delete_action,
    bulk_result,
)
from inventory.recipients import user_display_name
from inventory.services import profile_set_language as language_set
from maillog.models import Category, Level
from maillog.services import log_event

USERS_TITLE = gettext_lazy("Users")
TEAMS_TITLE = gettext_lazy("Teams")


class AdministratorsOnly:
    """Users & teams are for administrators: the permission and the role (see
    selectors.may_manage_people). Anyone else gets a 403."""

    raise_exception = True

    def has_permission(self):
        return all(
            may_manage_people(self.request.user, permission)
            for permission in self.get_permission_required()
        )


# --- users ---------------------------------------------------------------------------------


def _deactivate(user, acting_user) -> None:
    services.user_set_active(user=user, active=False, acting_user=acting_user)


def _send_link(user, acting_user) -> None:
    services.user_send_password_link(user=user, created_by=acting_user)


def _link_refusal(user) -> str | None:
    if not user.email:
        return _("no e-mail address")
    if not user.is_active:
        return _("deactivated")
    return None


USER_BULK_ACTIONS = {
    "deactivate": BulkAction(
        label=gettext_lazy("Deactivate"),
        permission=CHANGE_USER,
        run=lambda users, acting_user: bulk_result(
            users,
            perform=lambda user: _deactivate(user, acting_user),
            refusal=lambda user: None if user.is_active else _("already deactivated"),
        ),
        refusal=lambda user: None if user.is_active else _("already deactivated"),
        done_message=ngettext_lazy(
            "%(count)d user deactivated.", "%(count)d users deactivated.", "count"
        ),
    ),
    "reactivate": BulkAction(
        label=gettext_lazy("Reactivate"),
        permission=CHANGE_USER,
        run=lambda users, acting_user: bulk_result(
            users,
            perform=lambda user: services.user_set_active(user=user, active=True),
            refusal=lambda user: _("already active") if user.is_active else None,
        ),
        refusal=lambda user: _("already active") if user.is_active else None,
        done_message=ngettext_lazy(
            "%(count)d user reactivated.", "%(count)d users reactivated.", "count"
        ),
    ),
    "unlock": BulkAction(
        label=gettext_lazy("Unlock sign-in"),
        permission=CHANGE_USER,
        run=lambda users, acting_user: bulk_result(
            users, perform=lambda user: services.user_unlock(user=user)
        ),
        done_message=ngettext_lazy(
            "%(count)d sign-in unlocked.", "%(count)d sign-ins unlocked.", "count"
        ),
    ),
    "password_link": BulkAction(
        label=gettext_lazy("Send set-password link"),
        permission=CHANGE_USER,
        run=lambda users, acting_user: bulk_result(
            users, perform=lambda user: _send_link(user, acting_user), refusal=_link_refusal
        ),
        refusal=_link_refusal,
        done_message=ngettext_lazy(
            "%(count)d set-password link queued.", "%(count)d set-password links queued.", "count"
        ),
    ),
    "delete": bulk_delete_action(
        service=services.user_delete,
        keyword="user",
        permission=DELETE_USER,
        done_message=ngettext_lazy("%(count)d user deleted.", "%(count)d users deleted.", "count"),
        refusal=lambda user: services.user_delete_refusal(user=user),
    ),
}


class UserListView(AdministratorsOnly, CalmailListView):
    permission_required = VIEW_USERS
    table_class = UserTable
    filterset_class = UserFilter
    title = USERS_TITLE
    export_name = "users"
    create_url_name = "accounts:user_create"
    create_permission = ADD_USER
    create_label = gettext_lazy("New user")
    bulk_url_name = "accounts:user_bulk"
    bulk_actions = USER_BULK_ACTIONS
    template_name = "accounts/user_list.html"

    def get_queryset(self):
        return user_list()


class UserBulkView(AdministratorsOnly, SectionBulkView):
    permission_required = VIEW_USERS
    bulk_actions = USER_BULK_ACTIONS
    list_url_name = "accounts:user_list"

    def get_queryset(self):
        return get_user_model().objects.all()

    def post(self, request):
        # Deleting or deactivating yourself from a bulk selection is refused like on the
        # single pages: leave the acting user out with a reason.
        own_id = str(request.user.pk)
        selection = request.POST.getlist("selection")
        if request.POST.get("action") in {"delete", "deactivate"} and own_id in selection:
            request.POST = request.POST.copy()
            request.POST.setlist("selection", [pk for pk in selection if pk != own_id])
            if request.POST.get("confirm") != "1":
                messages.warning(request, _("You were left out: you cannot do this to yourself."))
        return super().post(request)


class UserMixin(AdministratorsOnly, SectionObjectMixin):
    list_url_name = "accounts:user_list"
    list_title = USERS_TITLE

    def get_user(self):
        return self.object_from_url(get_user_model().objects.all())


class UserFormView(UserMixin, View):
    """Create (no pk) or edit (pk) a user."""

    def get_permission_required(self):
        return (CHANGE_USER,) if "pk" in self.kwargs else (ADD_USER,)

    def render_form(self, form, user=None):
        title = (
            _("Edit user %(name)s") % {"name": user_display_name(user)} if user else _("New user")
        )
        page = self.render_form_page(form, title)
        return page

    def get(self, request, **kwargs):
        user = self.get_user() if "pk" in kwargs else None
        return self.render_form(UserForm(user=user, cancel_url=reverse("accounts:user_list")), user)

    def post(self, request, **kwargs):
        user = self.get_user() if "pk" in kwargs else None
        form = UserForm(request.POST, user=user, cancel_url=reverse("accounts:user_list"))
        if not form.is_valid():
            return self.render_form(form, user)
        try:
            if user is not None:
                services.user_update(user=user, **form.service_values())
            else:
                mode = form.cleaned_data["password_mode"]
                user = services.user_create(
                    **form.service_values(),
                    password=form.cleaned_data["password1"] if mode == PasswordMode.SET else None,
                )
        except ValidationError as exc:
            add_service_errors(form, exc)
            return self.render_form(form, user if "pk" in kwargs else None)
        if "pk" in kwargs:
            messages.success(request, _("%(name)s saved.") % {"name": user.get_username()})
        else:
            messages.success(request, _("%(name)s created.") % {"name": user.get_username()})
            if form.cleaned_data["password_mode"] == PasswordMode.LINK:
                self.send_link(user)
        return redirect("accounts:user_list")

    def send_link(self, user) -> None:
        # The user exists whatever happens here: a missing SMTP configuration only means
        # the link must be sent (or a password set) later, and the page says so.
        try:
            message = services.user_send_password_link(user=user, created_by=self.request.user)
        except ValidationError as exc:
            messages.warning(
                self.request,
                _(
                    "The set-password link could not be queued: %(reason)s Send it again later or set a password."
                )
                % {"reason": " ".join(exc.messages)},
            )
        else:
            messages.info(
                self.request,
                _("A set-password link to %(email)s is in the outbox.")
                % {"email": message.recipient},
            )


class UserPasswordView(UserMixin, View):
    """An administrator sets a user's password."""

    permission_required = CHANGE_USER

    def render_page(self, user, form):
        return self.render_form_page(
            form, _("Set the password of %(name)s") % {"name": user_display_name(user)}
        )

    def get(self, request, pk):
        user = self.get_user()
        return self.render_page(
            user, AdminSetPasswordForm(user, cancel_url=reverse("accounts:user_list"))
        )

    def post(self, request, pk):
        user = self.get_user()
        form = AdminSetPasswordForm(user, request.POST, cancel_url=reverse("accounts:user_list"))
        if not form.is_valid():
            return self.render_page(user, form)
        form.save()
        messages.success(
            request, _("The password of %(name)s is set.") % {"name": user.get_username()}
        )
        return redirect("accounts:user_list")


class UserConfirmView(UserMixin, View):
    """A confirm page about one user: GET asks, POST does `perform(user)`. A refusal is
    shown up front, without the confirm button."""

    permission_required = CHANGE_USER
    title = ""
    question = ""
    explanation = None
    confirm_label = ""
    danger = False
    done = ""

    def refusal(self, user) -> str | None:
        return None

    def perform(self, user) -> None:
        raise NotImplementedError

    def extra_context(self, user) -> dict:
        return {}

    def render_page(self, user, refusal=None):
        name = user_display_name(user)
        return self.render_confirm_page(
            title=self.title % {"name": name},
            question=self.question % {"name": name},
            explanation=self.explanation,
            refusal=refusal,
            blocked=bool(refusal),
            danger=self.danger,
            confirm_label=self.confirm_label,
            cancel_url=reverse(self.list_url_name),
            **self.extra_context(user),
        )

    def get(self, request, pk):
        user = self.get_user()
        return self.render_page(user, self.refusal(user))

    def post(self, request, pk):
        user = self.get_user()
        refusal = self.refusal(user)
        if refusal is None:
            try:
                self.perform(user)
            except ValidationError as exc:
                refusal = " ".join(exc.messages)
        if refusal:
            return self.render_page(user, refusal)
        messages.success(request, self.done % {"name": user.get_username()})
        return redirect(self.list_url_name)


class UserDeactivateView(UserConfirmView):
    title = gettext_lazy("Deactivate %(name)s")
    question = gettext_lazy("Deactivate %(name)s?")
    explanation = gettext_lazy(
        "The user can no longer sign in. Mails, actions and log entries keep naming them; "
        "you can reactivate the user at any time."
    )
    confirm_label = gettext_lazy("Deactivate")
    danger = True
    done = gettext_lazy("%(name)s deactivated.")

    def refusal(self, user):
        if not user.is_active:
            return _("%(name)s is already deactivated.") % {"name": user.get_username()}
        return services.user_deactivate_refusal(user=user, acting_user=self.request.user)

    def perform(self, user):
        services.user_set_active(user=user, active=False, acting_user=self.request.user)


class UserReactivateView(UserConfirmView):
    title = gettext_lazy("Reactivate %(name)s")
    question = gettext_lazy("Reactivate %(name)s? The user can sign in again.")
    confirm_label = gettext_lazy("Reactivate")
    done = gettext_lazy("%(name)s reactivated.")

    def refusal(self, user):
        if user.is_active:
            return _("%(name)s is already active.") % {"name": user.get_username()}
        return None

    def perform(self, user):
        services.user_set_active(user=user, active=True)


class UserPasswordLinkView(UserConfirmView):
    title = gettext_lazy("Send a set-password link to %(name)s")
    question = gettext_lazy(
        "Send %(name)s a mail with a link to set their password? The current password "
        "stays valid until they set a new one."
    )
    confirm_label = gettext_lazy("Send link")
    done = gettext_lazy("The set-password link for %(name)s is in the outbox.")

    def refusal(self, user):
        if not user.email:
            return _("%(name)s has no e-mail address: add one first.") % {
                "name": user.get_username()
            }
        if not user.is_active:
            return _("%(name)s is deactivated: reactivate the user first.") % {
                "name": user.get_username()
            }
        return None

    def perform(self, user):
        services.user_send_password_link(user=user, created_by=self.request.user)


class UserUnlockView(UserConfirmView):
    title = gettext_lazy("Unlock the sign-in of %(name)s")
    question = gettext_lazy(
        "Unlock the sign-in of %(name)s? Their failed attempts are forgotten and they can "
        "sign in again at once."
    )
    confirm_label = gettext_lazy("Unlock")
    done = gettext_lazy("The sign-in of %(name)s is unlocked.")

    def perform(self, user):
        services.user_unlock(user=user)


class UserDeleteView(UserConfirmView):
    permission_required = DELETE_USER
    title = gettext_lazy("Delete %(name)s")
    question = gettext_lazy("Delete the user %(name)s? This cannot be undone.")
    confirm_label = gettext_lazy("Delete")
    danger = True
    done = gettext_lazy("%(name)s deleted.")

    def refusal(self, user):
        return services.user_delete_refusal(user=user, acting_user=self.request.user)

    def extra_context(self, user):
        references = user_references(user)
        alternative = None
        # Kept for the record: the refusal's way out is to deactivate the user.
        if references and user.is_active and user.pk != self.request.user.pk:
            alternative = {
                "url": reverse("accounts:user_deactivate", args=[user.pk]),
                "label": _("Deactivate instead"),
            }
        return {"refusal_links": references, "alternative": alternative}

    def perform(self, user):
        services.user_delete(user=user, acting_user=self.request.user)


# --- teams ---------------------------------------------------------------------------------

TEAM_BULK_ACTIONS = {
    "delete": bulk_delete_action(
        service=services.team_delete,
        keyword="team",
        permission=DELETE_TEAM,
        done_message=ngettext_lazy("%(count)d team deleted.", "%(count)d teams deleted.", "count"),
        refusal=services.team_delete_refusal,
    )
}


class TeamListView(AdministratorsOnly, CalmailListView):
    permission_required = VIEW_TEAMS
    table_class = TeamTable
    filterset_class = TeamFilter
    title = TEAMS_TITLE
    export_name = "teams"
    create_url_name = "accounts:team_create"
    create_permission = ADD_TEAM
    create_label = gettext_lazy("New team")
    bulk_url_name = "accounts:team_bulk"
    bulk_actions = TEAM_BULK_ACTIONS
    template_name = "accounts/team_list.html"

    def get_queryset(self):
        return team_list()


class TeamBulkView(AdministratorsOnly, SectionBulkView):
    permission_required = VIEW_TEAMS
    bulk_actions = TEAM_BULK_ACTIONS
    list_url_name = "accounts:team_list"

    def get_queryset(self):
        return Team.objects.all()


class TeamMixin(AdministratorsOnly, SectionObjectMixin):
    list_url_name = "accounts:team_list"
    list_title = TEAMS_TITLE

    def get_team(self) -> Team:
        return self.object_from_url(Team.objects.all())


class TeamDetailView(TeamMixin, View):
    permission_required = VIEW_TEAMS

    def get(self, request, pk):
        team = self.get_team()
        members = list(team_members(team))
        return render(
            request,
            "accounts/team_detail.html",
            self.base_context(
                title=team.name,
                team=team,
                members=[(member, ROLE_LABELS.get(role_of(member), "—")) for member in members],
                dependents=team_dependents(team),
            ),
        )


class TeamFormView(TeamMixin, View):
    def get_permission_required(self):
        return (CHANGE_TEAM,) if "pk" in self.kwargs else (ADD_TEAM,)

    def render_form(self, form, team=None):
        title = _("Edit team %(name)s") % {"name": team.name} if team else _("New team")
        return self.render_form_page(form, title)

    def get(self, request, **kwargs):
        team = self.get_team() if "pk" in kwargs else None
        return self.render_form(TeamForm(team=team, cancel_url=reverse("accounts:team_list")), team)

    def post(self, request, **kwargs):
        team = self.get_team() if "pk" in kwargs else None
        form = TeamForm(request.POST, team=team, cancel_url=reverse("accounts:team_list"))
        if form.is_valid():
            try:
                if team is not None:
                    services.team_update(team=team, **form.service_values())
                    messages.success(
                        request, _("%(name)s saved.") % {"name": form.cleaned_data["name"]}
                    )
                    return redirect("accounts:team_detail", pk=team.pk)
                team = services.team_create(**form.service_values())
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, _("%(name)s created.") % {"name": team.name})
                return redirect("accounts:team_detail", pk=team.pk)
        return self.render_form(form, self.get_team() if "pk" in kwargs else None)


class TeamDeleteView(TeamMixin, SectionDeleteView):
    permission_required = DELETE_TEAM
    question = gettext_lazy("Delete the team %(name)s? This cannot be undone.")
    explanation = gettext_lazy("Its members stay users of calmail; they only leave the team.")

    def get_target(self):
        return self.get_team()

    def get_refusal(self, obj):
        return services.team_delete_refusal(obj)

    def render_page(self, obj, refusal=None):
        # The refusal names what still belongs to the team; the page links to each.
        self.refusal_links = team_dependents(obj) if refusal else []
        return super().render_page(obj, refusal)

    def render_confirm_page(self, **context):
        return super().render_confirm_page(refusal_links=self.refusal_links, **context)

    def delete(self, obj):
        services.team_delete(team=obj)


# --- set your password (no login) ------------------------------------------------------------


class PasswordSetConfirmView(auth_views.PasswordResetConfirmView):
    """The page a set-password link opens (Django's reset flow). A password set here is
    in the Log, never the password itself."""

    template_name = "registration/password_set_confirm.html"
    success_url = reverse_lazy("password_reset_complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        user = form.user
        log_event(
            category=Category.USERS,
            level=Level.INFO,
            message=gettext_noop("%(user)s set their password through a link"),
            params={"user": user.get_username()},
            actor=user,
            obj=user,
        )
        return response


class PasswordForgottenView(auth_views.PasswordResetView):
    """ "Forgot your password?" on the login page: the link goes out through the outbox.
    The page answers the same whether or not the address belongs to a user."""

    form_class = PasswordResetByOutboxForm
    template_name = "registration/password_forgotten.html"
    success_url = reverse_lazy("password_reset_done")


# --- one language per user ------------------------------------------------------------------


def set_language_cookie(response, language: str) -> None:
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )


class SignInView(auth_views.LoginView):
    """Django's login; afterwards the pages speak the user's language (their profile's,
    which is also the language of the mails they receive), if one was ever chosen."""

    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        language = stored_language(form.get_user())
        if language:
            translation.activate(language)
            set_language_cookie(response, language)
        return response


@login_not_required
@require_POST
def switch_language(request):
    """Django's set_language; for a signed-in user the choice also becomes their
    profile's language, so it holds on every device and for their mails."""
    response = set_language(request)
    language = request.POST.get("language", "")
    if request.user.is_authenticated and check_for_language(language):
        language_set(user=request.user, language=language)
    return response


def locked_out(request, credentials=None, *args, **kwargs):
    """django-axes' answer to a locked-out sign-in: the site's page, in the reader's
    language, saying how long the lock lasts and who can lift it (HTTP 429)."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return render(request, "registration/locked_out.html", {"cooloff_minutes": minutes}, status=429)
