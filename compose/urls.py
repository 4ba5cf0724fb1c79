from django.urls import path

from compose import views

app_name = "compose"

urlpatterns = [
    path("", views.ComposeView.as_view(), name="new"),
    path("drafts/", views.DraftListView.as_view(), name="drafts"),
    path("drafts/<int:pk>/", views.ComposeView.as_view(), name="draft"),
    path("drafts/<int:pk>/preview/", views.PreviewView.as_view(), name="preview"),
    path("drafts/<int:pk>/body/", views.DraftBodyView.as_view(), name="body"),
    path("drafts/<int:pk>/send/", views.SendView.as_view(), name="send"),
    path("drafts/<int:pk>/delete/", views.DeleteView.as_view(), name="delete"),
]
