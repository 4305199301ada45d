"""The life of a WID: draft, submit, the approval policy, platform decisions, edits, events, e-mail.

And a unit test of the WID file format that carries it all (`onboarding.widfile`).
"""
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
from django.core import mail

from onboarding import services as onboarding_services
from onboarding import signals, widfile
from onboarding.models import Membership, Product, ReviewEvent
from onboarding.services import policy_verdict
from onboarding.widfile import ReviewEntry, WidDocument, parse, render
from onboarding.widrepo import get_repository
from portal.work import deliveries
from portal.work.models import Delivery
from tests.factories import wid_payload

pytestmark = pytest.mark.django_db

URL = "/api/v1/products/customer-churn/"
LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


def create(api, user, **overrides):
    response = api(user).post("/api/v1/products/", wid_payload(**overrides), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def act(api, user, action, comment=None, slug="customer-churn"):
    body = {} if comment is None else {"comment": comment}
    return api(user).post(f"/api/v1/products/{slug}/{action}/", body, format="json")


def head_commit():
    return get_repository().repo.head.commit


def stored(slug="customer-churn", domain="growth") -> WidDocument:
    return parse(get_repository().read(f"wids/{domain}/{slug}.md"))


def review_log(response):
    return [(e["action"], e["actor"], e["comment"]) for e in response.json()["review_log"]]


# --- submit and the approval policy ----------------------------------------------------------------
def test_a_new_wid_is_a_draft_with_an_empty_review_log(api, member):
    body = create(api, member)

    assert body["status"] == "draft"
    assert body["review_log"] == []
    assert body["submitted_at"] is None and body["decided_at"] is None
    assert stored().reviews == []


def test_submitting_a_draft_makes_it_submitted_as_one_commit_by_the_submitter(api, member):
    create(api, member)

    response = act(api, member, "submit", "Ready for review")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["version"]) == ("submitted", 2)
    assert review_log(response) == [("submitted", "alice", "Ready for review")]
    assert body["review_log"][0]["actor_name"] == "Alice Analyst"
    assert body["review_log"][0]["by_policy"] is False
    assert body["submitted_at"] is not None and body["decided_at"] is None
    commit = head_commit()
    assert commit.message == "Submit customer-churn: Ready for review"
    assert (commit.author.name, commit.author.email) == ("Alice Analyst", "alice@example.com")
    doc = stored()
    assert (doc.meta["status"], doc.meta["version"]) == ("submitted", 2)
    assert [(r.action, r.actor, r.comment) for r in doc.reviews] == [("submitted", "alice", "Ready for review")]


def test_submitting_without_a_comment_is_allowed(api, member):
    create(api, member)

    response = act(api, member, "submit")

    assert response.status_code == 200
    assert response.json()["status"] == "submitted"
    assert head_commit().message == "Submit customer-churn"


@pytest.mark.parametrize("classification", ["public", "internal"])
@pytest.mark.parametrize("compute_tier", ["small", "medium"])
def test_the_policy_approves_a_low_risk_wid_at_submit(api, member, classification, compute_tier):
    create(api, member, classification=classification, pii=False, compute_tier=compute_tier)
    before = head_commit().hexsha

    response = act(api, member, "submit", "please")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["version"]) == ("approved", 3)
    submitted, approved = body["review_log"]
    assert (submitted["action"], submitted["actor"]) == ("submitted", "alice")
    assert (approved["action"], approved["actor"], approved["actor_name"]) == ("approved", "", "")
    assert approved["by_policy"] is True
    assert approved["comment"].startswith("approved by policy")
    assert classification in approved["comment"] and compute_tier in approved["comment"]
    assert body["decided_at"] is not None
    # two commits: the submission by its author, then the approval by the policy
    approve_commit = head_commit()
    submit_commit = approve_commit.parents[0]
    assert submit_commit.parents[0].hexsha == before
    assert (submit_commit.author.name, submit_commit.message) == ("Alice Analyst", "Submit customer-churn: please")
    assert approve_commit.author.name == "Onboarding policy"
    assert approve_commit.message.startswith("Approve customer-churn: approved by policy")
    doc = stored()
    assert doc.meta["status"] == "approved"
    assert doc.reviews[-1].by_policy and doc.reviews[-1].comment == approved["comment"]
    assert [e.actor for e in ReviewEvent.objects.filter(product__slug="customer-churn")] == ["alice", ""]


