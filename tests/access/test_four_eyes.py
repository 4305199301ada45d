"""The four-eyes rule: who decides on a WID is on the platform team and is neither its submitter,
nor an author of a change since its last approval, nor in the owning team when it was submitted,
nor when the decision is made, whatever the order of membership changes, edits and decisions.

A fake clock moves ten seconds between steps: the review log keeps times to the second, and the
rule counts a membership change within that second as "at submit" (test at the end).
"""
import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone as dj_timezone

from onboarding import selectors, services
from onboarding.models import Membership, MembershipEvent, Product
from portal.errors import Conflict, NotAllowed, NotFound
from tests.factories import UserFactory, platform_user, wid_payload

pytestmark = pytest.mark.django_db

DECISIONS = {"approve": services.wid_approve, "reject": services.wid_reject,
             "request_changes": services.wid_request_changes}
LOW_RISK = {"classification": "internal", "pii": False}
HIGH_RISK = {"classification": "confidential", "pii": True}


class Clock:
    def __init__(self):
        self.now = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)

    def tick(self, seconds: float = 10) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(dj_timezone, "now", lambda: clock.now)
    monkeypatch.setattr(services, "_now", lambda: clock.now.replace(microsecond=0))
    return clock


def fresh(username: str):
    """The user as a new request loads it: nothing cached from earlier steps."""
    return get_user_model().objects.get(username=username)


# --- the people and their team ------------------------------------------------------------------
@pytest.fixture
def people(db):
    boss = UserFactory(username="boss", first_name="Bo", last_name="Boss")
    return {
        "boss": boss,
        "tina": UserFactory(username="tina", first_name="Tina", last_name="Team"),
        "priya": platform_user(username="priya", first_name="Priya", last_name="Platform"),
        "paul": platform_user(username="paul", first_name="Paul", last_name="Platform"),
        "pia": platform_user(username="pia", first_name="Pia", last_name="Platform"),
        "root": get_user_model().objects.create_superuser("root", "root@example.com", "pw"),
    }


PLATFORM = {"priya", "paul", "pia", "root"}


def new_world(n: int, clock: Clock) -> tuple[str, list[str]]:
    """A team owned by `boss` and two drafts it wrote; (team slug, product slugs)."""
    clock.tick()
    team = services.team_create(user=fresh("boss"), slug=f"team-{n}", name=f"Team {n}")
    slugs = [f"w{n}-one", f"w{n}-two"]
    for slug in slugs:
        clock.tick()
        services.wid_create(user=fresh("boss"), data=wid_payload(slug=slug, team=team.slug, **HIGH_RISK))
    return team.slug, slugs


# --- the oracle: the rule restated over what the test did, not over what the portal stored --------
class Oracle:
    def __init__(self, slugs):
        self.members = {"boss"}
        self.authors = {slug: {"boss"} for slug in slugs}  # since the last approval
        self.submitter = {slug: None for slug in slugs}
        self.members_at_submit = {slug: set() for slug in slugs}

    def edited(self, who, slug):
        self.authors[slug].add(who)

    def submitted(self, who, slug):
        self.authors[slug].add(who)
        self.submitter[slug] = who
        self.members_at_submit[slug] = set(self.members)

    def approved(self, slug):
        self.authors[slug] = set()

    def may_decide(self, who, slug) -> bool:
        return (who in PLATFORM and who != self.submitter[slug] and who not in self.authors[slug]
                and who not in self.members_at_submit[slug] and who not in self.members)


JOINERS = ["tina", "priya", "paul", "root"]
SCENARIOS, STEPS = 12, 30


