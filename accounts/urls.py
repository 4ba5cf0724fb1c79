from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("users/", views.UserListView.as_view(), name="user_list"),
    path("users/new/", views.UserFormView.as_view(), name="user_create"),
    path("users/bulk/", views.UserBulkView.as_view(), name="user_bulk"),
    path("users/<int:pk>/edit/", views.UserFormView.as_view(), name="user_update"),
    path("users/<int:pk>/password/", views.UserPasswordView.as_view(), name="user_password"),
    path(
        "users/<int:pk>/password-link/",
        views.UserPasswordLinkView.as_view(),
        name="user_password_link",
    ),
    path("users/<int:pk>/deactivate/", views.UserDeactivateView.as_view(), name="user_deactivate"),
    path("users/<int:pk>/reactivate/", views.UserReactivateView.as_view(), name="user_reactivate"),
    path("users/<int:pk>/unlock/", views.UserUnlockView.as_view(), name="user_unlock"),
    path("users/<int:pk>/delete/", views.UserDeleteView.as_view(), name="user_delete"),
    path("teams/", views.TeamListView.as_view(), name="team_list"),
    path("teams/new/", views.TeamFormView.as_view(), name="team_create"),
    path("teams/bulk/", views.TeamBulkView.as_view(), name="team_bulk"),
    path("teams/<int:pk>/", views.TeamDetailView.as_view(), name="team_detail"),
    path("teams/<int:pk>/edit/", views.TeamFormView.as_view(), name="team_update"),
    path("teams/<int:pk>/delete/", views.TeamDeleteView.as_view(), name="team_delete"),
]
