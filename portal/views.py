from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect


def wid_site(request):
    """The static WID site is built by MkDocs (issue 4); until then /docs/ leads to the WID list."""
    return redirect("product-list")


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
