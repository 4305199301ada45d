from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    """Provisioning listens to onboarding's domain events (`onboarding.signals`)."""

    name = "provisioning"

    def ready(self):
        from provisioning import receivers  # noqa: F401  (connects the receivers)
