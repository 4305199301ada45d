"""The git adapter: failures leave nothing behind; the repository is created on first use."""
import subprocess

import git
import pytest
from django.test import override_settings

from onboarding.models import Product
from onboarding.widrepo import get_repository
from tests.factories import wid_payload

pytestmark = pytest.mark.django_db


def test_the_repository_is_created_on_first_use_with_one_commit(wid_repo):
    assert not wid_repo.exists()

    repo = get_repository()
    repo.head()

    assert (wid_repo / ".git").is_dir()
    assert repo.repo.active_branch.name == "main"
    assert int(repo.repo.git.rev_list("--count", "HEAD")) == 1


@pytest.fixture
def break_commits(tmp_path, monkeypatch):
    """`break_commits()`: from then on git itself fails at the last step of a commit (the branch
    cannot move), after the file, the object and the index were written."""
    wrapper = tmp_path / "git-failing-update-ref"
    wrapper.write_text('#!/bin/sh\ncase " $* " in *" update-ref "*) echo "fatal: injected" >&2; exit 128;; esac\n'
                       'exec git "$@"\n')
    wrapper.chmod(0o755)
    return lambda: monkeypatch.setattr(git.Git, "GIT_PYTHON_GIT_EXECUTABLE", str(wrapper))


def test_a_failing_git_commit_answers_503_and_changes_nothing(api, member, break_commits):
    api(member).post("/api/v1/products/", wid_payload(), format="json")
    repo = get_repository()
    head = repo.head()
    before = (repo.path / "wids/growth/customer-churn.md").read_text()
    break_commits()

    response = api(member).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "Changed"}, format="json")

    assert response.status_code == 503
    assert repo.head() == head
    assert (repo.path / "wids/growth/customer-churn.md").read_text() == before
    assert Product.objects.get().version == 1 and Product.objects.get().name == "Customer churn insights"
    status = subprocess.run(["git", "-C", str(repo.path), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == ""


def test_a_failing_first_commit_leaves_no_file_and_no_row(api, member, break_commits):
    repo = get_repository()
    head = repo.head()
    break_commits()

    response = api(member).post("/api/v1/products/", wid_payload(), format="json")

    assert response.status_code == 503
    assert repo.head() == head
    assert not (repo.path / "wids/growth/customer-churn.md").exists()
    assert not Product.objects.exists()


@override_settings(WID_REPO_LOCK_TIMEOUT=0.2)
def test_a_save_that_cannot_get_the_lock_answers_503(api, member):
    repo = get_repository()
    with repo.locked():
        response = api(member).post("/api/v1/products/", wid_payload(), format="json")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert not Product.objects.exists()


def test_the_openapi_schema_is_valid_and_names_every_endpoint(api, member):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    schema = api(member).get("/api/schema/?format=json").json()
    for path in ("/api/v1/teams/", "/api/v1/teams/{slug}/members/", "/api/v1/products/", "/api/v1/products/{slug}/",
                 "/api/v1/products/{slug}/markdown/", "/api/v1/products/{slug}/history/",
                 "/api/v1/products/{slug}/submit/", "/api/v1/products/{slug}/approve/",
                 "/api/v1/products/{slug}/reject/", "/api/v1/products/{slug}/request-changes/"):
        assert path in schema["paths"], path
