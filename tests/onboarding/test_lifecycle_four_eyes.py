import pytest

from onboarding.models import Membership
from tests.factories import wid_payload

pytestmark = pytest.mark.django_db


def test_a_platform_member_in_the_owning_team_cannot_decide_on_its_wid(api, member, platform, team):
    Membership.objects.create(team=team, user=platform, role="member")
    api(member).post("/api/v1/products/", wid_payload(), format="json")
    api(member).post("/api/v1/products/customer-churn/submit/", format="json")

    for action in ("approve", "reject", "request-changes"):
        response = api(platform).post(f"/api/v1/products/customer-churn/{action}/", {"comment": "mine"}, format="json")
        assert response.status_code == 403, action

    assert api(member).get("/api/v1/products/customer-churn/").json()["status"] == "submitted"
