"""Several processes saving at once never corrupt the repository or lose a write."""
import multiprocessing
import subprocess

import pytest
from django.db import connections

from onboarding import services
from onboarding.models import Product
from onboarding.widrepo import get_repository
from portal.errors import Conflict
from tests.factories import member_of, wid_payload

WRITERS = 4
SAVES_EACH = 6


def _append_lines(username: str, writer: int, result_queue) -> None:
    """One process: append a line to the shared WID, re-reading and retrying on 409 like a client."""
    from django.contrib.auth import get_user_model

    connections.close_all()
    user = get_user_model().objects.get(username=username)
    conflicts = 0
    for i in range(SAVES_EACH):
        while True:
            product = Product.objects.get(slug="shared")
            architecture = product.sections["architecture"] + f"\nline {writer}-{i}"
            try:
                services.wid_update(user=user, slug="shared", data={
                    "version": product.version, "sections": {"architecture": architecture},
                })
                break
            except Conflict:
                conflicts += 1
        services.wid_create(user=user, data=wid_payload(slug=f"own-{writer}-{i}", team="growth-analytics"))
    connections.close_all()
    result_queue.put(conflicts)


@pytest.mark.django_db(transaction=True)
def test_concurrent_saves_from_several_processes_lose_nothing(team):
    alice = member_of(team, username="alice")
    services.wid_create(user=alice, data=wid_payload(slug="shared"))
    connections.close_all()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [context.Process(target=_append_lines, args=("alice", n, results)) for n in range(WRITERS)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * WRITERS
    conflicts = sum(results.get(timeout=5) for _ in processes)

    repo = get_repository()
    subprocess.run(["git", "-C", str(repo.path), "fsck", "--strict", "--no-progress"], check=True)
    assert subprocess.run(["git", "-C", str(repo.path), "status", "--porcelain"],
                          capture_output=True, text=True, check=True).stdout == ""
    shared = Product.objects.get(slug="shared")
    lines = shared.sections["architecture"].splitlines()
    expected = {f"line {w}-{i}" for w in range(WRITERS) for i in range(SAVES_EACH)}
    assert expected <= set(lines)  # every write survived
    assert shared.version == 1 + WRITERS * SAVES_EACH == len(repo.history(shared.path))
    assert Product.objects.count() == 1 + WRITERS * SAVES_EACH
    commits = int(repo.repo.git.rev_list("--count", "HEAD"))
    assert commits == 1 + 1 + 2 * WRITERS * SAVES_EACH  # repository creation, "shared", then every save
    print(f"{conflicts} version conflicts were retried")
