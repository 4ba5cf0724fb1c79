from django.urls import include, path

from mailbox import views

app_name = "mailbox"

outbox_patterns = [
    path("", views.OutboxListView.as_view(), name="list"),
    path("bulk/", views.OutboxBulkView.as_view(), name="bulk"),
    path("<int:pk>/", views.OutboxDetailView.as_view(), name="detail"),
    path("<int:pk>/body/", views.OutboxBodyView.as_view(), name="body"),
    path("<int:pk>/mail.eml", views.OutboxRawView.as_view(), name="raw"),
    path(
        "<int:pk>/attachments/<uuid:uuid>/",
        views.OutboxAttachmentView.as_view(),
        name="attachment",
    ),
    path("<int:pk>/resend/", views.OutboxActionView.as_view(action_name="resend"), name="resend"),
    path("<int:pk>/cancel/", views.OutboxActionView.as_view(action_name="cancel"), name="cancel"),
    path("<int:pk>/delete/", views.OutboxActionView.as_view(action_name="delete"), name="delete"),
    # Public: recipients of a mail with attachment type "link" have no account.
    path("download/<str:token>/", views.AttachmentLinkView.as_view(), name="download"),
]

# Included at the site's root: the outbox under /outbox/, and its delivery attempts as a
# tab of the Log under /log/ (maillog.tabs), where people look for them.
urlpatterns = [
    path("outbox/", include(outbox_patterns)),
    path("log/attempts/", views.DeliveryAttemptListView.as_view(), name="attempts"),
]
