import pytest

from onboarding.models import Membership, Product, ReviewEvent, Team
from onboarding.widrepo import get_repository
from tests.factories import wid_payload


class Snapshot:
    """The repository head and every row a write could touch, to prove a refusal changed nothing."""

    def __init__(self):
        self.head = get_repository().head()
        self.rows = self._rows()

    @staticmethod
    def _rows():
        return [list(model.objects.order_by("pk").values()) for model in (Product, ReviewEvent, Team, Membership)]

    def unchanged(self) -> None:
        assert get_repository().head() == self.head, "a refused request made a commit"
        assert self._rows() == self.rows, "a refused request changed a row"
        assert not get_repository().repo.is_dirty(untracked_files=True), "a refused request left files behind"


@pytest.fixture
def existing(api, member, owner):
    """One draft product, orders-core, in a repository of the test's own."""
    response = api(member).post("/api/v1/products/", wid_payload(slug="orders-core"), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def submitted(api, member, existing):
    assert api(member).post("/api/v1/products/orders-core/submit/", {}, format="json").status_code == 200
    return "orders-core"
