import pytest
from rest_framework.test import APIClient

from tests.factories import TeamFactory, member_of, platform_user
from tests.worker import celery_worker_process, e2e, e2e_paths, with_remote  # noqa: F401  (fixtures, once)

# `make test` runs on two pytest-xdist processes (--dist loadgroup). Tests that share something of
# the machine's run in one process, one after the other, as a whole suite would: those of the real
# Celery worker (one per process, tests/worker.py); those that provision into the warehouse with
# fixed slugs and Terraform workspaces; those that start and stop services of their own and load
# the machine on purpose. Every other test goes wherever a process is free.
SERIAL_GROUPS = {
    "services": ("tests/faults/", "tests/multi/", "tests/production/"),
    "terraform": tuple(f"tests/provisioning/test_{name}.py" for name in (
        "local_provider", "local_access", "provider_adoption", "confinement", "job_failures",
        "terraform_deadline", "apply_if", "access")) + ("tests/work/test_kernel.py",),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = item.nodeid.split("::")[0]
        if "celery_worker_process" in getattr(item, "fixturenames", ()):
            group = "celery"
        else:
            group = next((name for name, prefixes in SERIAL_GROUPS.items() if path.startswith(prefixes)), None)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(autouse=True)
def wid_repo(settings, tmp_path):
    """Every test writes to a repository of its own."""
    settings.WID_REPO_PATH = tmp_path / "wid-repo"
    settings.WID_REPO_REMOTE = ""
    return settings.WID_REPO_PATH


@pytest.fixture(autouse=True)
def archive_root(settings, tmp_path):
    """Destroys archive the product first: into the test's own folder (e2e: the worker's, see tests/worker.py)."""
    settings.ARCHIVE_ROOT = tmp_path / "archive"
    return settings.ARCHIVE_ROOT


@pytest.fixture
def team(db):
    return TeamFactory(slug="growth-analytics", name="Growth analytics")


@pytest.fixture
def other_team(db):
    return TeamFactory(slug="finance-data", name="Finance data")


@pytest.fixture
def member(team):
    return member_of(team, username="alice", first_name="Alice", last_name="Analyst")


@pytest.fixture
def owner(team):
    return member_of(team, role="owner", username="olivia", first_name="Olivia", last_name="Owner")


@pytest.fixture
def outsider(other_team):
    return member_of(other_team, username="oscar", first_name="Oscar", last_name="Outsider")


@pytest.fixture
def platform(db):
    return platform_user(username="priya", first_name="Priya", last_name="Platform")


def _client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def api():
    """`api(user)` gives an API client signed in as `user`."""
    return _client
