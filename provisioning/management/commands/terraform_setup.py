import subprocess

from django.core.management.base import BaseCommand, CommandError

from provisioning.toolchain import ToolchainError, ensure_toolchain


class Command(BaseCommand):
    help = "Install the local provider into the Terraform mirror, write the CLI config, print the version."

    def handle(self, *args, **options):
        try:
            toolchain = ensure_toolchain()
        except ToolchainError as exc:
            raise CommandError(str(exc)) from exc
        result = subprocess.run([str(toolchain.binary), "version"], env=toolchain.env,
                                capture_output=True, text=True, timeout=60)
        if result.returncode:
            raise CommandError(f"{toolchain.binary} version failed: {result.stderr or result.stdout}")
        self.stdout.write(result.stdout.splitlines()[0])
        self.stdout.write(f"CLI config {toolchain.env['TF_CLI_CONFIG_FILE']}")
