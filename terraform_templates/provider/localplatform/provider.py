import os

import psycopg
from tf.iface import Provider
from tf.schema import Schema

from localplatform.common import ProviderError
from localplatform.compute import ComputeResource
from localplatform.grant import GrantResource
from localplatform.pipeline import PipelineResource
from localplatform.reader import ReaderResource
from localplatform.storage import StorageResource

DSN_VARIABLE = "LOCALPLATFORM_WAREHOUSE_DSN"
# Serialises catalogue changes across concurrent applies of different products: GRANT/REVOKE on
# the one database row and CREATE ... IF NOT EXISTS fail with "tuple concurrently updated" otherwise.
CATALOGUE_LOCK = 0x6C6F63616C


class LocalPlatformProvider(Provider):
    """The local data platform: warehouse schemas and roles, compute queues, pipeline repositories, read access."""

    def __init__(self):
        self.dsn = None
        self._endpoint = None

    def full_name(self) -> str:
        return "portal.local/platform/localplatform"

    def get_model_prefix(self) -> str:
        return "localplatform_"

    def get_provider_schema(self, diags) -> Schema:
        # No arguments: the admin DSN comes from the environment so that it never sits in tfvars or state.
        return Schema()

    def validate_config(self, diags, config) -> None:
        pass

    def configure_provider(self, diags, config) -> None:
        self.dsn = os.environ.get(DSN_VARIABLE) or None
        if not self.dsn:
            diags.add_error(f"{DSN_VARIABLE} is not set",
                            "Pass the warehouse admin connection string to terraform in its environment.")

    def get_data_sources(self) -> list:
        return []

    def get_resources(self) -> list:
        return [StorageResource, ComputeResource, PipelineResource, GrantResource, ReaderResource]

    def connect(self) -> psycopg.Connection:
        """An autocommit connection: each change runs in an explicit `transaction()` holding the lock."""
        if not self.dsn:
            raise ProviderError(f"{DSN_VARIABLE} is not set")
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10, application_name="localplatform")

    @staticmethod
    def lock_catalogue(conn: psycopg.Connection) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [CATALOGUE_LOCK])

    def endpoint(self, conn: psycopg.Connection | None = None) -> dict:
        """Where product roles connect: the warehouse the admin DSN names."""
        if conn is not None:
            self._endpoint = {"host": conn.info.host, "port": conn.info.port, "database": conn.info.dbname}
        elif self._endpoint is None:
            with self.connect() as conn:
                return self.endpoint(conn)
        return self._endpoint
