from django.urls import path

from imports import views

app_name = "imports"

urlpatterns = [
    path("", views.IndexView.as_view(), name="index"),
    path("runs/<int:pk>/", views.RunView.as_view(), name="run"),
    path("runs/<int:pk>/mapping/", views.MappingView.as_view(), name="mapping"),
    path("runs/<int:pk>/confirm/", views.ConfirmView.as_view(), name="confirm"),
    path("runs/<int:pk>/progress/", views.ProgressView.as_view(), name="progress"),
    path("runs/<int:pk>/rejected.xlsx", views.RejectedRowsView.as_view(), name="rejected"),
    path("<str:kind>/", views.UploadView.as_view(), name="upload"),
]
