from django.urls import path

from provisioning import access_apis, apis, health_apis

urlpatterns = [
    path("products/<slug:slug>/jobs/", apis.ProductJobListApi.as_view(), name="api-product-jobs"),
    path("products/<slug:slug>/provisioning/", apis.ProductProvisioningApi.as_view(),
         name="api-product-provisioning"),
    path("products/<slug:slug>/credentials/", apis.CredentialsApi.as_view(), name="api-product-credentials"),
    path("products/<slug:slug>/credentials/rotate/", access_apis.CredentialsRotateApi.as_view(),
         name="api-product-credentials-rotate"),
    path("products/<slug:slug>/health/", health_apis.ProductHealthApi.as_view(), name="api-product-health"),
    path("products/<slug:slug>/ports/", access_apis.ProductPortsApi.as_view(), name="api-product-ports"),
    path("products/<slug:slug>/access/", access_apis.ProductAccessApi.as_view(), name="api-product-access"),
    path("products/<slug:slug>/access-requests/", access_apis.ProductAccessRequestListApi.as_view(),
         name="api-product-access-requests"),
    path("access-requests/<int:request_id>/", access_apis.AccessRequestDetailApi.as_view(),
         name="api-access-request-detail"),
    path("access-requests/<int:request_id>/approve/", access_apis.AccessRequestApproveApi.as_view(),
         name="api-access-request-approve"),
    path("access-requests/<int:request_id>/reject/", access_apis.AccessRequestRejectApi.as_view(),
         name="api-access-request-reject"),
    path("access-requests/<int:request_id>/revoke/", access_apis.AccessRequestRevokeApi.as_view(),
         name="api-access-request-revoke"),
    path("access/", access_apis.AccessEventsApi.as_view(), name="api-access-events"),
    path("products/<slug:slug>/runs/", apis.ProductRunListApi.as_view(), name="api-product-runs"),
    path("runs/<int:run_id>/", apis.RunDetailApi.as_view(), name="api-run-detail"),
    path("runs/<int:run_id>/log/", apis.RunLogApi.as_view(), name="api-run-log"),
    path("jobs/<int:job_id>/", apis.JobDetailApi.as_view(), name="api-job-detail"),
    path("jobs/<int:job_id>/log/", apis.JobLogApi.as_view(), name="api-job-log"),
    path("jobs/<int:job_id>/confirm/", apis.JobConfirmApi.as_view(), name="api-job-confirm"),
    path("jobs/<int:job_id>/cancel/", apis.JobCancelApi.as_view(), name="api-job-cancel"),
    path("jobs/<int:job_id>/retry/", apis.JobRetryApi.as_view(), name="api-job-retry"),
]
