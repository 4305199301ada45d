"""A save whose database connection breaks in COMMIT: git keeps its commit exactly when
PostgreSQL committed the transaction (asked afterwards with txid_status), so the index never
holds a WID that git lacks. Real PostgreSQL and a real repository; only the moment of the break
is staged, by wrapping the connection's commit."""
import pytest
from django.db import OperationalError, connections

from onboarding import services
from onboarding.models import Product
from onboarding.widrepo import get_repository
from tests.factories import member_of, wid_payload

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def break_commit():
    """Make the next COMMIT raise as a broken connection does, after committing or not."""
    wrapper = connections["default"]

    def arm(*, after_committing: bool) -> None:
        real = wrapper._commit if after_committing else wrapper._rollback

        def broken():
            real()
            del wrapper._commit  # once: back to the class's own
            raise OperationalError("server closed the connection unexpectedly")

        wrapper._commit = broken

    yield arm
    wrapper.__dict__.pop("_commit", None)


def _in_git(slug: str) -> bool:
    return bool(get_repository().tracked_files(f"wids/*/{slug}.md"))


def test_a_commit_that_committed_before_the_connection_broke_keeps_its_git_commit(team, break_commit):
    alice = member_of(team)
    break_commit(after_committing=True)
    with pytest.raises(OperationalError):
        services.wid_create(user=alice, data=wid_payload(slug="in-doubt"))
    assert Product.objects.filter(slug="in-doubt").exists()
    assert _in_git("in-doubt")  # without the check, git was rewound: a row git lacked


def test_a_commit_that_did_not_commit_takes_its_git_commit_back(team, break_commit):
    alice = member_of(team)
    head = get_repository().head()
    break_commit(after_committing=False)
    with pytest.raises(OperationalError):
        services.wid_create(user=alice, data=wid_payload(slug="never-saved"))
    assert not Product.objects.filter(slug="never-saved").exists()
    assert not _in_git("never-saved") and get_repository().head() == head


def test_when_nobody_can_tell_git_keeps_the_commit(team, break_commit, monkeypatch):
    alice = member_of(team)
    break_commit(after_committing=False)
    monkeypatch.setattr(services, "_committed_after_all", lambda xid, **kw: None)
    with pytest.raises(OperationalError):
        services.wid_create(user=alice, data=wid_payload(slug="unknown"))
    assert _in_git("unknown")  # git is the truth: rebuild_index brings it into the index
