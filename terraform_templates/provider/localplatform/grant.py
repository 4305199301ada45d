"""localplatform_grant: a consumer product may read a producer's published ports, never write them.

It lives in the consumer's state: its role becomes a member of the producer's readers role, so it
can SELECT every table in the producer's published schema (those made later too) and knows where
the producer's `curated/` files are. A membership revoked by hand reads as gone, and the next apply
grants it again; destroying it (the dependency dropped, the consumer destroyed) revokes it.
"""
from pathlib import Path

from psycopg import sql
from tf.schema import Attribute, Schema
from tf.types import String

from localplatform.common import (
    PlatformResource, ProviderError, check_absolute, check_slug, known, published_schema, readers_role, reported,
    role_exists, role_name,
)

MEMBERSHIP = """
SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
WHERE g.rolname = %s AND u.rolname = %s
"""


def curated_path(lake_root: str, producer: str) -> str:
    return str(Path(lake_root) / producer / "curated")


class GrantResource(PlatformResource):
    @classmethod
    def get_name(cls) -> str:
        return "grant"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(version=1, attributes=[
            Attribute("consumer", String(), required=True, requires_replace=True, description="The reading product."),
            Attribute("producer", String(), required=True, requires_replace=True, description="The product read."),
            Attribute("lake_root", String(), required=True, description="Absolute path of the lake."),
            Attribute("schema", String(), computed=True, description="The producer's published schema."),
            Attribute("curated_path", String(), computed=True, description="The producer's curated/ folder."),
        ])

    def check(self, config: dict) -> None:
        for name in ("consumer", "producer"):
            if known(config.get(name)):
                check_slug(config[name])
        if known(config.get("consumer"), config.get("producer")) and config["consumer"] == config["producer"]:
            raise ProviderError(f"{config['consumer']} cannot be granted its own ports: it owns them")
        if known(config.get("lake_root")):
            check_absolute("lake_root", config["lake_root"])

    def create(self, ctx, planned):
        with reported(ctx.diagnostics, f"Granting {planned['consumer']} read access to {planned['producer']}"):
            return self._converge(planned)

    def update(self, ctx, current, planned):
        with reported(ctx.diagnostics, f"Updating the grant of {planned['producer']} to {planned['consumer']}"):
            return self._converge(planned)

    def read(self, ctx, current):
        with reported(ctx.diagnostics, f"Reading the grant of {current['producer']} to {current['consumer']}"):
            with self.provider.connect() as conn:
                granted = conn.execute(MEMBERSHIP, [readers_role(current["producer"]),
                                                    role_name(current["consumer"])]).fetchone()
            return {**current, **self._computed(current)} if granted else None
        return current

    def plan(self, ctx, current, planned):
        if known(planned["producer"], planned["lake_root"]):
            planned.update(self._computed(planned))
        return planned

    def delete(self, ctx, current):
        with reported(ctx.diagnostics, f"Revoking {current['consumer']}'s read access to {current['producer']}"):
            readers, consumer = readers_role(current["producer"]), role_name(current["consumer"])
            with self.provider.connect() as conn, conn.transaction():
                self.provider.lock_catalogue(conn)
                # A producer destroyed first took its readers role, and every membership, with it.
                if role_exists(conn, readers) and role_exists(conn, consumer):
                    conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(readers),
                                                                    sql.Identifier(consumer)))
        return None

    @staticmethod
    def _computed(state: dict) -> dict:
        return {"schema": published_schema(state["producer"]),
                "curated_path": curated_path(state["lake_root"], state["producer"])}

    def _converge(self, state: dict) -> dict:
        self.check(state)
        readers, consumer = readers_role(state["producer"]), role_name(state["consumer"])
        with self.provider.connect() as conn, conn.transaction():
            self.provider.lock_catalogue(conn)
            if not role_exists(conn, readers):
                raise ProviderError(f"{state['producer']} is not provisioned (its readers role {readers} does not "
                                    "exist): apply it first")
            if not role_exists(conn, consumer):
                raise ProviderError(f"role {consumer} does not exist (localplatform_storage creates it)")
            if not conn.execute(MEMBERSHIP, [readers, consumer]).fetchone():
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(readers), sql.Identifier(consumer)))
        return {**state, **self._computed(state)}
