"""localplatform_compute: a product's execution queue with its quotas, and its role's limits.

The portal's run executor reads the queue from platform_registry.compute_queues; the warehouse
itself enforces the connection limit and statement timeout on the product's role, so one product
cannot starve another of connections or run away with a query.
"""
from psycopg import sql
from tf.schema import Attribute, Schema
from tf.types import Number, String

from localplatform.common import (
    PlatformResource, ProviderError, check_slug, check_whole, known, reported, role_name,
)

LIMITS = {
    "concurrency": (1, 64),
    "memory_mb": (64, 1_048_576),
    "connection_limit": (1, 1000),
    "statement_timeout_ms": (100, 86_400_000),
}
# Owned by the admin; product roles get no privilege on it (nor on the schema).
REGISTRY = (
    "CREATE SCHEMA IF NOT EXISTS platform_registry",
    "REVOKE ALL ON SCHEMA platform_registry FROM PUBLIC",
    """CREATE TABLE IF NOT EXISTS platform_registry.compute_queues (
         product text PRIMARY KEY, queue text NOT NULL, concurrency int NOT NULL, memory_mb int NOT NULL,
         connection_limit int NOT NULL, statement_timeout_ms int NOT NULL)""",
    "REVOKE ALL ON platform_registry.compute_queues FROM PUBLIC",
)
REGISTER = """
INSERT INTO platform_registry.compute_queues
       (product, queue, concurrency, memory_mb, connection_limit, statement_timeout_ms)
VALUES (%(product)s, %(queue)s, %(concurrency)s, %(memory_mb)s, %(connection_limit)s, %(statement_timeout_ms)s)
ON CONFLICT (product) DO UPDATE SET queue = excluded.queue, concurrency = excluded.concurrency,
       memory_mb = excluded.memory_mb, connection_limit = excluded.connection_limit,
       statement_timeout_ms = excluded.statement_timeout_ms
"""


def queue_name(slug: str) -> str:
    return f"runs.{slug}"


def timeout_ms(rolconfig: list[str] | None) -> int | None:
    """The role's own statement_timeout, if it is set in milliseconds as this provider sets it."""
    for setting in rolconfig or []:
        key, _, value = setting.partition("=")
        if key == "statement_timeout":
            return int(value) if value.isdigit() else None
    return None


class ComputeResource(PlatformResource):
    @classmethod
    def get_name(cls) -> str:
        return "compute"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(version=1, attributes=[
            Attribute("product", String(), required=True, requires_replace=True, description="Product slug."),
            Attribute("role", String(), required=True, description="The product's role (localplatform_storage.role)."),
            Attribute("concurrency", Number(), required=True, description="Runs of the product at a time."),
            Attribute("memory_mb", Number(), required=True, description="Memory quota of one run."),
            Attribute("connection_limit", Number(), required=True, description="The role's CONNECTION LIMIT."),
            Attribute("statement_timeout_ms", Number(), required=True, description="The role's statement_timeout."),
            Attribute("queue", String(), computed=True, description="The product's execution queue."),
        ])

    def check(self, config: dict) -> None:
        if known(config.get("product")):
            check_slug(config["product"])
            if known(config.get("role")) and config["role"] != role_name(config["product"]):
                raise ProviderError(f"role must be the product's own role {role_name(config['product'])}")
        for name, (low, high) in LIMITS.items():
            if known(config.get(name)):
                check_whole(name, config[name], low, high)

    def create(self, ctx, planned):
        with reported(ctx.diagnostics, f"Creating compute for {planned['product']}"):
            return self._converge(planned)

    def update(self, ctx, current, planned):
        with reported(ctx.diagnostics, f"Updating compute of {planned['product']}"):
            return self._converge(planned)

    def read(self, ctx, current):
        with reported(ctx.diagnostics, f"Reading compute of {current['product']}"):
            with self.provider.connect() as conn:
                role = conn.execute("SELECT rolconnlimit, rolconfig FROM pg_roles WHERE rolname = %s",
                                    [role_name(current["product"])]).fetchone()
                if role is None:
                    return None
                queue = None
                if conn.execute("SELECT to_regclass('platform_registry.compute_queues')").fetchone()[0]:
                    queue = conn.execute(
                        "SELECT queue, concurrency, memory_mb FROM platform_registry.compute_queues"
                        " WHERE product = %s", [current["product"]]).fetchone()
            queue = queue or (None, None, None)
            return {**current, "connection_limit": role[0], "statement_timeout_ms": timeout_ms(role[1]),
                    "queue": queue[0], "concurrency": queue[1], "memory_mb": queue[2]}
        return current

    def plan(self, ctx, current, planned):
        if known(planned["product"]):
            planned["queue"] = queue_name(planned["product"])
        return planned

    def delete(self, ctx, current):
        with reported(ctx.diagnostics, f"Deleting compute of {current['product']}"):
            role = role_name(check_slug(current["product"]))
            with self.provider.connect() as conn, conn.transaction():
                self.provider.lock_catalogue(conn)
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                    conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT -1").format(sql.Identifier(role)))
                    conn.execute(sql.SQL("ALTER ROLE {} RESET statement_timeout").format(sql.Identifier(role)))
                if conn.execute("SELECT to_regclass('platform_registry.compute_queues')").fetchone()[0]:
                    conn.execute("DELETE FROM platform_registry.compute_queues WHERE product = %s",
                                 [current["product"]])
        return None

    def _converge(self, state: dict) -> dict:
        self.check(state)
        limits = {name: check_whole(name, state[name], *bounds) for name, bounds in LIMITS.items()}
        role = sql.Identifier(role_name(state["product"]))
        with self.provider.connect() as conn, conn.transaction():
            self.provider.lock_catalogue(conn)
            for statement in REGISTRY:
                conn.execute(statement)
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [state["role"]]).fetchone():
                raise ProviderError(f"role {state['role']} does not exist (localplatform_storage creates it)")
            conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(
                role, sql.Literal(limits["connection_limit"])))
            conn.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(
                role, sql.Literal(limits["statement_timeout_ms"])))
            conn.execute(REGISTER, {"product": state["product"], "queue": queue_name(state["product"]), **limits})
        return {**state, **limits, "queue": queue_name(state["product"])}
