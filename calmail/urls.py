from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import views as accounts_views
from calmail.common import views as common_views

urlpatterns = [
    path("", common_views.home, name="home"),
    path("healthz", common_views.healthz, name="healthz"),
    path("lists/", include("calmail.common.urls")),
    # The home page of everyone who reads the outbox ("home" sends them there).
    path("overview/", include("overview.urls")),
    path(
        "accounts/login/",
        accounts_views.SignInView.as_view(),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Django's password reset flow; its mails go through the outbox (accounts.services).
    path(
        "accounts/password/forgotten/",
        accounts_views.PasswordForgottenView.as_view(),
        name="password_reset",
    ),
    path(
        "accounts/password/forgotten/sent/",
        auth_views.PasswordResetDoneView.as_view(
            template_name="registration/password_forgotten_sent.html"
        ),
        name="password_reset_done",
    ),
    path(
        "accounts/password/set/<uidb64>/<token>/",
        accounts_views.PasswordSetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/password/set/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="registration/password_set_complete.html"
        ),
        name="password_reset_complete",
    ),
    path("accounts/", include("accounts.urls")),
    # The language switcher must also work on the login page.
    path("i18n/setlang/", accounts_views.switch_language, name="set_language"),
    # /outbox/ and /log/attempts/ (the outbox's delivery attempts, a tab of the Log).
    path("", include("mailbox.urls")),
    path("templates/", include("templates_app.urls")),
    path("actions/", include("actions.urls")),
    path("smtp/", include("smtpconfig.urls")),
    path("inventory/", include("inventory.urls")),
    path("imports/", include("imports.urls")),
    path("calserver/", include("calserver.urls")),
    path("compose/", include("compose.urls")),
    path("log/", include("maillog.urls")),
    path("admin/", admin.site.urls),
]
