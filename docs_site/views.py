"""Serves the built WID site at /docs/ to anyone signed in, as the portal's other pages."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.static import serve

from docs_site import builder, services


@login_required
def site(request, path: str = ""):
    root = builder.published()
    if root is None:
        services.site_request_build()
        response = render(request, "docs_site/not_built.html", status=503)
        response["Retry-After"] = "5"
        return response
    # Only inside the site: a redirect for `../../etc` would tell whether a directory exists elsewhere.
    if path and not path.endswith("/") and (root / path).resolve().is_relative_to(root) and (root / path).is_dir():
        return redirect(request.path + "/")
    response = serve(request, path + "index.html" if path == "" or path.endswith("/") else path, document_root=root)
    response["X-Content-Type-Options"] = "nosniff"
    return response
