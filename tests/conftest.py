import pytest
from rest_framework.test import APIClient

from tests.factories import TeamFactory, member_of, platform_user
from tests.worker import celery_worker_process, e2e, e2e_paths, with_remote  # noqa: F401  (fixtures, once)


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