@pytest.mark.parametrize("overrides, reason", [
    pytest.param({"classification": "confidential"}, "classification is confidential", id="confidential"),
    pytest.param({"classification": "restricted"}, "classification is restricted", id="restricted"),
    pytest.param({"pii": True}, "personal data", id="pii"),
    pytest.param({"compute_tier": "large"}, "compute tier is large", id="large-compute"),
    pytest.param({"classification": "public", "compute_tier": "large"}, "compute tier is large",
                 id="public-but-large-compute"),
    pytest.param({"classification": "restricted", "pii": True, "compute_tier": "large"}, "personal data",
                 id="everything-risky"),
])
def test_a_riskier_wid_stays_submitted_for_a_platform_decision(api, member, overrides, reason):
    create(api, member, **{**LOW_RISK, **overrides})

    response = act(api, member, "submit")

    assert response.status_code == 200
    assert response.json()["status"] == "submitted"
    assert review_log(response) == [("submitted", "alice", "")]
    assert head_commit().author.name == "Alice Analyst"
    assert stored().meta["status"] == "submitted"
    approve, why = policy_verdict(stored().meta)
    assert approve is False and reason in why


def test_the_policy_verdict_says_why_a_wid_needs_a_person():
    meta = {"classification": "restricted", "pii": True, "compute_tier": "large"}
    approve, reason = policy_verdict(meta)

    assert approve is False
    assert reason.startswith("needs a platform decision")
    assert all(part in reason for part in ("restricted", "personal data", "compute tier is large"))


def test_submitting_a_submitted_wid_answers_409_and_changes_nothing(api, member):
    create(api, member)
    act(api, member, "submit")
    head = head_commit().hexsha

    response = act(api, member, "submit")

    assert response.status_code == 409
    assert head_commit().hexsha == head
    assert ReviewEvent.objects.count() == 1


def test_submitting_an_approved_wid_answers_409(api, member):
    create(api, member, **LOW_RISK)
    act(api, member, "submit")
    head = head_commit().hexsha

    response = act(api, member, "submit")

    assert response.status_code == 409
    assert head_commit().hexsha == head


# --- platform decisions ----------------------------------------------------------------------------
@pytest.mark.parametrize("action, status, verb", [
    ("approve", "approved", "Approve"),
    ("reject", "rejected", "Reject"),
    ("request-changes", "changes_requested", "Request changes to"),
])
def test_the_platform_decides_a_submitted_wid_with_a_comment(api, member, platform, action, status, verb):
    create(api, member)
    act(api, member, "submit")

    response = act(api, platform, action, "Looks *fine*\n\nSecond paragraph")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["version"]) == (status, 3)
    assert review_log(response) == [
        ("submitted", "alice", ""), (status, "priya", "Looks *fine*\n\nSecond paragraph"),
    ]
    assert body["review_log"][1]["actor_name"] == "Priya Platform"
    assert body["decided_at"] is not None
    commit = head_commit()
    assert commit.message == f"{verb} customer-churn: Looks *fine*"  # the first line of the comment
    assert (commit.author.name, commit.author.email) == ("Priya Platform", "priya@example.com")
    doc = stored()
    assert doc.meta["status"] == status
    assert doc.reviews[-1] == ReviewEntry(action=status, at=doc.reviews[-1].at, actor="priya",
                                          actor_name="Priya Platform", comment="Looks *fine*\n\nSecond paragraph")


def test_approving_without_a_comment_is_allowed(api, member, platform):
    create(api, member)
    act(api, member, "submit")

    response = act(api, platform, "approve")

    assert response.status_code == 200
    assert response.json()["status"] == "approved"
    assert head_commit().message == "Approve customer-churn"


