"""Faults around the WID repository, injected for real: processes killed mid-commit, the broker
unreachable after the database committed, the remote refusing or gone, the repository deleted."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import current_app
from django.db import connection, transaction

from onboarding import services, signals
from onboarding.models import Product
from onboarding.services import index_check
from onboarding.widrepo import GitError, get_repository
from tests.factories import wid_payload

ROOT = Path(__file__).resolve().parents[2]
PATH = "wids/growth/customer-churn.md"


def _git(cwd, *args) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout.strip()


def _status(repo) -> str:
    return _git(repo.path, "status", "--porcelain", "--untracked-files=all")


@pytest.fixture
def remote(settings, tmp_path):
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", str(path)], check=True)
    settings.WID_REPO_REMOTE = str(path)
    return path


# --- killed mid-commit ------------------------------------------------------------------------
def test_a_stale_index_lock_and_files_a_dead_git_left_are_never_taken_as_the_truth(api, member):
    api(member).post("/api/v1/products/", wid_payload(), format="json")
    repo = get_repository()
    committed = repo.read(PATH)
    # As a create and an update killed half-way leave them: a staged file never committed, a
    # file written over, and git's index.lock.
    ghost = repo.path / "wids/growth/ghost-product.md"
    ghost.write_text("---\nnot: a commit\n---\n")
    _git(repo.path, "update-index", "--add", "--", "wids/growth/ghost-product.md")
    (repo.path / PATH).write_text(committed.replace("Customer churn insights", "Never committed"))
    (repo.path / ".git/index.lock").write_text("half-written by a killed git")

    assert "Never committed" not in api(member).get("/api/v1/products/customer-churn/markdown/").content.decode()
    assert repo.tracked_files("wids/*/ghost-product.md") == []

    created = api(member).post("/api/v1/products/", wid_payload(slug="ghost-product"), format="json")
    updated = api(member).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "After the crash"},
                                format="json")

    assert created.status_code == 201, created.content
    assert updated.status_code == 200, updated.content
    assert "not: a commit" not in repo.read("wids/growth/ghost-product.md")
    assert "After the crash" in repo.read(PATH)
    assert not (repo.path / ".git/index.lock").exists()
    assert _status(repo) == ""
    assert index_check() == []


_KILL_SCRIPT = """
import django
django.setup()
from django.contrib.auth import get_user_model
from onboarding import services
user = get_user_model().objects.get(username="alice")
services.wid_update(user=user, slug="customer-churn", data={"version": 1, "name": "Killed mid-commit"})
"""


def _stalling_git(tmp_path: Path, step: str, *, hold_index_lock: bool) -> tuple[Path, Path]:
    """A git that stalls at `step` of a commit (after creating index.lock, as git's own
    update-index does while it writes, when asked), so that the test can kill it there."""
    reached = tmp_path / f"reached-{step}"
    wrapper = tmp_path / f"git-stalling-at-{step}"
    hold = ': > "$(git rev-parse --git-dir)/index.lock"; ' if hold_index_lock else ""
    wrapper.write_text(f'#!/bin/sh\ncase " $* " in *" {step} "*) {hold}touch {reached}; sleep 120;; esac\n'
                       'exec git "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, reached


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("step, hold_index_lock", [("update-index", True), ("update-ref", False)])
def test_a_save_process_killed_mid_commit_leaves_nothing_that_stops_the_next_save(
        api, member, wid_repo, tmp_path, step, hold_index_lock):
    api(member).post("/api/v1/products/", wid_payload(), format="json")
    repo = get_repository()
    head = repo.head()
    wrapper, reached = _stalling_git(tmp_path, step, hold_index_lock=hold_index_lock)
    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test", "WID_REPO_PATH": str(wid_repo),
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
           "GIT_PYTHON_GIT_EXECUTABLE": str(wrapper)}
    saver = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT], cwd=ROOT, env=env, start_new_session=True,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not reached.exists():
        assert saver.poll() is None, saver.stderr.read().decode()
        assert time.monotonic() < deadline, "the save never reached the step"
        time.sleep(0.05)
    os.killpg(saver.pid, signal.SIGKILL)  # the saver and its git, holding the write lock
    saver.wait()
    assert repo.head() == head
    assert (repo.path / ".git/index.lock").exists() == hold_index_lock
    if not hold_index_lock:
        assert _status(repo) != ""  # the file is written and staged, never committed

    assert "Killed mid-commit" not in api(member).get("/api/v1/products/customer-churn/markdown/").content.decode()
    response = api(member).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "After the kill"},
                                 format="json")

    assert response.status_code == 200, response.content
    assert _git(repo.path, "show", "--name-only", "--format=", "HEAD").splitlines() == [PATH]
    assert "After the kill" in repo.read(PATH) and "Killed" not in repo.read(PATH)
    assert _status(repo) == ""
    assert Product.objects.get().version == 2
    assert index_check() == []


# --- side effects after the database committed --------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def broker_unreachable(settings):
    """Celery's broker is a port nobody listens on (Redis down), for this test only."""
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    saved = current_app.conf.broker_url
    settings.CELERY_BROKER_URL = url
    current_app.conf.broker_url = url
    current_app._pool = current_app.amqp._producer_pool = None
    yield
    current_app.conf.broker_url = saved
    current_app._pool = current_app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)
