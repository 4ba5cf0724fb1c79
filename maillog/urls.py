from django.urls import path

from maillog import views

app_name = "maillog"

urlpatterns = [
    path("", views.LogEntryListView.as_view(), name="list"),
]