def test_a_long_first_line_of_a_comment_is_shortened_in_the_commit_message(api, member, platform):
    create(api, member)
    act(api, member, "submit")

    act(api, platform, "approve", "x" * 500)

    assert head_commit().message == "Approve customer-churn: " + "x" * 100
    assert stored().reviews[-1].comment == "x" * 500


@pytest.mark.parametrize("action", ["reject", "request-changes"])
@pytest.mark.parametrize("comment", [None, "", "   ", "\n \n\t\n"])
def test_reject_and_request_changes_need_a_comment(api, member, platform, action, comment):
    create(api, member)
    act(api, member, "submit")
    head = head_commit().hexsha

    response = act(api, platform, action, comment)

    assert response.status_code == 400
    assert "comment" in response.json()["errors"]
    assert head_commit().hexsha == head
    assert Product.objects.get().status == "submitted"
    assert ReviewEvent.objects.count() == 1


@pytest.mark.parametrize("action", ["submit", "approve", "reject", "request-changes"])
def test_a_comment_over_the_limit_answers_400(api, member, platform, action):
    create(api, member)
    if action != "submit":
        act(api, member, "submit")
    head = head_commit().hexsha

    response = act(api, member if action == "submit" else platform, action, "y" * 10_001)

    assert response.status_code == 400
    assert "comment" in response.json()["errors"]
    assert head_commit().hexsha == head


@pytest.mark.parametrize("action", ["approve", "reject", "request-changes"])
def test_deciding_a_draft_answers_409_and_changes_nothing(api, member, platform, action):
    create(api, member)
    head = head_commit().hexsha

    response = act(api, platform, action, "why")

    assert response.status_code == 409
    assert head_commit().hexsha == head
    assert Product.objects.get().status == "draft"
    assert stored().meta["status"] == "draft"


@pytest.mark.parametrize("first, first_status", [
    ("approve", "approved"), ("reject", "rejected"), ("request-changes", "changes_requested"),
])
@pytest.mark.parametrize("action", ["approve", "reject", "request-changes"])
def test_deciding_an_already_decided_wid_answers_409_and_changes_nothing(api, member, platform, first, first_status,
                                                                        action):
    create(api, member)
    act(api, member, "submit")
    assert act(api, platform, first, "first decision").status_code == 200
    head = head_commit().hexsha

    response = act(api, platform, action, "second decision")

    assert response.status_code == 409
    assert head_commit().hexsha == head
    assert Product.objects.get().status == first_status
    assert [e.comment for e in ReviewEvent.objects.all()] == ["", "first decision"]


def test_deciding_a_wid_the_policy_approved_answers_409(api, member, platform):
    create(api, member, **LOW_RISK)
    act(api, member, "submit")
    head = head_commit().hexsha

    response = act(api, platform, "reject", "too late")

    assert response.status_code == 409
    assert head_commit().hexsha == head


def test_a_platform_member_in_the_owning_team_cannot_decide_on_its_wid(api, member, platform, team):
    Membership.objects.create(team=team, user=platform, role="member")
    create(api, member)
    api(member).post("/api/v1/products/customer-churn/submit/", format="json")

    for action in ("approve", "reject", "request-changes"):
        response = api(platform).post(f"/api/v1/products/customer-churn/{action}/", {"comment": "mine"}, format="json")
        assert response.status_code == 403, action

    assert api(member).get("/api/v1/products/customer-churn/").json()["status"] == "submitted"


def test_deciding_an_unknown_product_answers_404(api, platform):
    assert act(api, platform, "approve", slug="no-such-product").status_code == 404


