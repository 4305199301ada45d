from django.urls import path

from docs_site import views

urlpatterns = [
    path("", views.site, name="wid-site"),
    path("<path:path>", views.site, name="wid-site-page"),
]
