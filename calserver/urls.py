from django.urls import path

from calserver import views

app_name = "calserver"

urlpatterns = [
    path("", views.ConnectionDetailView.as_view(), name="detail"),
    path("edit/", views.ConnectionFormView.as_view(), name="update"),
    path("test/", views.ConnectionTestView.as_view(), name="test"),
    path("sync/", views.SyncNowView.as_view(), name="sync"),
    path("runs/<int:pk>/", views.SyncRunDetailView.as_view(), name="run_detail"),
    path("<int:pk>/", views.connection_redirect, name="detail_pk"),
]
