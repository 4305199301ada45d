from django.urls import path

from provisioning import views

urlpatterns = [
    path("my/", views.my_products, name="my-products"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("jobs/", views.job_list, name="job-list"),
    path("products/<slug:slug>/jobs/", views.job_start, name="job-start"),
    path("products/<slug:slug>/credentials/", views.credentials, name="product-credentials"),
    path("products/<slug:slug>/credentials/rotate/", views.credentials_rotate, name="product-credentials-rotate"),
    path("products/<slug:slug>/access/", views.product_access, name="product-access"),
    path("products/<slug:slug>/access/request/", views.access_request_create, name="product-access-request"),
    path("access/", views.access_report, name="access-report"),
    path("access/requests/<int:request_id>/<slug:action>/", views.access_request_action, name="access-request-action"),
    # No login: the data custodian is an e-mail address with a signed link, not a user.
    path("access/custodian/<str:token>/", views.custodian, name="access-custodian"),
    path("jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/<slug:action>/", views.job_action, name="job-action"),
]
