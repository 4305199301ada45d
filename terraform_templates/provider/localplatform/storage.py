"""localplatform_storage: a product's schemas, owned by its own login role, and its lake folder.

The private schema (named after the role) is the product's alone. The published schema holds its
`table` ports: a NOLOGIN readers role may read every table there, those the product creates later
too, and write none; consumers (localplatform_grant) and people (localplatform_reader) read by
being members of it.

Read reports each part's health in a computed attribute (`role`, `schema`, `published_schema`,
`readers_role`, `lake_path` become null when that part is missing or was changed by hand); `plan`
sets them back to what they must be, so the next plan shows an in-place update that repairs the
part and keeps the password. A new `password_generation` rotates the password.

`suspended` (the WID's `suspended: true`; the "did anyone scream" test of docs/adr/0024) switches
access off and keeps every byte: the login role cannot log in (its sessions are ended), and the
readers role loses USAGE on the published schema, so every consumer product and every person reading
through it is refused at once while their grants stay as they are. Unsuspended, both come back.
Read judges each part against the setting, so drift repair keeps a suspension as it keeps access.
"""
import secrets
import shutil
from pathlib import Path

from psycopg import sql
from tf.schema import Attribute, Schema
from tf.types import Bool, Number, String, Unknown

from localplatform.common import (
    PlatformResource, check_absolute, check_slug, check_whole, child_dir, known, memberships, published_schema,
    readers_role, reported, role_exists, role_name, scram_matches, scram_verifier,
)

LAKE_AREAS = ("raw", "staging", "curated")
MAX_GENERATION = 2**31 - 1

# Exposed: PUBLIC holds any privilege, or a role other than the owner may create (and so drop) there.
SCHEMA_HEALTH = """
SELECT pg_get_userbyid(n.nspowner) = %(role)s,
       EXISTS (SELECT FROM aclexplode(n.nspacl) a
               WHERE a.grantee <> n.nspowner AND (a.grantee = 0 OR a.privilege_type = 'CREATE'))
FROM pg_namespace n WHERE n.nspname = %(role)s
"""
# Exposed: anyone but the owner holds anything there, except the readers role's USAGE.
PUBLISHED_HEALTH = """
SELECT pg_get_userbyid(n.nspowner) = %(role)s,
       EXISTS (SELECT FROM aclexplode(n.nspacl) a
               WHERE a.grantee <> n.nspowner
                 AND (a.grantee = 0 OR a.privilege_type <> 'USAGE' OR pg_get_userbyid(a.grantee) <> %(readers)s))
FROM pg_namespace n WHERE n.nspname = %(published)s
"""
# Sound: a plain group of nobody's, that may read every table of the published schema (and the
# ones its owner creates later), write none, and touch nothing of the private schema.
READERS_HEALTH = """
SELECT NOT (r.rolcanlogin OR r.rolsuper OR r.rolcreatedb OR r.rolcreaterole OR r.rolreplication OR r.rolbypassrls)
   AND NOT EXISTS (SELECT FROM pg_auth_members m WHERE m.member = r.oid)
   AND has_schema_privilege(r.oid, n.oid, 'USAGE') = %(usage)s AND NOT has_schema_privilege(r.oid, n.oid, 'CREATE')
   AND EXISTS (SELECT FROM pg_default_acl d, aclexplode(d.defaclacl) a
               WHERE d.defaclrole = n.nspowner AND d.defaclnamespace = n.oid AND d.defaclobjtype = 'r'
                 AND a.grantee = r.oid AND a.privilege_type = 'SELECT')
   AND NOT EXISTS (SELECT FROM pg_default_acl d, aclexplode(d.defaclacl) a
                   WHERE d.defaclrole = n.nspowner AND d.defaclnamespace = n.oid
                     AND a.grantee = r.oid AND a.privilege_type <> 'SELECT')
   AND NOT EXISTS (SELECT FROM pg_class c
                   WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                     AND (NOT has_table_privilege(r.oid, c.oid, 'SELECT')
                          OR has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')))
   AND NOT EXISTS (SELECT FROM pg_namespace p, aclexplode(p.nspacl) a WHERE p.nspname = %(role)s AND a.grantee = r.oid)
FROM pg_roles r, pg_namespace n WHERE r.rolname = %(readers)s AND n.nspname = %(published)s
"""
SCHEMA_GRANTEES = """
SELECT DISTINCT r.rolname, a.privilege_type FROM pg_namespace n, aclexplode(n.nspacl) a JOIN pg_roles r ON r.oid = a.grantee
WHERE n.nspname = %s AND a.grantee <> n.nspowner
"""


