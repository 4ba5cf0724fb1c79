from django.urls import path

from templates_app import views

app_name = "templates_app"

urlpatterns = [
    path("", views.MailTemplateListView.as_view(), name="list"),
    path("new/", views.MailTemplateFormView.as_view(), name="create"),
    path("bulk/", views.MailTemplateBulkView.as_view(), name="bulk"),
    path("<int:pk>/edit/", views.MailTemplateFormView.as_view(), name="update"),
    path("<int:pk>/duplicate/", views.MailTemplateDuplicateView.as_view(), name="duplicate"),
    path("<int:pk>/delete/", views.MailTemplateDeleteView.as_view(), name="delete"),
    path("<int:pk>/preview/", views.MailTemplatePreviewView.as_view(), name="preview"),
    path(
        "<int:pk>/preview/body/", views.MailTemplatePreviewBodyView.as_view(), name="preview_body"
    ),
    path(
        "<int:pk>/preview/attachment/",
        views.MailTemplatePreviewAttachmentView.as_view(),
        name="preview_attachment",
    ),
]
