from django.urls import path

from actions import views

app_name = "actions"

urlpatterns = [
    path("", views.ActionListView.as_view(), name="list"),
    path("new/", views.ActionFormView.as_view(), name="create"),
    path("next-runs/", views.NextRunsView.as_view(), name="next_runs"),
    path("audience/", views.AudiencePreviewView.as_view(), name="audience_preview"),
    path("<int:pk>/edit/", views.ActionFormView.as_view(), name="update"),
    path("<int:pk>/audience/", views.AudiencePreviewView.as_view(), name="audience_preview"),
    path("<int:pk>/duplicate/", views.ActionDuplicateView.as_view(), name="duplicate"),
    path("<int:pk>/toggle/", views.ActionToggleView.as_view(), name="toggle"),
    path("<int:pk>/run-now/", views.ActionRunNowView.as_view(), name="run_now"),
    path("<int:pk>/runs/", views.ActionRunListView.as_view(), name="runs"),
    path("<int:pk>/delete/", views.ActionDeleteView.as_view(), name="delete"),
]
