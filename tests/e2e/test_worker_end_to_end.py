"""Through the API, with a real Celery worker process, Redis, PostgreSQL and git."""
import email
import subprocess
import uuid

import pytest

from onboarding.widrepo import get_repository
from tests.worker import wait_until
from tests.factories import TeamFactory, member_of, platform_user, wid_payload

pytestmark = pytest.mark.e2e


def _mails(mail_dir):
    if not mail_dir.exists():
        return []
    messages = []
    for path in sorted(mail_dir.iterdir()):
        for chunk in path.read_text().split("-" * 79):
            if chunk.strip():
                messages.append(email.message_from_string(chunk.strip()))
    return messages


def _mail_with_subject(mail_dir, subject):
    return [m for m in _mails(mail_dir) if m["Subject"] == subject]


def test_submit_and_decision_mail_the_custodian_and_both_contacts_from_the_worker(e2e, api):
    team = TeamFactory()
    alice = member_of(team, first_name="Alice", last_name="Analyst")
    priya = platform_user(first_name="Priya", last_name="Platform")
    slug = f"churn-{uuid.uuid4().hex[:8]}"
    assert api(alice).post("/api/v1/products/", wid_payload(slug=slug, team=team.slug), format="json").status_code == 201

    assert api(alice).post(f"/api/v1/products/{slug}/submit/", {"comment": "ready"}, format="json").status_code == 200
    submitted = wait_until(lambda: _mail_with_subject(e2e["mail"], f"[{slug}] submitted for review"),
                           what="the submit mail", log=e2e["log"])
    assert api(priya).post(f"/api/v1/products/{slug}/approve/", {"comment": "Looks good"}, format="json").status_code == 200
    approved = wait_until(lambda: _mail_with_subject(e2e["mail"], f"[{slug}] approved"),
                          what="the approval mail", log=e2e["log"])

    for message in (submitted[0], approved[0]):
        recipients = {a.strip() for a in message["To"].split(",")}
        assert recipients == {"maria@example.com", "tom@example.com", "carla@example.com"}
    assert "Looks good" in approved[0].get_payload()
    assert "Priya" in approved[0].get_payload()


def test_policy_approval_is_mailed_as_approved_by_policy(e2e, api):
    team = TeamFactory()
    alice = member_of(team)
    slug = f"low-risk-{uuid.uuid4().hex[:8]}"
    api(alice).post("/api/v1/products/", wid_payload(slug=slug, team=team.slug, classification="internal", pii=False),
                    format="json")

    response = api(alice).post(f"/api/v1/products/{slug}/submit/", format="json")

    assert response.json()["status"] == "approved"
    wait_until(lambda: _mail_with_subject(e2e["mail"], f"[{slug}] approved by policy"),
               what="the policy approval mail", log=e2e["log"])


def _remote_head(remote):
    result = subprocess.run(["git", "-C", str(remote), "rev-parse", "refs/heads/main"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def test_the_worker_pushes_every_commit_and_retries_while_the_remote_is_unreachable(e2e, with_remote, api):
    remote = with_remote
    subprocess.run(["rm", "-rf", str(remote)], check=True)
    team = TeamFactory()
    alice = member_of(team)
    slug = f"pushed-{uuid.uuid4().hex[:8]}"
    log_offset = len(e2e["log"].read_text())

    api(alice).post("/api/v1/products/", wid_payload(slug=slug, team=team.slug), format="json")
    api(alice).patch(f"/api/v1/products/{slug}/", {"version": 1, "name": "Second"}, format="json")
    wait_until(lambda: "Retry in" in e2e["log"].read_text()[log_offset:],
               what="a failed push being retried", log=e2e["log"])
    assert _remote_head(remote) is None

    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", str(remote)], check=True)
    local_head = get_repository().head()
    wait_until(lambda: _remote_head(remote) == local_head, timeout=60, what="the push to succeed", log=e2e["log"])

    local = set(get_repository().repo.git.rev_list("HEAD").split())
    pushed = set(subprocess.run(["git", "-C", str(remote), "rev-list", "main"], capture_output=True, text=True,
                                check=True).stdout.split())
    assert local == pushed  # nothing lost: every commit made while the remote was down arrived
