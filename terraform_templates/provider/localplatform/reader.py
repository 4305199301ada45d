"""localplatform_reader: a person's own login on a product's published schema, until a date.

A LOGIN role that is a member of the product's readers role and nothing else, with CONNECT on the
database, two connections at most and `VALID UNTIL` its date: after it, PostgreSQL refuses the
password. Read reports `role` as null when its password, membership, CONNECT or limits were changed
by hand and the actual `valid_until`, so the next apply repairs it with the same password.
"""
import re
import secrets
from datetime import datetime

from psycopg import sql
from tf.schema import Attribute, Schema
from tf.types import String

from localplatform.common import (
    PlatformResource, ProviderError, check_slug, known, memberships, readers_role, reported, role_exists,
    scram_matches, scram_verifier,
)

NAME_RE = re.compile(r"^a_[0-9]{1,12}$")
VALID_UNTIL_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")
VALID_UNTIL_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
CONNECTION_LIMIT = 2
LOGIN = f"""
SELECT a.rolpassword,
       a.rolcanlogin AND a.rolinherit AND a.rolconnlimit = {CONNECTION_LIMIT}
       AND NOT (a.rolsuper OR a.rolcreatedb OR a.rolcreaterole OR a.rolreplication OR a.rolbypassrls)
       AND has_database_privilege(a.oid, current_database(), 'CONNECT'),
       CASE WHEN isfinite(a.rolvaliduntil)
            THEN to_char(a.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') END,
       ARRAY(SELECT pg_get_userbyid(m.roleid) FROM pg_auth_members m WHERE m.member = a.oid)
FROM pg_authid a WHERE a.rolname = %s
"""


def check_name(name) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ProviderError(f"{name!r} is not a reader's role name (^a_[0-9]{{1,12}}$)")
    return name


def check_valid_until(value) -> str:
    try:
        if not isinstance(value, str) or not VALID_UNTIL_RE.fullmatch(value):
            raise ValueError
        datetime.strptime(value, VALID_UNTIL_FORMAT)
    except ValueError:
        raise ProviderError(f"valid_until must be a UTC time as YYYY-MM-DDTHH:MM:SSZ, not {value!r}") from None
    return value


class ReaderResource(PlatformResource):
    @classmethod
    def get_name(cls) -> str:
        return "reader"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(version=1, attributes=[
            Attribute("product", String(), required=True, requires_replace=True, description="The product read."),
            Attribute("name", String(), required=True, requires_replace=True, description="Login role, a_<digits>."),
            Attribute("valid_until", String(), required=True, description="YYYY-MM-DDTHH:MM:SSZ; refused after."),
            Attribute("password", String(), computed=True, sensitive=True, description="The login's password."),
            Attribute("role", String(), computed=True, description="The login role; null when changed by hand."),
        ])

    def check(self, config: dict) -> None:
        if known(config.get("product")):
            check_slug(config["product"])
        if known(config.get("name")):
            check_name(config["name"])
        if known(config.get("valid_until")):
            check_valid_until(config["valid_until"])

    def create(self, ctx, planned):
        # A role a killed apply left is taken over with this new password: nobody holds the old one.
        with reported(ctx.diagnostics, f"Creating reader {planned['name']} of {planned['product']}"):
            return self._converge(planned, secrets.token_urlsafe(32))

    def update(self, ctx, current, planned):
        with reported(ctx.diagnostics, f"Updating reader {planned['name']} of {planned['product']}"):
            return self._converge(planned, current["password"])

    def read(self, ctx, current):
        with reported(ctx.diagnostics, f"Reading reader {current['name']} of {current['product']}"):
            with self.provider.connect() as conn:
                login = conn.execute(LOGIN, [current["name"]]).fetchone()
            if login is None:
                return None
            verifier, sound, valid_until, member_of = login
            healthy = sound and member_of == [readers_role(current["product"])] \
                and scram_matches(verifier, current["password"])
            return {**current, "valid_until": valid_until, "role": current["name"] if healthy else None}
        return current

    def plan(self, ctx, current, planned):
        if known(planned["name"]):
            planned["role"] = planned["name"]
        return planned

    def delete(self, ctx, current):
        with reported(ctx.diagnostics, f"Deleting reader {current['name']} of {current['product']}"):
            name = check_name(current["name"])
            with self.provider.connect() as conn, conn.transaction():
                self.provider.lock_catalogue(conn)
                if role_exists(conn, name):
                    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name])
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
        return None

    def _converge(self, state: dict, password: str) -> dict:
        self.check(state)
        name, readers = state["name"], readers_role(state["product"])
        with self.provider.connect() as conn, conn.transaction():
            self.provider.lock_catalogue(conn)
            if not role_exists(conn, readers):
                raise ProviderError(f"{state['product']} is not provisioned (its readers role {readers} does not "
                                    "exist)")
            conn.execute(sql.SQL(
                "{} ROLE {} WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
                " CONNECTION LIMIT {} PASSWORD {} VALID UNTIL {}"
            ).format(sql.SQL("ALTER" if role_exists(conn, name) else "CREATE"), sql.Identifier(name),
                     sql.Literal(CONNECTION_LIMIT), sql.Literal(scram_verifier(conn, name, password)),
                     sql.Literal(check_valid_until(state["valid_until"]))))
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(conn.info.dbname), sql.Identifier(name)))
            for member_of in memberships(conn, name):
                if member_of != readers:
                    conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(member_of), sql.Identifier(name)))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(readers), sql.Identifier(name)))
        return {**state, "password": password, "role": name}