class Scenario:
    """One random sequence of membership changes, edits, submits and decisions on a team's WIDs,
    run through the services, with the rule checked against the oracle for everyone at each decision.

    Seeded sequences rather than Hypothesis examples: Hypothesis favours short, simple lists, and in
    40 to 60 of its examples a submitter, an author or a member at submit who had left came to decide
    a handful of times at most; weighted random steps reach each of them many times (counted).
    """

    def __init__(self, seed: int, clock: Clock, seen: Counter):
        self.random, self.clock, self.seen, self.log = random.Random(seed), clock, seen, []
        self.team_slug, (self.slug, _) = new_world(seed, clock)
        self.team = selectors.team_get(self.team_slug)
        self.oracle = Oracle([self.slug])
        self.rounds = 0

    def run(self):
        steps = [self.join, self.leave, self.edit, self.submit, self.decide]
        for _ in range(STEPS):
            self.clock.tick()
            try:
                self.random.choices(steps, weights=[3, 3, 2, 2, 4])[0]()
            except Conflict as exc:  # the state refuses (an edit of a submitted WID): the sequence goes on
                self.log.append(f"  refused: {exc}")

    def join(self):
        who = self.random.choice(sorted(set(JOINERS) - self.oracle.members) or JOINERS)
        role = self.random.choice(["member", "owner"])
        self.log.append(f"{who} joins as {role}")
        services.team_member_add(actor=fresh("boss"), team=self.team, username=who, role=role)
        self.oracle.members.add(who)

    def leave(self):
        who = self.random.choice(sorted(self.oracle.members - {"boss"}) or JOINERS)
        self.log.append(f"{who} leaves")
        try:
            services.team_member_remove(actor=fresh("boss"), team=self.team, username=who)
        except NotFound:
            assert who not in self.oracle.members, self.log
        else:
            self.oracle.members.discard(who)

    def edit(self):
        who, low_risk = self.member(), self.random.random() < 0.1
        self.log.append(f"{who} edits{' (low risk)' if low_risk else ''}")
        version = Product.objects.get(slug=self.slug).version
        services.wid_update(user=fresh(who), slug=self.slug, data={
            "version": version, "name": f"Edited by {who} at {self.clock.now:%H:%M:%S}",
            **(LOW_RISK if low_risk else HIGH_RISK)})
        self.oracle.edited(who, self.slug)

    def submit(self):
        who = self.member()
        self.log.append(f"{who} submits")
        product = services.wid_submit(user=fresh(who), slug=self.slug)
        self.oracle.submitted(who, self.slug)
        if product.status == "approved":  # the policy approved it at once
            self.next_wid()

    def member(self) -> str:
        """A member to write: boss only when alone, so that writers are people who may later leave."""
        return self.random.choice(sorted(self.oracle.members - {"boss"}) or ["boss"])

    def decide(self):
        """Everyone's answer is checked against the oracle (the rule holds whatever the WID's
        status: it says who may decide on its current submission); then one of them tries."""
        product = Product.objects.get(slug=self.slug)
        for who in JOINERS:
            reason = selectors.user_may_decide(fresh(who), product)
            assert (reason is None) == self.oracle.may_decide(who, self.slug), (who, reason, self.log)
            self.seen[(reason or "allowed").split(":")[0].split(" '")[0]] += 1
        who = self.random.choice(JOINERS)
        action = self.random.choice(["approve", "reject", "request_changes", "request_changes"])  # approving ends a WID
        self.log.append(f"{who} tries to {action}")
        if product.status != "submitted":
            with pytest.raises((NotAllowed, Conflict)):
                DECISIONS[action](user=fresh(who), slug=self.slug, comment="Decided.")
        elif self.oracle.may_decide(who, self.slug):
            DECISIONS[action](user=fresh(who), slug=self.slug, comment="Decided.")
            if action == "approve":
                self.next_wid()
        else:
            with pytest.raises(NotAllowed):
                DECISIONS[action](user=fresh(who), slug=self.slug, comment="Decided.")
            assert Product.objects.get(slug=self.slug).version == product.version

    def next_wid(self):
        """An approved WID is done with: the team writes its next one (the same people, the same audit)."""
        self.oracle.approved(self.slug)
        self.rounds += 1
        self.slug = f"{self.team_slug}-next-{self.rounds}"
        self.clock.tick()
        services.wid_create(user=fresh("boss"), data=wid_payload(slug=self.slug, team=self.team_slug, **HIGH_RISK))
        self.oracle.authors[self.slug], self.oracle.submitter[self.slug] = {"boss"}, None
        self.oracle.members_at_submit[self.slug] = set()


