from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    """Provisioning listens to onboarding's domain events (`onboarding.signals`), and sends both
    apps' events to the outgoing webhook."""

    name = "provisioning"

    def ready(self):
        from provisioning import receivers, runs, webhooks  # noqa: F401  (connect the receivers, register the work)
