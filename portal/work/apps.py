from django.apps import AppConfig


class WorkConfig(AppConfig):
    name = "portal.work"
    label = "work"
    verbose_name = "Long work (kernel)"

    def ready(self):
        from portal.work import checks, deliveries  # noqa: F401  (register the checks and the outbox)