def test_the_decider_is_never_the_submitter_an_author_or_a_member_then_or_now(people, clock):
    seen = Counter()
    for seed in range(SCENARIOS):
        Scenario(seed, clock, seen).run()

    assert all(seen[reason] >= 6 for reason in (
        "allowed", "Only the platform team decides on WIDs.", "You are in", "You submitted this WID",
        "You changed this WID since it was last approved", "You were in")), seen


# --- the cases the rule was written for ---------------------------------------------------------
@pytest.fixture
def submitted(people, clock):
    """`w0-one`, submitted by tina (a plain member); the team: boss (owner) and tina."""
    team_slug, slugs = new_world(0, clock)
    team = selectors.team_get(team_slug)
    clock.tick()
    services.team_member_add(actor=fresh("boss"), team=team, username="tina", role="member")
    clock.tick()
    services.wid_submit(user=fresh("tina"), slug=slugs[0])
    clock.tick()
    return team, slugs[0]


def refusal(who, slug):
    return selectors.user_may_decide(fresh(who), Product.objects.get(slug=slug))


def test_a_platform_member_outside_the_team_decides(submitted):
    team, slug = submitted

    assert refusal("priya", slug) is None
    assert services.wid_approve(user=fresh("priya"), slug=slug).status == "approved"


def test_a_platform_member_who_joins_the_team_after_submit_may_not_decide(submitted, clock):
    team, slug = submitted
    services.team_member_add(actor=fresh("boss"), team=team, username="priya", role="member")
    clock.tick()

    with pytest.raises(NotAllowed, match="You are in 'team-0'"):
        services.wid_approve(user=fresh("priya"), slug=slug)


def test_a_platform_member_who_was_in_the_team_at_submit_and_left_since_may_not_decide(people, clock):
    team_slug, (slug, _) = new_world(0, clock)
    team = selectors.team_get(team_slug)
    services.team_member_add(actor=fresh("boss"), team=team, username="priya", role="member")
    clock.tick()
    services.wid_submit(user=fresh("boss"), slug=slug)
    clock.tick()
    services.team_member_remove(actor=fresh("boss"), team=team, username="priya")
    clock.tick()

    with pytest.raises(NotAllowed, match="You were in 'team-0' when this WID was submitted"):
        services.wid_reject(user=fresh("priya"), slug=slug, comment="No.")
    assert Product.objects.get(slug=slug).status == "submitted"


def test_someone_who_edited_the_wid_and_left_the_team_may_not_decide(people, clock):
    team_slug, (slug, _) = new_world(0, clock)
    team = selectors.team_get(team_slug)
    services.team_member_add(actor=fresh("boss"), team=team, username="paul", role="member")
    clock.tick()
    services.wid_update(user=fresh("paul"), slug=slug, data={"version": 1, "name": "Paul's version"})
    clock.tick()
    services.team_member_remove(actor=fresh("boss"), team=team, username="paul")
    clock.tick()
    services.wid_submit(user=fresh("boss"), slug=slug)
    clock.tick()

    with pytest.raises(NotAllowed, match="You changed this WID since it was last approved"):
        services.wid_approve(user=fresh("paul"), slug=slug)


def test_a_platform_submitter_who_left_the_team_may_not_decide(people, clock):
    team_slug, (slug, _) = new_world(0, clock)
    team = selectors.team_get(team_slug)
    services.team_member_add(actor=fresh("boss"), team=team, username="pia", role="owner")
    clock.tick()
    services.wid_submit(user=fresh("pia"), slug=slug)
    clock.tick()
    services.team_member_remove(actor=fresh("pia"), team=team, username="pia")
    clock.tick()

    assert refusal("pia", slug) == "You submitted this WID: another platform member decides."


