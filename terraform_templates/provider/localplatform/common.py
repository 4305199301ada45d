"""What the resources share: validated names, error reporting, the resource base class."""
import re
import subprocess
from contextlib import contextmanager
from pathlib import Path

import psycopg
from tf.iface import Resource, UpgradeContext
from tf.types import Unknown
from tf.utils import Diagnostics

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,40}[a-z0-9]$")


class ProviderError(Exception):
    """Reported to Terraform as an error diagnostic."""


def role_name(slug: str) -> str:
    return "p_" + slug.replace("-", "_")


def known(*values) -> bool:
    """Config values are Unknown while `terraform validate` runs or an upstream resource is pending."""
    return all(value is not Unknown and value is not None for value in values)


def check_slug(slug) -> str:
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        raise ProviderError(f"{slug!r} is not a product slug (^[a-z][a-z0-9-]{{1,40}}[a-z0-9]$)")
    return slug


def check_whole(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer() \
            or not low <= value <= high:
        raise ProviderError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return int(value)


def check_absolute(name: str, value) -> Path:
    if not isinstance(value, str) or not value.startswith("/") or "\n" in value or "\x00" in value:
        raise ProviderError(f"{name} must be an absolute path, not {value!r}")
    return Path(value)


def child_dir(root: Path, slug: str) -> Path:
    """`root/slug`, and only that: what a delete may remove."""
    path = root / check_slug(slug)
    if path.resolve().parent != root.resolve():
        raise ProviderError(f"{path} is not directly inside {root}")
    return path


@contextmanager
def reported(diags: Diagnostics, action: str):
    try:
        yield
    except (ProviderError, psycopg.Error, OSError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr if isinstance(exc, subprocess.CalledProcessError) and exc.stderr else str(exc)
        diags.add_error(f"{action} failed", str(detail).strip())


class PlatformResource(Resource):
    def __init__(self, provider):
        self.provider = provider

    def validate(self, diags, type_name, config):
        super().validate(diags, type_name, config)
        with reported(diags, f"Validating {type_name}"):
            self.check(config)

    def check(self, config: dict) -> None:
        """Raise ProviderError for known values that are invalid."""

    def upgrade(self, ctx: UpgradeContext, version: int, old: dict) -> dict:
        # One schema version so far: nothing to migrate (the inherited default warns on every plan).
        return old