def test_a_save_while_redis_is_unreachable_is_accepted_and_git_and_the_index_agree(
        api, member, remote, broker_unreachable):
    started = time.monotonic()
    created = api(member).post("/api/v1/products/", wid_payload(), format="json")
    updated = api(member).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "Saved anyway"},
                                format="json")
    elapsed = time.monotonic() - started

    assert (created.status_code, updated.status_code) == (201, 200)
    assert elapsed < 10  # the push's enqueue fails at once, not after the broker's retries
    product = Product.objects.get()
    assert product.head_sha == get_repository().head() and product.version == 2
    assert index_check() == []
    assert services.wid_repo_push()  # beat's periodic push, once Redis is back, carries both commits
    assert _git(remote, "rev-parse", "main") == product.head_sha


@pytest.mark.django_db(transaction=True)
def test_a_callback_that_raises_after_the_database_committed_takes_no_git_commit_back(member):
    def explode():
        raise ConnectionError("the broker went away")

    def on_saved(sender, **kwargs):
        transaction.on_commit(explode)

    signals.wid_saved.connect(on_saved, dispatch_uid="test-explode-after-commit")
    try:
        with pytest.raises(ConnectionError):
            services.wid_create(user=member, data=wid_payload())
    finally:
        signals.wid_saved.disconnect(dispatch_uid="test-explode-after-commit")

    assert Product.objects.get().head_sha == get_repository().head()
    assert index_check() == []


# --- the remote ---------------------------------------------------------------------------------
def _another_machine_pushes(remote: Path, tmp_path: Path, change) -> None:
    other = tmp_path / "other-machine"
    subprocess.run(["git", "clone", "-q", str(remote), str(other)], check=True)
    message = change(other)
    _git(other, "add", "--all")
    _git(other, "-c", "user.name=Other Machine", "-c", "user.email=other@example.com", "commit", "-q", "-m", message)
    _git(other, "push", "-q", "origin", "main")


def _add_ledger(other: Path) -> str:
    text = (other / PATH).read_text().replace("customer-churn", "ledger-core").replace("domain: growth",
                                                                                        "domain: finance")
    (other / "wids/finance").mkdir(parents=True)
    (other / "wids/finance/ledger-core.md").write_text(text)
    return "Create ledger-core"