def test_someone_who_was_in_the_team_long_before_submit_and_wrote_nothing_decides(people, clock):
    team_slug, (slug, _) = new_world(0, clock)
    team = selectors.team_get(team_slug)
    services.team_member_add(actor=fresh("boss"), team=team, username="priya", role="member")
    clock.tick()
    services.team_member_remove(actor=fresh("boss"), team=team, username="priya")
    clock.tick()
    services.wid_submit(user=fresh("boss"), slug=slug)
    clock.tick()

    assert refusal("priya", slug) is None


def test_the_reviewer_who_asked_for_changes_decides_on_the_next_round(submitted, clock):
    team, slug = submitted
    services.wid_request_changes(user=fresh("priya"), slug=slug, comment="Name the owner.")
    clock.tick()
    services.wid_update(user=fresh("tina"), slug=slug, data={"version": 3, "name": "With an owner"})
    clock.tick()
    services.wid_submit(user=fresh("tina"), slug=slug)
    clock.tick()

    assert services.wid_approve(user=fresh("priya"), slug=slug).status == "approved"


def test_superusers_are_bound_by_the_rule(people, clock):
    team_slug, (slug, _) = new_world(0, clock)
    team = selectors.team_get(team_slug)
    services.team_member_add(actor=fresh("boss"), team=team, username="root", role="member")
    clock.tick()
    services.wid_update(user=fresh("root"), slug=slug, data={"version": 1, "name": "Root's version"})
    clock.tick()
    services.team_member_remove(actor=fresh("boss"), team=team, username="root")
    clock.tick()
    services.wid_submit(user=fresh("boss"), slug=slug)
    clock.tick()

    with pytest.raises(NotAllowed, match="You changed this WID"):
        services.wid_approve(user=fresh("root"), slug=slug)


def test_the_policy_approves_whoever_is_in_the_team(people, clock):
    """The policy is not a person: its approval is not held back by anyone's membership."""
    team_slug, _ = new_world(0, clock)
    team = selectors.team_get(team_slug)
    services.team_member_add(actor=fresh("boss"), team=team, username="priya", role="member")
    clock.tick()
    services.wid_create(user=fresh("priya"), data=wid_payload(slug="low-risk", team=team_slug, **LOW_RISK))
    clock.tick()

    product = services.wid_submit(user=fresh("priya"), slug="low-risk")

    assert product.status == "approved"
    assert product.review_events.last().by_policy


def test_a_membership_change_in_the_second_of_the_submit_counts_as_at_submit(people, clock):
    """The review log keeps seconds: leaving within the logged second may have been after the submit."""
    team_slug, (slug, _) = new_world(0, clock)
    team = selectors.team_get(team_slug)
    services.team_member_add(actor=fresh("boss"), team=team, username="priya", role="member")
    clock.tick(0.2)
    services.wid_submit(user=fresh("boss"), slug=slug)
    clock.tick(0.5)
    services.team_member_remove(actor=fresh("boss"), team=team, username="priya")
    clock.tick()

    assert refusal("priya", slug).startswith("You were in 'team-0' when this WID was submitted")


def test_joining_in_the_second_of_the_submit_counts_as_at_submit(people, clock):
    team_slug, (slug, _) = new_world(0, clock)
    team = selectors.team_get(team_slug)
    clock.tick(0.6 - clock.now.microsecond / 1e6)
    services.wid_submit(user=fresh("boss"), slug=slug)
    clock.tick(0.2)
    services.team_member_add(actor=fresh("boss"), team=team, username="priya", role="member")
    clock.tick()
    services.team_member_remove(actor=fresh("boss"), team=team, username="priya")
    clock.tick()

    assert refusal("priya", slug).startswith("You were in 'team-0' when this WID was submitted")


