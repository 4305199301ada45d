"""Teams through the API: anyone signed in creates one and owns it; owners manage its members."""
import pytest
from django.contrib.auth import get_user_model

from onboarding.models import Membership, Product, Team
from onboarding.widfile import SLUG_RE
from tests.factories import UserFactory, wid_payload

pytestmark = pytest.mark.django_db

TEAMS = "/api/v1/teams/"


def fresh(user):
    """The user as a new request would load it (permissions are cached per request on the user)."""
    return get_user_model().objects.get(pk=user.pk)


def members_url(slug="growth-analytics"):
    return f"{TEAMS}{slug}/members/"


def roles(slug="growth-analytics") -> dict[str, str]:
    return dict(Membership.objects.filter(team__slug=slug).values_list("user__username", "role"))


@pytest.fixture
def newcomer(db):
    """Signed in, in no team yet."""
    return UserFactory(username="nina", first_name="Nina", last_name="New")


# --- creating teams --------------------------------------------------------------------------------
def test_anyone_signed_in_creates_a_team_and_becomes_its_owner(api, newcomer):
    response = api(newcomer).post(TEAMS, {"slug": "data-science", "name": "Data science"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["slug"], body["name"]) == ("data-science", "Data science")
    assert body["members"] == [{"username": "nina", "role": "owner"}]
    assert roles("data-science") == {"nina": "owner"}
    listed = api(newcomer).get(TEAMS).json()
    assert "data-science" in [t["slug"] for t in (listed["results"] if isinstance(listed, dict) else listed)]
    detail = api(newcomer).get(f"{TEAMS}data-science/")
    assert detail.status_code == 200 and detail.json()["members"] == [{"username": "nina", "role": "owner"}]


def test_a_member_of_another_team_can_create_a_team_too(api, outsider):
    response = api(outsider).post(TEAMS, {"slug": "side-project", "name": "Side project"}, format="json")

    assert response.status_code == 201
    assert roles("side-project") == {"oscar": "owner"}
    assert roles("finance-data") == {"oscar": "member"}


def test_creating_a_team_needs_a_signed_in_user(api, db):
    response = api().post(TEAMS, {"slug": "anonymous", "name": "Anonymous"}, format="json")

    assert response.status_code in (401, 403)
    assert not Team.objects.filter(slug="anonymous").exists()


@pytest.mark.parametrize("slug", [
    "../x", "A", "Data-science", "a" * 60, "a--", "-ab", "ab", "", "data science", "data_science", "1team",
    "team/x", "ab\nc",
])
def test_a_team_with_a_bad_slug_answers_400_naming_the_slug(api, newcomer, slug):
    response = api(newcomer).post(TEAMS, {"slug": slug, "name": "Some team"}, format="json")

    assert response.status_code == 400, response.json()
    assert "slug" in response.json()["errors"]
    assert Team.objects.count() == 0
    assert Membership.objects.count() == 0


@pytest.mark.parametrize("name", ["", "   ", "n" * 201])
def test_a_team_with_a_bad_name_answers_400_naming_the_name(api, newcomer, name):
    response = api(newcomer).post(TEAMS, {"slug": "data-science", "name": name}, format="json")

    assert response.status_code == 400
    assert "name" in response.json()["errors"]
    assert Team.objects.count() == 0


def test_a_team_without_slug_and_name_answers_400_naming_both(api, newcomer):
    response = api(newcomer).post(TEAMS, {}, format="json")

    assert response.status_code == 400
    assert {"slug", "name"} <= set(response.json()["errors"])


@pytest.mark.parametrize("slug", ["data-science\n", " data-science", "data-science  "])
def test_whitespace_around_a_team_slug_never_reaches_the_stored_slug(api, newcomer, slug):
    response = api(newcomer).post(TEAMS, {"slug": slug, "name": "Data science"}, format="json")

    assert response.status_code in (201, 400)
    if response.status_code == 201:
        assert response.json()["slug"] == "data-science"
    else:
        assert "slug" in response.json()["errors"]
    assert all(SLUG_RE.fullmatch(s) for s in Team.objects.values_list("slug", flat=True))


def test_a_duplicate_team_answers_400_and_changes_nothing(api, newcomer, owner):
    response = api(newcomer).post(TEAMS, {"slug": "growth-analytics", "name": "Impostors"}, format="json")

    assert response.status_code == 400
    assert "slug" in response.json()["errors"]
    team = Team.objects.get(slug="growth-analytics")
    assert team.name == "Growth analytics"
    assert roles() == {"olivia": "owner"}


# --- members -------------------------------------------------------------------------------------
def test_an_owner_adds_a_member(api, owner, newcomer):
    response = api(owner).post(members_url(), {"username": "nina", "role": "member"}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json() == {"username": "nina", "role": "member"}
    assert roles() == {"olivia": "owner", "nina": "member"}
    listed = api(newcomer).get(members_url()).json()
    assert {(m["username"], m["role"]) for m in listed} == {("olivia", "owner"), ("nina", "member")}


def test_the_role_defaults_to_member(api, owner, newcomer):
    response = api(owner).post(members_url(), {"username": "nina"}, format="json")

    assert response.status_code == 201
    assert roles()["nina"] == "member"


def test_an_owner_adds_another_owner(api, owner, newcomer):
    response = api(owner).post(members_url(), {"username": "nina", "role": "owner"}, format="json")

    assert response.status_code == 201
    assert roles() == {"olivia": "owner", "nina": "owner"}


def test_an_owner_promotes_a_member_to_owner(api, owner, member):
    response = api(owner).post(members_url(), {"username": "alice", "role": "owner"}, format="json")

    assert response.status_code == 201
    assert roles() == {"olivia": "owner", "alice": "owner"}
    assert Membership.objects.filter(team__slug="growth-analytics", user=member).count() == 1


def test_adding_someone_already_in_the_team_with_the_same_role_changes_nothing(api, owner, member):
    response = api(owner).post(members_url(), {"username": "alice", "role": "member"}, format="json")

    assert response.status_code in (200, 201)
    assert roles() == {"olivia": "owner", "alice": "member"}


def test_adding_an_unknown_username_answers_400_naming_the_username(api, owner):
    response = api(owner).post(members_url(), {"username": "nobody", "role": "member"}, format="json")

    assert response.status_code == 400
    assert "username" in response.json()["errors"]
    assert roles() == {"olivia": "owner"}


@pytest.mark.parametrize("role", ["admin", "OWNER", "", "platform", None])
def test_adding_with_a_bad_role_answers_400_naming_the_role(api, owner, newcomer, role):
    response = api(owner).post(members_url(), {"username": "nina", "role": role}, format="json")

    assert response.status_code == 400
    assert "role" in response.json()["errors"]
    assert roles() == {"olivia": "owner"}


def test_adding_without_a_username_answers_400_naming_the_username(api, owner):
    response = api(owner).post(members_url(), {"role": "member"}, format="json")

    assert response.status_code == 400
    assert "username" in response.json()["errors"]


def test_a_member_who_is_not_an_owner_cannot_add_members(api, member, owner, newcomer):
    response = api(member).post(members_url(), {"username": "nina", "role": "member"}, format="json")

    assert response.status_code == 403
    assert "nina" not in roles()


def test_someone_outside_the_team_cannot_add_members(api, outsider, owner, newcomer):
    response = api(outsider).post(members_url(), {"username": "oscar", "role": "owner"}, format="json")

    assert response.status_code == 403
    assert roles() == {"olivia": "owner"}


def test_adding_members_to_an_unknown_team_answers_404(api, owner, newcomer):
    response = api(owner).post(members_url("no-such-team"), {"username": "nina"}, format="json")

    assert response.status_code == 404


def test_an_owner_removes_a_member(api, owner, member):
    response = api(owner).delete(f"{members_url()}alice/")

    assert response.status_code == 204
    assert roles() == {"olivia": "owner"}


def test_an_owner_removes_another_owner(api, owner, newcomer):
    api(owner).post(members_url(), {"username": "nina", "role": "owner"}, format="json")

    response = api(owner).delete(f"{members_url()}nina/")

    assert response.status_code == 204
    assert roles() == {"olivia": "owner"}


def test_a_member_who_is_not_an_owner_cannot_remove_others(api, owner, member, newcomer):
    api(owner).post(members_url(), {"username": "nina"}, format="json")

    response = api(member).delete(f"{members_url()}nina/")

    assert response.status_code == 403
    assert roles() == {"olivia": "owner", "alice": "member", "nina": "member"}


def test_removing_someone_not_in_the_team_answers_404(api, owner, newcomer):
    response = api(owner).delete(f"{members_url()}nina/")

    assert response.status_code == 404


def test_the_last_owner_cannot_be_removed(api, owner, member):
    response = api(owner).delete(f"{members_url()}olivia/")

    assert response.status_code == 409
    assert roles() == {"olivia": "owner", "alice": "member"}


def test_the_last_owner_cannot_be_demoted(api, owner, member):
    response = api(owner).post(members_url(), {"username": "olivia", "role": "member"}, format="json")

    assert response.status_code == 409
    assert roles() == {"olivia": "owner", "alice": "member"}


def test_an_owner_can_step_down_once_there_is_another_owner(api, owner, member):
    api(owner).post(members_url(), {"username": "alice", "role": "owner"}, format="json")

    demoted = api(fresh(owner)).post(members_url(), {"username": "olivia", "role": "member"}, format="json")
    last = api(fresh(member)).post(members_url(), {"username": "alice", "role": "member"}, format="json")

    assert demoted.status_code == 201
    assert last.status_code == 409
    assert roles() == {"olivia": "member", "alice": "owner"}


def test_an_owner_can_leave_once_there_is_another_owner(api, owner, member):
    api(owner).post(members_url(), {"username": "alice", "role": "owner"}, format="json")

    response = api(fresh(owner)).delete(f"{members_url()}olivia/")

    assert response.status_code == 204
    assert roles() == {"alice": "owner"}
    assert api(fresh(member)).delete(f"{members_url()}alice/").status_code == 409


def test_a_member_can_leave_the_team(api, owner, member):
    response = api(member).delete(f"{members_url()}alice/")

    assert response.status_code == 204
    assert roles() == {"olivia": "owner"}


def test_the_platform_team_manages_any_teams_members(api, owner, platform, newcomer):
    added = api(platform).post(members_url(), {"username": "nina", "role": "owner"}, format="json")
    removed = api(platform).delete(f"{members_url()}olivia/")

    assert (added.status_code, removed.status_code) == (201, 204)
    assert roles() == {"nina": "owner"}


# --- membership decides who writes a team's products ---------------------------------------------
def test_a_new_member_can_then_create_the_teams_products(api, newcomer):
    creator = UserFactory(username="carl", first_name="Carl", last_name="Creator")
    assert api(creator).post(TEAMS, {"slug": "data-science", "name": "Data science"},
                             format="json").status_code == 201
    payload = wid_payload(slug="churn-model", team="data-science", domain="science")

    before = api(newcomer).post("/api/v1/products/", payload, format="json")
    added = api(fresh(creator)).post(members_url("data-science"), {"username": "nina", "role": "member"},
                                     format="json")
    after = api(fresh(newcomer)).post("/api/v1/products/", payload, format="json")

    assert before.status_code == 403
    assert added.status_code == 201
    assert after.status_code == 201, after.json()
    assert after.json()["team"] == "data-science"
    product = Product.objects.get(slug="churn-model")
    assert product.team.slug == "data-science"
    # the creator, as the team's owner, writes the team's products too
    edited = api(fresh(creator)).patch("/api/v1/products/churn-model/", {"version": 1, "name": "Churn model"},
                                       format="json")
    assert edited.status_code == 200, edited.json()


def test_a_removed_member_can_no_longer_write_the_teams_products(api, owner, member):
    assert api(member).post("/api/v1/products/", wid_payload(), format="json").status_code == 201

    assert api(owner).delete(f"{members_url()}alice/").status_code == 204
    response = api(fresh(member)).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "Mine"},
                                        format="json")

    assert response.status_code == 403
    assert Product.objects.get().name == "Customer churn insights"
