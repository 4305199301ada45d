"""Entry point Terraform starts through the wrapper script in the provider mirror."""
from tf.runner import run_provider

from localplatform.provider import LocalPlatformProvider

if __name__ == "__main__":
    run_provider(LocalPlatformProvider())
