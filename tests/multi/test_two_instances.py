"""Two portal instances, as two machines: separate working directories, WID copies and site
outputs, sharing PostgreSQL, Redis, the WID remote, the warehouse and the lake. Saves through both
are all kept in one linear history, jobs and runs started through either run once, and the site
served by each shows every change."""
import json
import subprocess
import threading
import uuid

import pytest
from rest_framework.authtoken.models import Token

from provisioning.models import Job, JobLogLine, Run
from tests.factories import TeamFactory, member_of, platform_user, wid_payload
from tests.faults.portal import Portal, PrivateRedis

pytestmark = pytest.mark.e2e

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


@pytest.fixture
def two_portals(transactional_db, tmp_path):
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(remote)], check=True)
    shared = {"WID_REPO_REMOTE": str(remote), "WID_REPO_SHARED": "true", "WID_SITE_AUTO_BUILD": "true"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Portal(tmp_path / "a", redis, site_queue=f"site-a-{redis.port}", WID_SITE_KEY="machine-a", **shared)
    b = Portal(tmp_path / "b", redis, beat=False, site_queue=f"site-b-{redis.port}", WID_SITE_KEY="machine-b",
               **shared)
    try:
        a.start()
        b.start()
        yield a, b, remote
    finally:
        a.stop()
        b.stop()
        redis.stop()


def _history(remote) -> list[str]:
    """(sha, parents, subject) of every commit on the remote's branch."""
    out = subprocess.run(["git", "--git-dir", str(remote), "log", "--format=%H%x1f%P%x1f%s", "main"],
                         capture_output=True, text=True, check=True).stdout
    return [tuple(line.split("\x1f")) for line in out.splitlines()]


def _jobs_now(slugs) -> list:
    return list(Job.objects.filter(product__slug__in=slugs).values_list("product__slug", "status", "step"))


def test_two_instances_keep_every_save_run_work_once_and_both_sites_show_everything(two_portals):
    a, b, remote = two_portals
    team = TeamFactory()
    alice, priya = member_of(team), platform_user()
    token, platform_token = Token.objects.create(user=alice).key, Token.objects.create(user=priya).key
    slugs = [f"two-{n}-{uuid.uuid4().hex[:4]}" for n in range(6)]
    answers = {}

    def save(portal, slug):
        status, _, body = portal.request("POST", "/api/v1/products/", token=token,
                                         body=wid_payload(slug=slug, team=team.slug, **LOW_RISK))
        answers[slug] = (status, body)

    threads = [threading.Thread(target=save, args=(a if n % 2 else b, slug)) for n, slug in enumerate(slugs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(status == 201 for status, _ in answers.values()), answers

    # Every save in one linear history on the remote, once each.
    history = _history(remote)
    creates = [subject for _, _, subject in history if subject.startswith("Create two-")]
    assert sorted(creates) == sorted(f"Create {s}" for s in slugs)  # each once
    assert all(len(parents.split()) <= 1 for _, parents, _ in history)  # linear: no merges
    assert history[-1][1] == ""  # one root: every machine built on the same history

    # Jobs started through either instance run once, on either worker.
    first, second = slugs[0], slugs[1]
    assert a.request("POST", f"/api/v1/products/{first}/submit/", token=token, body={})[0] == 200
    assert b.request("POST", f"/api/v1/products/{second}/submit/", token=token, body={})[0] == 200
    try:
        a.wait_for(lambda: Job.objects.filter(product__slug__in=[first, second],
                                              status__in=["succeeded", "failed", "cancelled"]).count() == 2,
                   180, "both applies to end")
    except AssertionError as exc:
        raise AssertionError(f"jobs: {_jobs_now([first, second])}\n--- portal b's worker\n"
                             f"{b.log('worker')[-4000:]}\n{exc}") from None
    ended = {job.product.slug: (job.status, job.error, list(job.lines.values_list("text", flat=True))[-8:])
             for job in Job.objects.filter(product__slug__in=[first, second]).select_related("product")}
    assert {slug: status for slug, (status, _, _) in ended.items()} == {first: "succeeded", second: "succeeded"}, ended
    for job in Job.objects.filter(product__slug__in=[first, second]):
        assert JobLogLine.objects.filter(job=job, text__startswith="Rendering the").count() == 1

    # Runs started through either run once.
    run_ids = []
    for portal, slug in ((a, first), (b, second), (b, first)):
        status, _, body = portal.request("POST", f"/api/v1/products/{slug}/runs/", token=token, body={})
        assert status == 202, body
        run_ids.append(json.loads(body)["id"])
    a.wait_for(lambda: Run.objects.filter(pk__in=run_ids, status__in=["succeeded", "failed"]).count() == 3, 120,
               "the runs")
    assert set(Run.objects.filter(pk__in=run_ids).values_list("status", flat=True)) == {"succeeded"}

    # The site each instance serves shows every product, whichever instance saved it.
    session = _session_of(priya)
    for portal in (a, b):
        for slug in slugs:
            portal.wait_for(lambda: portal.request("GET", f"/docs/growth/{slug}/", session=session)[0] == 200, 120,
                            f"{slug} on {portal.env['WID_SITE_KEY']}'s site")
    assert all(a.alive().values()) and all(b.alive().values())


def _session_of(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value