# --- editing along the way -------------------------------------------------------------------------
def test_changes_requested_then_edit_then_resubmit_grows_the_review_log(api, member, platform):
    create(api, member)
    act(api, member, "submit", "first try")
    act(api, platform, "request-changes", "Describe the architecture")

    edited = api(member).patch(URL, {"version": 3, "sections": {"architecture": "Now described."}}, format="json")
    resubmitted = act(api, member, "submit", "second try")

    assert edited.status_code == 200, edited.json()
    assert (edited.json()["status"], edited.json()["version"]) == ("changes_requested", 4)
    assert resubmitted.status_code == 200
    body = resubmitted.json()
    assert (body["status"], body["version"]) == ("submitted", 5)
    assert body["sections"]["architecture"] == "Now described."
    assert review_log(resubmitted) == [
        ("submitted", "alice", "first try"),
        ("changes_requested", "priya", "Describe the architecture"),
        ("submitted", "alice", "second try"),
    ]
    assert body["decided_at"] is None, "the last decision was about an earlier version"
    assert [(r.action, r.comment) for r in stored().reviews] == [
        ("submitted", "first try"), ("changes_requested", "Describe the architecture"), ("submitted", "second try"),
    ]
    history = [h["message"] for h in api(member).get(URL + "history/").json()]
    assert history == [
        "Submit customer-churn: second try", "Update customer-churn",
        "Request changes to customer-churn: Describe the architecture", "Submit customer-churn: first try",
        "Create customer-churn",
    ]

    approved = act(api, platform, "approve", "Thanks")
    assert approved.json()["status"] == "approved"
    assert len(approved.json()["review_log"]) == 4
    assert approved.json()["decided_at"] is not None


def test_a_resubmitted_wid_the_policy_likes_is_approved_at_resubmit(api, member, platform):
    create(api, member)
    act(api, member, "submit")
    act(api, platform, "request-changes", "This is not personal data, is it?")

    api(member).patch(URL, {"version": 3, "pii": False, "classification": "internal"}, format="json")
    response = act(api, member, "submit", "Right, it is not")

    assert response.json()["status"] == "approved"
    assert [e["action"] for e in response.json()["review_log"]] == [
        "submitted", "changes_requested", "submitted", "approved",
    ]
    assert response.json()["review_log"][-1]["by_policy"] is True


def test_a_rejected_wid_can_be_edited_and_resubmitted(api, member, platform):
    create(api, member)
    act(api, member, "submit")
    act(api, platform, "reject", "Not a data product")

    edited = api(member).patch(URL, {"version": 3, "name": "Reworked"}, format="json")
    resubmitted = act(api, member, "submit")

    assert edited.status_code == 200
    assert resubmitted.json()["status"] == "submitted"
    assert [e["action"] for e in resubmitted.json()["review_log"]] == ["submitted", "rejected", "submitted"]


@pytest.mark.parametrize("overrides, status", [
    pytest.param({}, "submitted", id="submitted"),
])
def test_a_submitted_wid_cannot_be_edited(api, member, overrides, status):
    """(An approved one can: an edit opens an amendment, tests/onboarding/test_amendments.py.)"""
    create(api, member, **overrides)
    version = act(api, member, "submit").json()["version"]
    head = head_commit().hexsha

    response = api(member).patch(URL, {"version": version, "name": "Sneaky change"}, format="json")

    assert response.status_code == 409
    assert head_commit().hexsha == head
    product = Product.objects.get()
    assert (product.status, product.name, product.version) == (status, "Customer churn insights", version)
    assert stored().meta["name"] == "Customer churn insights"


def test_the_platform_cannot_amend_a_teams_approved_wid(api, member, platform):
    create(api, member)
    act(api, member, "submit")
    act(api, platform, "approve")
    head = head_commit().hexsha

    response = api(platform).patch(URL, {"version": 3, "name": "Platform edit"}, format="json")

    assert response.status_code == 403
    assert head_commit().hexsha == head


# --- domain events ---------------------------------------------------------------------------------
@contextmanager
def received(*sigs):
    """Collect (signal name, product slug, actor) for every signal sent while inside."""
    names = {sig: name for name in dir(signals) for sig in sigs if getattr(signals, name) is sig}
    events = []

    def receiver(signal, sender, product, actor, **kwargs):
        assert sender is Product
        assert isinstance(product, Product)
        # the product is already saved with its new state when the event is sent
        events.append((names[signal], product.slug, product.status, actor.username if actor else None))

    for sig in sigs:
        sig.connect(receiver, weak=False, dispatch_uid=f"test-{id(events)}")
    try:
        yield events
    finally:
        for sig in sigs:
            sig.disconnect(dispatch_uid=f"test-{id(events)}")