def generation(state: dict | None):
    """The password's generation; states from before rotation existed hold null, which is 0."""
    value = (state or {}).get("password_generation")
    return 0 if value is None else value


def suspended(state: dict | None) -> bool:
    """Whether access is switched off; states from before suspension existed hold null, which is no."""
    return bool((state or {}).get("suspended"))


class StorageResource(PlatformResource):
    @classmethod
    def get_name(cls) -> str:
        return "storage"

    @classmethod
    def get_schema(cls) -> Schema:
        # Version 2 added password_generation, published_schema and readers_role; 3 added suspended.
        return Schema(version=3, attributes=[
            Attribute("product", String(), required=True, requires_replace=True, description="Product slug."),
            Attribute("lake_root", String(), required=True, description="Absolute path of the lake."),
            Attribute("password_generation", Number(), optional=True,
                      description="Change it to rotate the password (null is 0)."),
            Attribute("suspended", Bool(), optional=True,
                      description="Access switched off, data kept: no login, no reads of the published schema."),
            Attribute("role", String(), computed=True, description="Login role owning the schemas."),
            Attribute("password", String(), computed=True, sensitive=True, description="The role's password."),
            Attribute("schema", String(), computed=True, description="The product's private schema."),
            Attribute("published_schema", String(), computed=True, description="Where its table ports live."),
            Attribute("readers_role", String(), computed=True, description="Group that may read published_schema."),
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
        if known(config.get("password_generation")):
            check_whole("password_generation", config["password_generation"], 0, MAX_GENERATION)

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
            rotated = generation(current) != generation(planned)
            return self._converge(planned, secrets.token_urlsafe(32) if rotated else current["password"])

    def read(self, ctx, current):
        with reported(ctx.diagnostics, f"Reading storage of {current['product']}"):
            slug = current["product"]
            names = {"role": role_name(slug), "published": published_schema(slug), "readers": readers_role(slug),
                     "usage": not suspended(current)}
            with self.provider.connect() as conn:
                login = conn.execute(
                    "SELECT rolpassword, rolinherit AND has_database_privilege(oid, current_database(), 'CONNECT')"
                    " AND rolcanlogin = %s FROM pg_authid WHERE rolname = %s",
                    [not suspended(current), names["role"]]).fetchone()
                owned, exposed = conn.execute(SCHEMA_HEALTH, names).fetchone() or (None, None)
                published, published_exposed = conn.execute(PUBLISHED_HEALTH, names).fetchone() or (None, None)
                readers = conn.execute(READERS_HEALTH, names).fetchone()
            lake = Path(current["lake_root"]) / slug
            if login is None and owned is None and published is None and not lake.exists():
                return None
            return {
                **current,
                "role": names["role"] if login and login[1] and scram_matches(login[0], current["password"]) else None,
                "schema": names["role"] if owned and not exposed else None,
                "published_schema": names["published"] if published and not published_exposed else None,
                "readers_role": names["readers"] if readers and readers[0] else None,
                "lake_path": str(lake) if all((lake / area).is_dir() for area in LAKE_AREAS) else None,
            }
        return current

    def plan(self, ctx, current, planned):
        with reported(ctx.diagnostics, f"Planning storage of {planned['product']}"):
            if known(planned["product"], planned["lake_root"]):
                slug = planned["product"]
                lake = Path(planned["lake_root"]) / slug
                planned.update(role=role_name(slug), schema=role_name(slug), published_schema=published_schema(slug),
                               readers_role=readers_role(slug), lake_path=str(lake), **self.provider.endpoint())
            if generation(current) != generation(planned):
                planned["password"] = Unknown
        return planned

    def delete(self, ctx, current):
        with reported(ctx.diagnostics, f"Deleting storage of {current['product']}"):
            slug = check_slug(current["product"])
            role, readers = role_name(slug), readers_role(slug)
            with self.provider.connect() as conn, conn.transaction():
                self.provider.lock_catalogue(conn)
                for schema in (published_schema(slug), role):
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
                # Dropping the readers role ends every consumer's and reader's membership in it.
                if role_exists(conn, readers):
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(readers)))
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(readers)))
                if role_exists(conn, role):
                    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role])
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
            lake = child_dir(Path(current["lake_root"]), current["product"])
            if lake.exists():
                shutil.rmtree(lake)
        return None

    def _converge(self, state: dict, password: str) -> dict:
        """Make roles, schemas, privileges and lake folder what they must be; safe to repeat."""
        self.check(state)
        slug = check_slug(state["product"])
        role, published, readers = role_name(slug), published_schema(slug), readers_role(slug)
        lake = child_dir(check_absolute("lake_root", state["lake_root"]), slug)
        for area in LAKE_AREAS:
            (lake / area).mkdir(parents=True, exist_ok=True)
        names = {"name": sql.Identifier(role), "published": sql.Identifier(published),
                 "readers": sql.Identifier(readers), "login": sql.SQL("NOLOGIN" if suspended(state) else "LOGIN")}
        with self.provider.connect() as conn, conn.transaction():
            self.provider.lock_catalogue(conn)
            names["database"] = sql.Identifier(conn.info.dbname)
            conn.execute(sql.SQL(
                "{} ROLE {} WITH {} INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}"
            ).format(sql.SQL("ALTER" if role_exists(conn, role) else "CREATE"), names["name"], names["login"],
                     sql.Literal(scram_verifier(conn, role, password))))
            conn.execute(sql.SQL(
                "{} ROLE {} WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
            ).format(sql.SQL("ALTER" if role_exists(conn, readers) else "CREATE"), names["readers"]))
            for member_of in memberships(conn, readers):
                conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(member_of), names["readers"]))
            for statement in (
                "CREATE SCHEMA IF NOT EXISTS {name} AUTHORIZATION {name}",
                "ALTER SCHEMA {name} OWNER TO {name}",
                "REVOKE ALL ON SCHEMA {name} FROM PUBLIC, {readers}",
                # No other role may connect unless granted, nor create in the shared public schema.
                "REVOKE ALL ON DATABASE {database} FROM PUBLIC",
                "GRANT CONNECT ON DATABASE {database} TO {name}",
                "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
                "CREATE SCHEMA IF NOT EXISTS {published} AUTHORIZATION {name}",
                "ALTER SCHEMA {published} OWNER TO {name}",
                "REVOKE ALL ON SCHEMA {published} FROM PUBLIC, {readers}",
                # Read, never write: the tables there now and every table the product creates there later.
                "ALTER DEFAULT PRIVILEGES FOR ROLE {name} IN SCHEMA {published} REVOKE ALL ON TABLES FROM {readers}",
                "ALTER DEFAULT PRIVILEGES FOR ROLE {name} IN SCHEMA {published} GRANT SELECT ON TABLES TO {readers}",
                "REVOKE ALL ON ALL TABLES IN SCHEMA {published} FROM {readers}",
                "GRANT SELECT ON ALL TABLES IN SCHEMA {published} TO {readers}",
            ):
                conn.execute(sql.SQL(statement).format(**names))
            if not suspended(state):
                conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {published} TO {readers}").format(**names))
            for grantee, privilege in conn.execute(SCHEMA_GRANTEES, [role]).fetchall():
                if privilege == "CREATE":
                    conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(
                        names["name"], sql.Identifier(grantee)))
            for grantee, _ in conn.execute(SCHEMA_GRANTEES, [published]).fetchall():
                if grantee != readers:
                    conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(
                        names["published"], sql.Identifier(grantee)))
            endpoint = self.provider.endpoint(conn)
        if suspended(state):  # NOLOGIN (committed now) keeps open sessions: end them, a run's or a client's
            with self.provider.connect() as conn:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role])
        return {**state, "role": role, "password": password, "schema": role, "published_schema": published,
                "readers_role": readers, "lake_path": str(lake), **endpoint}
