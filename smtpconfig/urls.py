from django.urls import path

from smtpconfig import views

app_name = "smtpconfig"

urlpatterns = [
    path("", views.SmtpConfigurationListView.as_view(), name="list"),
    path("new/", views.SmtpConfigurationFormView.as_view(), name="create"),
    path("bulk/", views.SmtpConfigurationBulkView.as_view(), name="bulk"),
    path("<int:pk>/", views.SmtpConfigurationDetailView.as_view(), name="detail"),
    path("<int:pk>/edit/", views.SmtpConfigurationFormView.as_view(), name="update"),
    path("<int:pk>/duplicate/", views.SmtpConfigurationDuplicateView.as_view(), name="duplicate"),
    path("<int:pk>/default/", views.SmtpConfigurationSetDefaultView.as_view(), name="set_default"),
    path("<int:pk>/test/", views.SmtpConfigurationTestView.as_view(), name="test"),
    path("<int:pk>/test-mail/", views.SmtpConfigurationTestMailView.as_view(), name="test_mail"),
    path(
        "<int:pk>/deactivate/",
        views.SmtpConfigurationActivationView.as_view(active=False),
        name="deactivate",
    ),
    path(
        "<int:pk>/reactivate/",
        views.SmtpConfigurationActivationView.as_view(active=True),
        name="reactivate",
    ),
    path("<int:pk>/delete/", views.SmtpConfigurationDeleteView.as_view(), name="delete"),
]