ALL_SIGNALS = (signals.wid_submitted, signals.wid_approved, signals.wid_rejected, signals.wid_changes_requested)


def test_submit_and_platform_decisions_send_domain_events_with_product_and_actor(api, member, platform):
    create(api, member)
    create(api, member, slug="second-one")
    create(api, member, slug="third-one")

    with received(*ALL_SIGNALS) as events:
        act(api, member, "submit")
        act(api, platform, "request-changes", "more")
        act(api, member, "submit")
        act(api, platform, "approve", "ok")
        act(api, member, "submit", slug="second-one")
        act(api, platform, "reject", "no", slug="second-one")

    assert events == [
        ("wid_submitted", "customer-churn", "submitted", "alice"),
        ("wid_changes_requested", "customer-churn", "changes_requested", "priya"),
        ("wid_submitted", "customer-churn", "submitted", "alice"),
        ("wid_approved", "customer-churn", "approved", "priya"),
        ("wid_submitted", "second-one", "submitted", "alice"),
        ("wid_rejected", "second-one", "rejected", "priya"),
    ]


def test_a_policy_approval_sends_wid_approved_without_an_actor(api, member):
    create(api, member, **LOW_RISK)

    with received(signals.wid_approved) as events:
        act(api, member, "submit")

    assert events == [("wid_approved", "customer-churn", "approved", None)]


def test_refused_requests_send_no_domain_events(api, member, platform):
    create(api, member)

    with received(*ALL_SIGNALS) as events:
        act(api, platform, "approve")  # a draft: 409
        act(api, member, "submit")
        act(api, platform, "reject")  # no comment: 400
        act(api, member, "submit")  # already submitted: 409

    assert events == [("wid_submitted", "customer-churn", "submitted", "alice")]


def test_a_receiver_that_fails_undoes_the_decision(api, member, platform):
    create(api, member)
    act(api, member, "submit")
    head = head_commit().hexsha

    def broken(**kwargs):
        raise RuntimeError("listener failed")

    signals.wid_approved.connect(broken, weak=False, dispatch_uid="test-broken")
    try:
        with pytest.raises(RuntimeError):
            act(api, platform, "approve")
    finally:
        signals.wid_approved.disconnect(dispatch_uid="test-broken")

    assert Product.objects.get().status == "submitted"
    assert ReviewEvent.objects.count() == 1
    # git is the truth: the approval must not stay recorded there either
    assert stored().meta["status"] == "submitted"
    assert head_commit().hexsha == head


# --- notifications ---------------------------------------------------------------------------------
RECIPIENTS = {"maria@example.com", "tom@example.com", "carla@example.com"}


def emails() -> list[str]:
    """The review e-mails in the outbox, by event, oldest first."""
    return list(Delivery.objects.filter(channel="email").order_by("id").values_list("event", flat=True))


def test_every_review_event_writes_one_e_mail_with_the_change(api, member, platform):
    create(api, member, **LOW_RISK)

    act(api, member, "submit")
    assert emails() == ["wid.submitted", "wid.approved"]

    act(api, platform, "approve")  # refused: already approved
    assert emails() == ["wid.submitted", "wid.approved"]


def test_an_e_mail_is_not_written_when_the_submit_rolls_back(api, member, monkeypatch):
    create(api, member)
    monkeypatch.setattr("onboarding.services.index_document", _failing)
    with pytest.raises(RuntimeError):
        onboarding_services.wid_submit(user=member, slug="customer-churn")
    assert emails() == []


def _failing(*args, **kwargs):
    raise RuntimeError("the index update fails")


def test_creating_and_editing_write_no_e_mail(api, member):
    create(api, member)
    api(member).patch(URL, {"version": 1, "name": "Renamed"}, format="json")
    assert emails() == []


