from django.urls import path

from smtpconfig import views

app_name = "smtpconfig"

urlpatterns = [
    path("", views.SmtpConfigurationListView.as_view(), name="list"),
]
