"""localplatform_storage: a product's schema, owned by its own login role, and its lake folder.

Read reports each part's health in a computed attribute (`role`, `schema`, `lake_path` become
null when that part is missing or was changed by hand); `plan` sets them back to what they must
be, so the next plan shows an in-place update that repairs the part and keeps the password.
"""
import base64
import hashlib
import hmac
import secrets
import shutil
from pathlib import Path

from psycopg import sql
from tf.schema import Attribute, Schema
from tf.types import Number, String

from localplatform.common import (
    PlatformResource, check_absolute, check_slug, child_dir, known, reported, role_name,
)

LAKE_AREAS = ("raw", "staging", "curated")

# Exposed: PUBLIC holds any privilege, or a role other than the owner may create (and so drop) there.
SCHEMA_HEALTH = """
SELECT pg_get_userbyid(n.nspowner) = %(role)s,
       EXISTS (SELECT FROM aclexplode(n.nspacl) a
               WHERE a.grantee <> n.nspowner AND (a.grantee = 0 OR a.privilege_type = 'CREATE'))
FROM pg_namespace n WHERE n.nspname = %(role)s
"""
FOREIGN_CREATORS = """
SELECT r.rolname FROM pg_namespace n, aclexplode(n.nspacl) a JOIN pg_roles r ON r.oid = a.grantee
WHERE n.nspname = %s AND a.grantee <> n.nspowner AND a.privilege_type = 'CREATE'
"""


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


class StorageResource(PlatformResource):
    @classmethod
    def get_name(cls) -> str:
        return "storage"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(version=1, attributes=[
            Attribute("product", String(), required=True, requires_replace=True, description="Product slug."),
            Attribute("lake_root", String(), required=True, description="Absolute path of the lake."),
            Attribute("role", String(), computed=True, description="Login role owning the schema."),
            Attribute("password", String(), computed=True, sensitive=True, description="The role's password."),
            Attribute("schema", String(), computed=True, description="The product's schema."),
            Attribute("host", String(), computed=True, description="Warehouse host."),
            Attribute("port", Number(), computed=True, description="Warehouse port."),
            Attribute("database", String(), computed=True, description="Warehouse database."),
            Attribute("lake_path", String(), computed=True, description="lake_root/product: raw, staging, curated."),
        ])

    def check(self, config: dict) -> None:
        if known(config.get("product")):
            check_slug(config["product"])
        if known(config.get("lake_root")):
            check_absolute("lake_root", config["lake_root"])

    def create(self, ctx, planned):
        # An apply killed before Terraform saved its state may have made it all already: it is taken
        # over, the role with this new password (nobody holds the old one), the schema and lake as they are.
        with reported(ctx.diagnostics, f"Creating storage for {planned['product']}"):
            return self._converge(planned, secrets.token_urlsafe(32))

    def update(self, ctx, current, planned):
        with reported(ctx.diagnostics, f"Updating storage of {planned['product']}"):
            old = child_dir(Path(current["lake_root"]), current["product"])
            new = child_dir(check_absolute("lake_root", planned["lake_root"]), planned["product"])
            if old != new and old.is_dir() and not new.exists():
                new.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(old, new)
            return self._converge(planned, current["password"])

    def read(self, ctx, current):
        with reported(ctx.diagnostics, f"Reading storage of {current['product']}"):
            role = role_name(current["product"])
            with self.provider.connect() as conn:
                login = conn.execute(
                    "SELECT rolpassword, has_database_privilege(oid, current_database(), 'CONNECT')"
                    " FROM pg_authid WHERE rolname = %s AND rolcanlogin", [role]).fetchone()
                owned, exposed = conn.execute(SCHEMA_HEALTH, {"role": role}).fetchone() or (None, None)
            lake = Path(current["lake_root"]) / current["product"]
            if login is None and owned is None and not lake.exists():
                return None
            return {
                **current,
                "role": role if login and login[1] and scram_matches(login[0], current["password"]) else None,
                "schema": role if owned and not exposed else None,
                "lake_path": str(lake) if all((lake / area).is_dir() for area in LAKE_AREAS) else None,
            }
        return current

    def plan(self, ctx, current, planned):
        with reported(ctx.diagnostics, f"Planning storage of {planned['product']}"):
            if known(planned["product"], planned["lake_root"]):
                role = role_name(planned["product"])
                lake = Path(planned["lake_root"]) / planned["product"]
                planned.update(role=role, schema=role, lake_path=str(lake), **self.provider.endpoint())
        return planned

    def delete(self, ctx, current):
        with reported(ctx.diagnostics, f"Deleting storage of {current['product']}"):
            role = role_name(check_slug(current["product"]))
            name = sql.Identifier(role)
            with self.provider.connect() as conn, conn.transaction():
                self.provider.lock_catalogue(conn)
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role])
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(name))
                    conn.execute(sql.SQL("DROP ROLE {}").format(name))
            lake = child_dir(Path(current["lake_root"]), current["product"])
            if lake.exists():
                shutil.rmtree(lake)
        return None

    def _converge(self, state: dict, password: str) -> dict:
        """Make role, schema, privileges and lake folder what they must be; safe to repeat."""
        role = role_name(check_slug(state["product"]))
        lake = child_dir(check_absolute("lake_root", state["lake_root"]), state["product"])
        for area in LAKE_AREAS:
            (lake / area).mkdir(parents=True, exist_ok=True)
        name = sql.Identifier(role)
        with self.provider.connect() as conn, conn.transaction():
            self.provider.lock_catalogue(conn)
            # Only the SCRAM verifier reaches the server, never the password itself.
            verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
            conn.execute(sql.SQL(
                "{} ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}"
            ).format(sql.SQL("ALTER" if exists else "CREATE"), name, sql.Literal(verifier)))
            database = sql.Identifier(conn.info.dbname)
            for statement in (
                "CREATE SCHEMA IF NOT EXISTS {name} AUTHORIZATION {name}",
                "ALTER SCHEMA {name} OWNER TO {name}",
                "REVOKE ALL ON SCHEMA {name} FROM PUBLIC",
                # No other role may connect unless granted, nor create in the shared public schema.
                "REVOKE ALL ON DATABASE {database} FROM PUBLIC",
                "GRANT CONNECT ON DATABASE {database} TO {name}",
                "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
            ):
                conn.execute(sql.SQL(statement).format(name=name, database=database))
            for (grantee,) in conn.execute(FOREIGN_CREATORS, [role]).fetchall():
                conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(name, sql.Identifier(grantee)))
            endpoint = self.provider.endpoint(conn)
        return {**state, "role": role, "password": password, "schema": role, "lake_path": str(lake), **endpoint}