def deliver(slug="customer-churn"):
    """Deliver the latest review e-mail, here, as a worker would."""
    email = Delivery.objects.filter(channel="email").order_by("id").last()
    assert deliveries.deliver(email.pk) == "delivered"
    return len(email.recipients) and 1


@pytest.mark.parametrize("action, subject", [
    ("approve", "[customer-churn] approved"),
    ("reject", "[customer-churn] rejected"),
    ("request-changes", "[customer-churn] changes requested"),
])
def test_a_decision_mails_the_custodian_and_both_contacts(api, member, platform, action, subject):
    create(api, member)
    act(api, member, "submit")
    act(api, platform, action, "Because <reasons> & more")
    mail.outbox.clear()

    sent = deliver()

    assert sent == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == subject
    assert set(message.to) == RECIPIENTS and len(message.to) == 3
    assert "Because <reasons> & more" in message.body  # plain text: not HTML-escaped
    assert "Priya Platform (priya)" in message.body
    assert "/products/customer-churn/" in message.body


def test_a_submission_mails_the_custodian_and_both_contacts(api, member):
    create(api, member)
    act(api, member, "submit", "Please review")

    deliver()

    assert [(m.subject, set(m.to)) for m in mail.outbox] == [("[customer-churn] submitted for review", RECIPIENTS)]
    assert "Please review" in mail.outbox[0].body


def test_a_policy_approval_mails_that_the_policy_approved(api, member):
    create(api, member, **LOW_RISK)
    act(api, member, "submit")

    deliver()

    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "[customer-churn] approved by policy"
    assert set(mail.outbox[0].to) == RECIPIENTS
    assert "by the onboarding policy" in mail.outbox[0].body
    assert "approved by policy" in mail.outbox[0].body


def test_a_person_in_two_roles_gets_one_copy(api, member):
    data = wid_payload()
    data["data_custodian"] = {"name": "Maria Business", "email": "maria@example.com"}
    assert api(member).post("/api/v1/products/", data, format="json").status_code == 201
    act(api, member, "submit")

    deliver()

    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["maria@example.com", "tom@example.com"]


# --- the WID file format ---------------------------------------------------------------------------
def document(**changes) -> WidDocument:
    meta = {
        "slug": "customer-churn", "name": "Customer churn (beta) insights: *all* of [them]", "domain": "growth",
        "team": "growth-analytics", "status": "submitted", "version": 7, "target": "local",
        "classification": "internal", "pii": False, "compute_tier": "small",
        "contacts": {
            "business": {"name": "Maria (Biz) O'Neil", "email": "maria@example.com"},
            "technical": {"name": "Tom \"T\" Tech", "email": "tom@example.com"},
        },
        "data_custodian": {"name": "Carla: Custodian #1", "email": "carla@example.com"},
        "depends_on": ["orders-core", "customers"],
        "outputs": [{"name": "churn_scores", "kind": "table"}, {"name": "churn.dash", "kind": "dashboard"}],
    }
    sections = {
        "value_proposition": "Predict churn.\n\n- a *list*\n- with `code`",
        "architecture": "    indented code block\n\n> a quote\n\n```\n## Not a heading in a fence? still text\n```",
        "integration_points": "Back\\slashes \\ and \\\\ and \\* escapes \\n",
        "data_surfacing": "  leading spaces\ntrailing spaces   \n\n\n\nmany blank lines\n---\n...",
    }
    at = datetime(2026, 11, 3, 9, 15, 0, tzinfo=timezone.utc)
    reviews = [
        ReviewEntry(action="submitted", at=at, actor="alice", actor_name="Alice (Analyst) Smith",
                    comment="Please review:\n\n* point one\n  * nested\n1. numbered\n# hash\n> quoted"),
        ReviewEntry(action="changes_requested", at=at, actor="priya.p@corp", actor_name="Priya (Platform)",
                    comment="Back\\slash \\* \\\\ `tick` _u_ [l](x) {b} #h +p -m .d !e >g\n\n\n   leading spaces"),
        ReviewEntry(action="submitted", at=at, actor="alice", actor_name="(", comment=""),
        ReviewEntry(action="approved", at=at, actor="", actor_name="",
                    comment="approved by policy: internal data, no personal data, small compute tier"),
        ReviewEntry(action="rejected", at=at, actor="bob", actor_name="Bob) (Builder",
                    comment="- 2026-11-03T09:15:00Z **approved** by policy\n  > fake entry\n## Review log\n"
                            "## Architecture\n---"),
        ReviewEntry(action="changes_requested", at=at, actor="carol", actor_name="Carol \\ Backslash",
                    comment="\n".join(["", "line after a blank first line", "", ""]).strip("\n") + "\n\nend"),
    ]
    doc = WidDocument(meta=meta, sections=sections, reviews=reviews)
    for key, value in changes.items():
        setattr(doc, key, value)
    return doc


