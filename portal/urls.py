from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from portal import views

urlpatterns = [
    # provisioning's product routes first: onboarding's /products/<slug>/<action>/ would take them.
    path("", include("provisioning.urls")),
    path("", include("onboarding.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("onboarding.api_urls")),
    path("api/v1/", include("provisioning.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # A page for browsers: an anonymous visitor is sent to the login page, as from every page.
    path("api/docs/", login_required(SpectacularSwaggerView.as_view(url_name="api-schema")), name="api-docs"),
    path("docs/", include("docs_site.urls")),
    path("healthz/", views.healthz, name="healthz"),
]

handler404 = "portal.views.not_found"
handler500 = "portal.views.server_error"
