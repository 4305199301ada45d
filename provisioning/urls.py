from django.urls import path

from provisioning import views

urlpatterns = [
    path("my/", views.my_products, name="my-products"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("jobs/", views.job_list, name="job-list"),
    path("products/<slug:slug>/jobs/", views.job_start, name="job-start"),
    path("products/<slug:slug>/credentials/", views.credentials, name="product-credentials"),
    path("jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/<slug:action>/", views.job_action, name="job-action"),
]