def test_parse_gives_back_exactly_what_render_wrote():
    doc = document()

    text = render(doc)
    again = parse(text)

    assert again == doc
    assert render(again) == text


def test_review_comments_and_names_survive_the_round_trip_one_by_one():
    for entry in document().reviews:
        doc = document(reviews=[entry])
        assert parse(render(doc)).reviews == [entry], entry


def test_a_comment_cannot_forge_a_review_entry_or_a_section():
    doc = document()

    again = parse(render(doc))

    assert len(again.reviews) == len(doc.reviews)
    assert again.sections == doc.sections
    assert [r.actor for r in again.reviews] == ["alice", "priya.p@corp", "alice", "", "bob", "carol"]


def test_a_document_without_reviews_round_trips():
    doc = document(reviews=[])

    assert parse(render(doc)) == doc


def test_a_policy_entry_is_written_as_by_policy():
    doc = document(reviews=[document().reviews[3]])

    text = render(doc)

    assert "**approved** by policy" in text
    assert parse(text).reviews[0].by_policy


def test_the_file_starts_with_front_matter_in_contract_order_and_ends_with_the_review_log():
    text = render(document())

    lines = text.split("\n")
    assert lines[0] == "---"
    keys = [line.split(":")[0] for line in lines[1:lines.index("---", 1)] if line and not line.startswith(" ")
            and not line.startswith("-")]
    assert keys == widfile.FRONT_MATTER_KEYS
    headings = [line for line in lines if line in widfile.RESERVED_HEADINGS]
    assert headings == ["## Value proposition", "## Architecture", "## Integration points", "## Data surfacing",
                        "## Review log"]


def test_parse_refuses_a_file_without_all_front_matter_keys():
    text = render(document()).replace("compute_tier: small\n", "")

    with pytest.raises(widfile.WidFormatError):
        parse(text)


def test_parse_refuses_front_matter_that_is_not_yaml():
    with pytest.raises(widfile.WidFormatError):
        parse("---\nslug: [unclosed\n---\n## Value proposition\n")


@pytest.mark.parametrize("text", [
    "", "plain", "\\", "\\\\", "a\\b", "\\`*_{}[]()>#+-.!", "(", ")", "((x))", "\\(", "1. 2) -3",
])
def test_markdown_escaping_is_reversible(text):
    assert widfile.md_unescape(widfile.md_escape(text)) == text


def test_a_receiver_that_fails_at_a_policy_approval_undoes_the_submission_too(api, member):
    create(api, member, **LOW_RISK)
    head = head_commit().hexsha

    def broken(**kwargs):
        raise RuntimeError("listener failed")

    signals.wid_approved.connect(broken, weak=False, dispatch_uid="test-broken")
    try:
        with pytest.raises(RuntimeError):
            act(api, member, "submit")
    finally:
        signals.wid_approved.disconnect(dispatch_uid="test-broken")

    assert head_commit().hexsha == head
    assert not get_repository().repo.is_dirty(untracked_files=True)
    assert stored().meta["status"] == "draft" and stored().reviews == []
    assert Product.objects.get().status == "draft"
    assert ReviewEvent.objects.count() == 0
    # and the next attempt works normally
    assert act(api, member, "submit").json()["status"] == "approved"
