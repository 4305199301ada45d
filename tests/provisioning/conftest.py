import psycopg
import pytest
from django.conf import settings
from psycopg import sql
from urllib.parse import urlparse


@pytest.fixture(scope="session", autouse=True)
def tf_state_database():
    """Terraform's state database for the tests (its own, beside the test database)."""
    parsed = urlparse(settings.TF_STATE_DATABASE_URL)
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
        name = parsed.path.lstrip("/")
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
