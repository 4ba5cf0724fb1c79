from django.urls import path

from calmail.common.lists import ColumnChoiceView

app_name = "common"

urlpatterns = [
    path("columns/", ColumnChoiceView.as_view(), name="columns"),
]