def test_a_push_refused_because_another_machine_pushed_is_replayed_onto_its_tip(member, remote, tmp_path):
    services.wid_create(user=member, data=wid_payload())
    services.wid_repo_push()
    _another_machine_pushes(remote, tmp_path, _add_ledger)
    services.wid_update(user=member, slug="customer-churn", data={"version": 1, "name": "Changed here"})

    pushed = services.wid_repo_push()

    repo = get_repository()
    assert pushed == repo.head() == _git(remote, "rev-parse", "main")
    assert _git(remote, "rev-list", "--merges", "main") == ""
    subjects = _git(remote, "log", "--format=%s", "main").splitlines()
    assert subjects[:3] == ["Update customer-churn", "Create ledger-core", "Create customer-churn"]
    assert _git(remote, "log", "-1", "--format=%an", "main") == member.get_full_name()
    assert Product.objects.get(slug="customer-churn").head_sha == pushed
    assert Product.objects.get(slug="ledger-core").domain == "finance"
    assert index_check() == []


def test_a_replay_that_would_overwrite_the_same_wid_changed_elsewhere_moves_nothing(member, remote, tmp_path):
    services.wid_create(user=member, data=wid_payload())
    services.wid_repo_push()

    def rename(other):
        (other / PATH).write_text((other / PATH).read_text().replace("Customer churn insights", "Renamed there"))
        return "Rename customer-churn"

    _another_machine_pushes(remote, tmp_path, rename)
    theirs = _git(remote, "rev-parse", "main")
    services.wid_update(user=member, slug="customer-churn", data={"version": 1, "name": "Renamed here"})
    ours = get_repository().head()

    with pytest.raises(GitError) as refused:
        services.wid_repo_push()

    assert refused.value.permanent and PATH in str(refused.value)
    assert _git(remote, "rev-parse", "main") == theirs
    assert get_repository().head() == ours
    assert index_check() == []


def test_pushes_to_a_remote_that_disappeared_are_retried_and_lose_nothing(api, member, remote, tmp_path):
    api(member).post("/api/v1/products/", wid_payload(), format="json")
    services.wid_repo_push()
    remote.rename(tmp_path / "moved-away.git")
    updated = api(member).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "While gone"},
                                format="json")
    with pytest.raises(GitError) as failed:
        services.wid_repo_push()
    assert updated.status_code == 200 and not failed.value.permanent  # the task retries it with back-off

    (tmp_path / "moved-away.git").rename(remote)
    pushed = services.wid_repo_push()

    assert pushed == Product.objects.get().head_sha == _git(remote, "rev-parse", "main")
    assert len(_git(remote, "rev-list", "main").splitlines()) == 3


# --- the local repository deleted ---------------------------------------------------------------
def test_a_deleted_repository_is_cloned_again_from_the_remote(api, member, remote):
    api(member).post("/api/v1/products/", wid_payload(), format="json")
    services.wid_repo_push()
    shutil.rmtree(get_repository().path)

    response = api(member).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "After the loss"},
                                 format="json")

    assert response.status_code == 200, response.content
    repo = get_repository()
    assert [c.message for c in repo.history(PATH)] == ["Update customer-churn", "Create customer-churn"]
    assert index_check() == []


def test_without_a_remote_a_deleted_repository_is_never_recreated_empty_while_the_index_holds_products(
        api, member, wid_repo):
    api(member).post("/api/v1/products/", wid_payload(), format="json")
    shutil.rmtree(wid_repo)

    response = api(member).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "Lost"}, format="json")

    assert response.status_code == 503
    assert "missing" in response.json()["detail"] and "1 products" in response.json()["detail"]
    assert not (wid_repo / ".git").exists()
    assert Product.objects.get().name == "Customer churn insights"


def test_with_an_unreachable_remote_a_deleted_repository_is_not_recreated_either(api, member, remote, tmp_path):
    api(member).post("/api/v1/products/", wid_payload(), format="json")
    services.wid_repo_push()
    shutil.rmtree(get_repository().path)
    remote.rename(tmp_path / "moved-away.git")

    response = api(member).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "Lost"}, format="json")

    assert response.status_code == 503
    assert not (get_repository().path / ".git").exists()
