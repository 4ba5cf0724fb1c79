from django.urls import path

from inventory import views

app_name = "inventory"

urlpatterns = [
    # Verteilergruppen
    path("lists/", views.DistributionListListView.as_view(), name="distributionlist_list"),
    path("lists/new/", views.DistributionListFormView.as_view(), name="distributionlist_create"),
    path("lists/bulk/", views.DistributionListBulkView.as_view(), name="distributionlist_bulk"),
    path(
        "lists/<int:pk>/",
        views.DistributionListDetailView.as_view(),
        name="distributionlist_detail",
    ),
    path(
        "lists/<int:pk>/edit/",
        views.DistributionListFormView.as_view(),
        name="distributionlist_update",
    ),
    path(
        "lists/<int:pk>/duplicate/",
        views.DistributionListDuplicateView.as_view(),
        name="distributionlist_duplicate",
    ),
    path(
        "lists/<int:pk>/delete/",
        views.DistributionListDeleteView.as_view(),
        name="distributionlist_delete",
    ),
    # Systemadressen
    path("system-addresses/", views.SystemAddressListView.as_view(), name="systemaddress_list"),
    path(
        "system-addresses/new/",
        views.SystemAddressFormView.as_view(),
        name="systemaddress_create",
    ),
    path(
        "system-addresses/bulk/",
        views.SystemAddressBulkView.as_view(),
        name="systemaddress_bulk",
    ),
    path(
        "system-addresses/<int:pk>/edit/",
        views.SystemAddressFormView.as_view(),
        name="systemaddress_update",
    ),
    path(
        "system-addresses/<int:pk>/duplicate/",
        views.SystemAddressDuplicateView.as_view(),
        name="systemaddress_duplicate",
    ),
    path(
        "system-addresses/<int:pk>/delete/",
        views.SystemAddressDeleteView.as_view(),
        name="systemaddress_delete",
    ),
    # calServer data, read-only
    path("data/", views.data_index, name="data"),
    path("data/customers/", views.CustomerListView.as_view(), name="customer_list"),
    path("data/instruments/", views.InstrumentListView.as_view(), name="instrument_list"),
    # Autocomplete for recipient fields (compose, actions)
    path("recipients/search/", views.recipient_search, name="recipient_search"),
]
