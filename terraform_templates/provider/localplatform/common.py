"""What the resources share: validated names, error reporting, the resource base class."""
import base64
import hashlib
import hmac
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
    """The product's login role, which owns its private schema of the same name."""
    return "p_" + slug.replace("-", "_")


def published_schema(slug: str) -> str:
    """Where the product's `table` ports live; only its readers role may read there."""
    return "pub_" + slug.replace("-", "_")


def readers_role(slug: str) -> str:
    """The NOLOGIN group whose members (consumer products, personal readers) may read the published schema."""
    return "r_" + slug.replace("-", "_")


def role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is not None


def memberships(conn: psycopg.Connection, role: str) -> list[str]:
    """The roles `role` is a member of."""
    return [name for (name,) in conn.execute(
        "SELECT pg_get_userbyid(m.roleid) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
        " WHERE r.rolname = %s ORDER BY 1", [role])]


def scram_verifier(conn: psycopg.Connection, role: str, password: str) -> str:
    """Only this verifier reaches the server, never the password itself."""
    return conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()


def scram_matches(verifier: str | None, password: str) -> bool:
    """Whether a stored SCRAM-SHA-256 verifier is the one for `password` (RFC 5802, as PostgreSQL stores it)."""
    try:
        method, salt_part, key_part = verifier.split("$")
        iterations, salt = salt_part.split(":")
        stored_key = key_part.split(":")[0]
    except (AttributeError, ValueError):
        return False
    if method != "SCRAM-SHA-256":
        return False
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), base64.b64decode(stored_key))


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
        """A state written with an older schema version, in this one's shape: Terraform refuses an
        object that lacks an attribute, so each one added since starts as null, which read and plan
        treat as a part to repair in place (the inherited default only warns)."""
        attributes = [attribute.name for attribute in self.get_schema().attributes]
        return {name: old.get(name) for name in attributes}
