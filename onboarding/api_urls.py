from django.urls import path

from onboarding import apis

urlpatterns = [
    path("teams/", apis.TeamListApi.as_view(), name="api-team-list"),
    path("teams/<slug:slug>/", apis.TeamDetailApi.as_view(), name="api-team-detail"),
    path("teams/<slug:slug>/members/", apis.TeamMemberListApi.as_view(), name="api-team-members"),
    path("teams/<slug:slug>/members/<str:username>/", apis.TeamMemberDetailApi.as_view(), name="api-team-member"),
    path("products/", apis.ProductListApi.as_view(), name="api-product-list"),
    path("products/<slug:slug>/", apis.ProductDetailApi.as_view(), name="api-product-detail"),
    path("products/<slug:slug>/markdown/", apis.ProductMarkdownApi.as_view(), name="api-product-markdown"),
    path("products/<slug:slug>/history/", apis.ProductHistoryApi.as_view(), name="api-product-history"),
    path("products/<slug:slug>/submit/", apis.ProductSubmitApi.as_view(), name="api-product-submit"),
    path("products/<slug:slug>/approve/", apis.ProductApproveApi.as_view(), name="api-product-approve"),
    path("products/<slug:slug>/reject/", apis.ProductRejectApi.as_view(), name="api-product-reject"),
    path("products/<slug:slug>/request-changes/", apis.ProductRequestChangesApi.as_view(),
         name="api-product-request-changes"),
    path("products/<slug:slug>/withdraw/", apis.ProductWithdrawApi.as_view(), name="api-product-withdraw"),
    path("products/<slug:slug>/deprecate/", apis.ProductDeprecateApi.as_view(), name="api-product-deprecate"),
    path("products/<slug:slug>/suspend/", apis.ProductSuspendApi.as_view(), name="api-product-suspend"),
    path("products/<slug:slug>/resume/", apis.ProductResumeApi.as_view(), name="api-product-resume"),
]
