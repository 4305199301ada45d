"""`rebuild_index --check`, `index_check()` and the `check_index` task: every difference between
git and the index is reported, and nothing is changed."""
import subprocess

import pytest
from django.core.management import CommandError, call_command

from onboarding import services
from onboarding.models import Product, ReviewEvent, Team
from onboarding.services import index_check
from onboarding.tasks import check_index
from onboarding.widrepo import Author, get_repository
from tests.factories import wid_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def saved(member, platform):
    services.wid_create(user=member, data=wid_payload(classification="internal", pii=False))
    services.wid_create(user=member, data=wid_payload(slug="orders-core"))
    services.wid_submit(user=member, slug="orders-core")
    services.wid_request_changes(user=platform, slug="orders-core", comment="Name the owner.")
    assert index_check() == []


def test_it_reports_nothing_when_git_and_the_index_agree(saved, capsys):
    call_command("rebuild_index", "--check")

    assert "matches" in capsys.readouterr().out


@pytest.mark.parametrize("change, expected", [
    (lambda: Product.objects.filter(slug="orders-core").update(status="approved"),
     "orders-core: status is 'changes_requested' in git, 'approved' in the index"),
    (lambda: Product.objects.filter(slug="orders-core").update(version=9),
     "orders-core: version is 3 in git, 9 in the index"),
    (lambda: Product.objects.filter(slug="customer-churn").update(team=Team.objects.create(slug="other-team")),
     "customer-churn: team is 'growth-analytics' in git, 'other-team' in the index"),
    (lambda: Product.objects.filter(slug="customer-churn").update(name="Renamed in the database"),
     "customer-churn: name is 'Customer churn insights' in git, 'Renamed in the database' in the index"),
    (lambda: ReviewEvent.objects.filter(position=2).update(comment="Edited"),
     "orders-core: review events differ at positions [2] (2 in git, 2 in the index)"),
    (lambda: ReviewEvent.objects.filter(position=2).delete(),
     "orders-core: review events differ at positions [2] (2 in git, 1 in the index)"),
    (lambda: Product.objects.filter(slug="customer-churn").delete(),
     "customer-churn: in git (wids/growth/customer-churn.md), missing from the index"),
])
def test_it_reports_each_kind_of_difference_and_changes_nothing(saved, change, expected):
    change()
    before = list(Product.objects.order_by("slug").values())

    differences = index_check()

    assert expected in differences and len(differences) == 1, differences
    assert list(Product.objects.order_by("slug").values()) == before


def test_it_reports_a_product_whose_file_is_gone_from_git(saved):
    repo = get_repository()
    subprocess.run(["git", "-C", str(repo.path), "rm", "-q", "wids/growth/customer-churn.md"], check=True)
    repo.commit_tree(author=Author("Someone", "someone@example.com"), message="Remove by hand")

    assert index_check() == ["customer-churn: in the index, missing from git (wids/growth/customer-churn.md)"]


def test_it_reports_a_file_git_holds_that_cannot_be_read(saved):
    repo = get_repository()
    repo.commit_file("wids/growth/broken.md", "no front matter\n", author=Author("S", "s@example.com"),
                     message="Break")

    assert [d for d in index_check() if d.startswith("wids/growth/broken.md: cannot be read")]


def test_the_command_exits_non_zero_and_the_task_logs_each_difference(saved, caplog, capsys):
    Product.objects.filter(slug="orders-core").update(status="approved", version=9)

    with pytest.raises(CommandError, match="2 differences"):
        call_command("rebuild_index", "--check")
    out = capsys.readouterr().out
    assert check_index.apply().get() == 2

    assert "orders-core: status is" in out and "orders-core: version is" in out
    assert [r.levelname for r in caplog.records if "index check" in r.getMessage()] == ["ERROR", "ERROR"]
    call_command("rebuild_index")
    assert index_check() == []