# --- what the API and the page say --------------------------------------------------------------
def test_the_api_refuses_with_403_naming_why_and_changes_nothing(api, submitted, clock):
    team, slug = submitted
    services.team_member_add(actor=fresh("boss"), team=team, username="paul", role="member")
    head = Product.objects.get(slug=slug).head_sha

    response = api(fresh("paul")).post(f"/api/v1/products/{slug}/approve/", {"comment": "ok"}, format="json")

    assert response.status_code == 403
    assert response.json()["detail"] == "You are in 'team-0', which owns this WID: another platform member decides."
    assert Product.objects.get(slug=slug).head_sha == head


def test_the_page_explains_instead_of_showing_the_buttons(client, submitted, clock):
    team, slug = submitted
    services.team_member_add(actor=fresh("boss"), team=team, username="paul", role="member")
    client.force_login(fresh("paul"))

    page = client.get(f"/products/{slug}/").content.decode()

    assert "You may not decide on this WID: You are in &#x27;team-0&#x27;" in page
    assert f"/products/{slug}/approve/" not in page


def test_the_page_shows_the_buttons_to_who_may_decide(client, submitted):
    team, slug = submitted
    client.force_login(fresh("priya"))

    page = client.get(f"/products/{slug}/").content.decode()

    assert f"/products/{slug}/approve/" in page and f"/products/{slug}/reject/" in page
    assert "You may not decide" not in page


def test_the_page_shows_no_decision_to_someone_off_the_platform(client, submitted):
    team, slug = submitted
    client.force_login(fresh("tina"))

    page = client.get(f"/products/{slug}/").content.decode()

    assert "You may not decide" not in page and f"/products/{slug}/approve/" not in page


# --- the membership audit -----------------------------------------------------------------------
def test_every_membership_change_is_recorded_with_who_made_it(people, clock):
    team = services.team_create(user=fresh("boss"), slug="audited", name="Audited")
    clock.tick()
    services.team_member_add(actor=fresh("boss"), team=team, username="tina", role="member")
    clock.tick()
    services.team_member_add(actor=fresh("boss"), team=team, username="tina", role="owner")
    clock.tick()
    services.team_member_add(actor=fresh("boss"), team=team, username="tina", role="owner")  # no change
    services.team_member_remove(actor=fresh("tina"), team=team, username="tina")

    events = [(e.user.username, e.kind, e.role, e.actor.username)
              for e in MembershipEvent.objects.filter(team=team)]
    assert events == [
        ("boss", "joined", "owner", "boss"),
        ("tina", "joined", "member", "boss"),
        ("tina", "role_changed", "owner", "boss"),
        ("tina", "left", "owner", "tina"),
    ]


def test_membership_at_a_past_moment_is_answered_from_the_audit(people, clock):
    team = services.team_create(user=fresh("boss"), slug="audited", name="Audited")
    clock.tick()
    joined = clock.now
    services.team_member_add(actor=fresh("boss"), team=team, username="tina", role="member")
    clock.tick()
    services.team_member_remove(actor=fresh("boss"), team=team, username="tina")
    left = clock.now
    tina = fresh("tina")

    def was(at):
        return selectors.user_was_member(tina, team, start=at, end=at)

    assert [was(joined - timedelta(seconds=1)), was(joined), was(left - timedelta(seconds=1)), was(left),
            was(left + timedelta(seconds=1))] == [False, True, True, False, False]


def test_a_membership_made_before_the_audit_counts_from_its_creation(people, clock, team):
    Membership.objects.create(team=team, user=fresh("tina"), role="member")  # as rows made before 0002
    start = clock.now
    clock.tick()

    assert selectors.user_was_member(fresh("tina"), team, start=start, end=start + timedelta(seconds=20))
    assert not selectors.user_was_member(fresh("tina"), team, start=start - timedelta(seconds=20),
                                         end=start - timedelta(seconds=1))
