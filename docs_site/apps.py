from django.apps import AppConfig


class DocsSiteConfig(AppConfig):
    """The static WID site: generated from the WID repository, built by MkDocs, served at /docs/."""

    name = "docs_site"

    def ready(self):
        from docs_site import receivers, services  # noqa: F401  (connect the receivers, register the work)
