"""The site's URLs plus a view that fails: for the 500 page's tests."""

from django.urls import path

from calmail.urls import urlpatterns as site_urlpatterns


def fail(request):
    raise RuntimeError("boom")


urlpatterns = [path("test-500/", fail), *site_urlpatterns]
