from django.urls import path

from provisioning import apis

urlpatterns = [
    path("products/<slug:slug>/jobs/", apis.ProductJobListApi.as_view(), name="api-product-jobs"),
    path("products/<slug:slug>/provisioning/", apis.ProductProvisioningApi.as_view(),
         name="api-product-provisioning"),
    path("products/<slug:slug>/credentials/", apis.CredentialsApi.as_view(), name="api-product-credentials"),
    path("products/<slug:slug>/runs/", apis.ProductRunListApi.as_view(), name="api-product-runs"),
    path("runs/<int:run_id>/", apis.RunDetailApi.as_view(), name="api-run-detail"),
    path("runs/<int:run_id>/log/", apis.RunLogApi.as_view(), name="api-run-log"),
    path("jobs/<int:job_id>/", apis.JobDetailApi.as_view(), name="api-job-detail"),
    path("jobs/<int:job_id>/log/", apis.JobLogApi.as_view(), name="api-job-log"),
    path("jobs/<int:job_id>/confirm/", apis.JobConfirmApi.as_view(), name="api-job-confirm"),
    path("jobs/<int:job_id>/cancel/", apis.JobCancelApi.as_view(), name="api-job-cancel"),
    path("jobs/<int:job_id>/retry/", apis.JobRetryApi.as_view(), name="api-job-retry"),
]
