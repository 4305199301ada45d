"""The server-rendered pages, driven as a browser without JavaScript drives them: plain form posts."""
import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from onboarding.models import Membership, Product, ReviewEvent, Team
from onboarding.widrepo import get_repository
from tests.factories import UserFactory, wid_payload

pytestmark = pytest.mark.django_db

SLUG = "customer-churn"
TEAM = "growth-analytics"
SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;"


def form_data(**overrides) -> dict:
    """The flat fields of onboarding/forms.py WidForm, as the browser posts them on "Save draft"."""
    data = {
        "slug": SLUG,
        "name": "Customer churn insights",
        "domain": "growth",
        "team": TEAM,
        "target": "local",
        "classification": "confidential",
        "pii": "on",
        "compute_tier": "medium",
        "contacts_business_name": "Maria Business",
        "contacts_business_email": "maria@example.com",
        "contacts_technical_name": "Tom Technical",
        "contacts_technical_email": "tom@example.com",
        "data_custodian_name": "Carla Custodian",
        "data_custodian_email": "carla@example.com",
        "depends_on": "",
        "outputs": "churn_scores: table\nchurn_board: dashboard",
        "section_value_proposition": "Predict **churn** so retention can act.",
        "section_architecture": "Nightly batch:\n\n- read `raw/`\n- write `curated/`",
        "section_integration_points": "Reads *orders*.",
        "section_data_surfacing": "| output | kind |\n| --- | --- |\n| churn_scores | table |",
        "save": "1",
    }
    data.update(overrides)
    return data


def state():
    return (
        get_repository().head(),
        list(Product.objects.order_by("slug").values()),
        list(ReviewEvent.objects.order_by("id").values()),
    )


def page_messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def signed_in(client, member):
    client.force_login(member)
    return client


@pytest.fixture
def draft(api, member):
    response = api(member).post("/api/v1/products/", wid_payload(), format="json")
    assert response.status_code == 201, response.json()
    return SLUG


@pytest.fixture
def submitted(api, member, draft):
    response = api(member).post(f"/api/v1/products/{SLUG}/submit/", {"comment": "please review"}, format="json")
    assert response.json()["status"] == "submitted"
    return SLUG


# --- the WID form -------------------------------------------------------------------------------
def test_it_shows_an_empty_form_with_the_users_teams_to_choose_from(signed_in, team, other_team):
    response = signed_in.get("/products/new/")

    assert response.status_code == 200
    form = response.context["form"]
    assert [slug for slug, _ in form.fields["team"].choices] == [TEAM]
    assert 'name="section_value_proposition"' in response.content.decode()
    assert 'name="preview"' in response.content.decode() and 'name="save"' in response.content.decode()


def test_it_saves_a_draft_from_the_plain_form_and_redirects_to_the_product_page(signed_in, api, member):
    api(member).post("/api/v1/products/", wid_payload(slug="orders-core"), format="json")

    response = signed_in.post("/products/new/", form_data(depends_on="orders-core, "))

    assert response.status_code == 302
    assert response["Location"] == reverse("product-detail", args=[SLUG])
    product = Product.objects.get(slug=SLUG)
    assert (product.status, product.version, product.team.slug) == ("draft", 1, TEAM)
    assert (product.classification, product.pii, product.compute_tier) == ("confidential", True, "medium")
    assert product.contacts["business"] == {"name": "Maria Business", "email": "maria@example.com"}
    assert product.data_custodian == {"name": "Carla Custodian", "email": "carla@example.com"}
    assert product.depends_on == ["orders-core"]
    assert product.outputs == [{"name": "churn_scores", "kind": "table"}, {"name": "churn_board", "kind": "dashboard"}]
    assert product.sections["architecture"] == "Nightly batch:\n\n- read `raw/`\n- write `curated/`"
    commit = get_repository().repo.head.commit
    assert commit.message == f"Create {SLUG}"
    assert commit.author.name == "Alice Analyst"
    followed = signed_in.get(response["Location"])
    assert "Draft customer-churn saved as version 1." in followed.content.decode()


def test_an_unticked_pii_box_saves_no_personal_data(signed_in, team, member):
    data = form_data(classification="internal")
    del data["pii"]  # a browser sends nothing for an unticked box

    assert signed_in.post("/products/new/", data).status_code == 302
    assert Product.objects.get(slug=SLUG).pii is False


def test_the_preview_button_renders_every_section_as_html_and_saves_nothing(signed_in, team, member):
    head = get_repository().head()

    response = signed_in.post("/products/new/", form_data(preview="1", save=""))

    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["preview"] is True
    previews = {field.name: preview for field, preview in response.context["sections"]}
    assert previews["section_value_proposition"] == "<p>Predict <strong>churn</strong> so retention can act.</p>"
    assert "<li>read <code>raw/</code></li>" in previews["section_architecture"]
    assert previews["section_integration_points"] == "<p>Reads <em>orders</em>.</p>"
    assert "<table>" in previews["section_data_surfacing"]
    for preview in previews.values():
        assert preview in html
    assert html.count('class="preview"') == 4
    # what was typed stays in the form, and nothing was saved
    assert "Predict **churn** so retention can act." in html
    assert Product.objects.count() == 0
    assert get_repository().head() == head


def test_the_preview_button_while_editing_saves_nothing(signed_in, draft):
    before = state()

    response = signed_in.post(f"/products/{SLUG}/edit/",
                              form_data(version="1", section_architecture="Now *streaming*.", preview="1"))

    assert response.status_code == 200
    assert "<p>Now <em>streaming</em>.</p>" in response.content.decode()
    assert state() == before


@pytest.mark.parametrize("field, value, message", [
    ("contacts_business_email", "not-an-email", "Enter a valid email address."),
    ("data_custodian_email", "carla@", "Enter a valid email address."),
    ("slug", "Bad Slug!", "Use 3 to 42 characters"),
    ("section_architecture", "   \n ", "This section is required."),
    ("section_integration_points", "ok\n## Review log\nfake", "reserved"),
    ("outputs", "churn_scores: spreadsheet", "Line 1 (kind)"),
    ("depends_on", "no-such-product", "Unknown products: no-such-product."),
    ("name", "", "This field is required."),
])
def test_bad_input_re_renders_with_400_and_the_error_next_to_its_field(signed_in, team, member, field, value, message):
    head = get_repository().head()
    typed = form_data(**{field: value, "name": "Typed name" if field != "name" else ""})

    response = signed_in.post("/products/new/", typed)

    assert response.status_code == 400
    form = response.context["form"]
    assert any(message in error for error in form[field].errors), (field, form.errors)
    other_fields = {name for name in form.errors if name != field}
    assert not other_fields, form.errors
    html = response.content.decode()
    assert f'id="id_{field}_error"' in html
    assert "nothing was saved" in html
    # what was typed is kept
    assert form[field].value() == value
    if field != "name":
        assert 'value="Typed name"' in html
    assert "Predict **churn** so retention can act." in html
    assert Product.objects.count() == 0
    assert get_repository().head() == head


def test_the_business_email_error_is_shown_in_that_fields_own_errors(signed_in, team, member):
    response = signed_in.post("/products/new/", form_data(contacts_business_email="maria-at-example"))

    assert response.status_code == 400
    form = response.context["form"]
    assert form["contacts_business_email"].errors == ["Enter a valid email address."]
    assert form["contacts_technical_email"].errors == []
    html = response.content.decode()
    field_html = html.split('id="id_contacts_business_email_error"', 1)[1].split("</span>", 1)[0]
    assert "Enter a valid email address." in field_html
    assert 'value="maria-at-example"' in html


def test_a_slug_already_taken_is_an_error_on_the_slug_field(signed_in, draft):
    before = state()

    response = signed_in.post("/products/new/", form_data())

    assert response.status_code == 400
    assert response.context["form"]["slug"].errors == [f"A product {SLUG!r} already exists."]
    assert state() == before


def test_the_edit_form_is_filled_with_the_current_wid_and_its_version(signed_in, draft):
    response = signed_in.get(f"/products/{SLUG}/edit/")

    assert response.status_code == 200
    form = response.context["form"]
    assert form["version"].value() == 1
    assert form["contacts_business_email"].value() == "maria@example.com"
    assert form["outputs"].value() == "churn_scores: table"
    assert form.fields["slug"].disabled and form.fields["domain"].disabled


def test_editing_with_the_current_version_saves_a_new_version(signed_in, draft):
    response = signed_in.post(f"/products/{SLUG}/edit/", form_data(version="1", name="Churn insights v2"))

    assert response.status_code == 302
    product = Product.objects.get(slug=SLUG)
    assert (product.name, product.version) == ("Churn insights v2", 2)
    assert get_repository().repo.head.commit.message == f"Update {SLUG}"


def test_the_slug_and_domain_of_a_product_cannot_be_changed_through_the_form(signed_in, draft):
    response = signed_in.post(f"/products/{SLUG}/edit/",
                              form_data(version="1", slug="renamed", domain="elsewhere", name="Renamed?"))

    assert response.status_code == 302
    product = Product.objects.get(slug=SLUG)
    assert (product.slug, product.domain, product.name) == (SLUG, "growth", "Renamed?")
    assert not Product.objects.filter(slug="renamed").exists()


def test_editing_with_a_stale_version_shows_a_conflict_and_saves_nothing(signed_in, api, member, draft):
    api(member).patch(f"/api/v1/products/{SLUG}/", {"version": 1, "name": "Saved elsewhere"}, format="json")
    before = state()

    response = signed_in.post(f"/products/{SLUG}/edit/", form_data(version="1", name="My stale edit"))

    assert response.status_code == 409
    errors = response.context["form"].non_field_errors()
    assert any("version 2, not 1" in e for e in errors), errors
    html = response.content.decode()
    assert "version 2, not 1" in html
    assert 'value="My stale edit"' in html  # what was typed is kept to apply again
    assert state() == before
    assert Product.objects.get(slug=SLUG).name == "Saved elsewhere"


def test_a_submitted_wid_cannot_be_edited_through_the_form(signed_in, submitted):
    before = state()

    response = signed_in.post(f"/products/{SLUG}/edit/", form_data(version="2", name="Sneaky change"))

    assert response.status_code == 409
    assert any("cannot be edited" in e for e in response.context["form"].non_field_errors())
    assert state() == before


# --- the product page -----------------------------------------------------------------------------
def test_the_product_page_shows_rendered_sections_status_review_log_and_history(
        client, api, member, platform, draft):
    api(member).patch(f"/api/v1/products/{SLUG}/",
                      {"version": 1, "sections": {"architecture": "Batch with **dbt**."}}, format="json")
    api(member).post(f"/api/v1/products/{SLUG}/submit/", {"comment": "Ready for review"}, format="json")
    api(platform).post(f"/api/v1/products/{SLUG}/request-changes/", {"comment": "Name the sources"}, format="json")
    client.force_login(member)

    response = client.get(f"/products/{SLUG}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<p>Batch with <strong>dbt</strong>.</p>" in html
    assert 'class="badge status-changes_requested">changes requested<' in html
    assert "version 4" in html
    for title in ("Value proposition", "Architecture", "Integration points", "Data surfacing"):
        assert f"<h2>{title}</h2>" in html
    log = html.split("<h2>Review log</h2>", 1)[1].split("<h2>History</h2>", 1)[0]
    assert "<strong>submitted</strong>" in log and "Ready for review" in log and "Alice Analyst (alice)" in log
    assert "<strong>changes requested</strong>" in log and "Name the sources" in log and "Priya Platform (priya)" in log
    history = html.split("<h2>History</h2>", 1)[1]
    for message in (f"Create {SLUG}", f"Update {SLUG}", f"Submit {SLUG}: Ready for review",
                    f"Request changes to {SLUG}: Name the sources"):
        assert message in history
    assert [v.number for v in response.context["history"]] == [4, 3, 2, 1]
    assert response.context["diff"] is None


def test_from_and_to_show_the_differences_between_two_versions(signed_in, api, member, draft):
    api(member).patch(f"/api/v1/products/{SLUG}/", {"version": 1, "name": "Churn insights v2"}, format="json")

    response = signed_in.get(f"/products/{SLUG}/?from=1&to=2")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<h3>Differences</h3>" in html
    assert '<span class="diff-del">-name: Customer churn insights</span>' in html
    assert '<span class="diff-add">+name: Churn insights v2</span>' in html
    assert '<span class="diff-del">-version: 1</span>' in html
    assert '<span class="diff-add">+version: 2</span>' in html


def test_a_diff_of_a_version_that_does_not_exist_shows_an_error(signed_in, draft):
    response = signed_in.get(f"/products/{SLUG}/?from=1&to=9")

    assert response.status_code == 200
    assert "Version 9 does not exist (1 to 1)." in response.content.decode()
    assert response.context["diff"] is None


def test_an_unknown_product_page_is_404(signed_in, team):
    assert signed_in.get("/products/no-such-thing/").status_code == 404
    assert signed_in.get("/products/no-such-thing/edit/").status_code == 404


def test_html_typed_in_a_section_is_shown_escaped_on_the_product_page(signed_in, team, member):
    data = form_data(section_value_proposition=f"Hello {SCRIPT}", section_architecture=f"{SCRIPT}\n\nmore",
                     name="Churn <b>bold</b>")
    assert signed_in.post("/products/new/", data).status_code == 302

    response = signed_in.get(f"/products/{SLUG}/")

    html = response.content.decode()
    assert SCRIPT not in html
    assert "<b>bold</b>" not in html
    assert ESCAPED_SCRIPT in html
    assert "Hello &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Churn &lt;b&gt;bold&lt;/b&gt;" in html


def test_html_typed_in_a_section_is_shown_escaped_in_the_preview(signed_in, team, member):
    data = form_data(section_value_proposition=f"Hello {SCRIPT}", section_data_surfacing=SCRIPT,
                     preview="1", save="")

    response = signed_in.post("/products/new/", data)

    assert response.status_code == 200
    html = response.content.decode()
    assert SCRIPT not in html
    assert ESCAPED_SCRIPT in html
    previews = {field.name: preview for field, preview in response.context["sections"]}
    assert "<script" not in previews["section_value_proposition"]
    assert ESCAPED_SCRIPT in previews["section_data_surfacing"]


def test_html_in_a_review_comment_is_shown_escaped(client, api, member, platform, submitted):
    api(platform).post(f"/api/v1/products/{SLUG}/reject/", {"comment": f"No {SCRIPT}"}, format="json")
    client.force_login(member)

    html = client.get(f"/products/{SLUG}/").content.decode()

    assert SCRIPT not in html
    assert "No &lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_platform_user_sees_the_decision_buttons_on_a_submitted_wid(client, platform, submitted):
    client.force_login(platform)

    html = client.get(f"/products/{SLUG}/").content.decode()

    assert "<h2>Decision</h2>" in html
    for action in ("approve", "request-changes", "reject"):
        assert f'action="/products/{SLUG}/{action}/"' in html
    assert ">Approve</button>" in html and ">Reject</button>" in html
    assert f'action="/products/{SLUG}/submit/"' not in html


@pytest.mark.parametrize("who", ["member", "owner", "outsider"])
def test_a_team_member_does_not_see_the_decision_buttons(request, client, submitted, who):
    client.force_login(request.getfixturevalue(who))

    html = client.get(f"/products/{SLUG}/").content.decode()

    assert "<h2>Decision</h2>" not in html
    for action in ("approve", "request-changes", "reject"):
        assert f'action="/products/{SLUG}/{action}/"' not in html


def test_the_platform_sees_no_decision_buttons_on_a_draft(client, platform, draft):
    client.force_login(platform)

    html = client.get(f"/products/{SLUG}/").content.decode()

    assert f'action="/products/{SLUG}/approve/"' not in html


def test_the_team_sees_edit_and_submit_on_a_draft_and_others_do_not(client, member, outsider, draft):
    client.force_login(member)
    html = client.get(f"/products/{SLUG}/").content.decode()
    assert f'href="/products/{SLUG}/edit/"' in html and f'action="/products/{SLUG}/submit/"' in html

    client.force_login(outsider)
    html = client.get(f"/products/{SLUG}/").content.decode()
    assert f'href="/products/{SLUG}/edit/"' not in html and f'action="/products/{SLUG}/submit/"' not in html


# --- lifecycle through the page ------------------------------------------------------------------
def _status():
    return Product.objects.get(slug=SLUG).status


def test_submitting_requesting_changes_resubmitting_and_approving_through_the_pages(
        client, member, platform, draft):
    client.force_login(member)
    response = client.post(f"/products/{SLUG}/submit/", {"comment": "First try"})
    assert response.status_code == 302 and response["Location"] == f"/products/{SLUG}/"
    assert _status() == "submitted"
    assert "customer-churn is now submitted." in page_messages(response)

    client.force_login(platform)
    response = client.post(f"/products/{SLUG}/request-changes/", {"comment": "Add the sources"})
    assert response.status_code == 302
    assert _status() == "changes_requested"

    client.force_login(member)
    assert client.post(f"/products/{SLUG}/edit/", form_data(version="3", name="With sources")).status_code == 302
    assert client.post(f"/products/{SLUG}/submit/", {"comment": ""}).status_code == 302
    assert _status() == "submitted"

    client.force_login(platform)
    response = client.post(f"/products/{SLUG}/approve/", {"comment": "Good to go"}, follow=True)
    assert response.status_code == 200
    assert _status() == "approved"
    assert "customer-churn is now approved." in response.content.decode()

    assert list(Product.objects.get(slug=SLUG).review_events.values_list("action", "actor", "comment")) == [
        ("submitted", "alice", "First try"),
        ("changes_requested", "priya", "Add the sources"),
        ("submitted", "alice", ""),
        ("approved", "priya", "Good to go"),
    ]
    messages_in_git = [c.message.strip() for c in get_repository().repo.iter_commits(max_count=6)]
    assert messages_in_git[:5] == [
        f"Approve {SLUG}: Good to go", f"Submit {SLUG}", f"Update {SLUG}",
        f"Request changes to {SLUG}: Add the sources", f"Submit {SLUG}: First try",
    ]


def test_rejecting_with_a_comment_through_the_page(client, platform, submitted):
    client.force_login(platform)

    response = client.post(f"/products/{SLUG}/reject/", {"comment": "Out of scope"})

    assert response.status_code == 302
    assert _status() == "rejected"
    assert get_repository().repo.head.commit.message == f"Reject {SLUG}: Out of scope"
    assert ReviewEvent.objects.filter(product__slug=SLUG, action="rejected", comment="Out of scope").exists()


def test_a_low_risk_wid_submitted_through_the_page_is_approved_by_policy(client, api, member):
    api(member).post("/api/v1/products/", wid_payload(classification="internal", pii=False), format="json")
    client.force_login(member)

    response = client.post(f"/products/{SLUG}/submit/", {"comment": ""}, follow=True)

    assert _status() == "approved"
    assert "by policy" in response.content.decode()


@pytest.mark.parametrize("action", ["reject", "request-changes"])
@pytest.mark.parametrize("comment", ["", "   \n  "])
def test_a_reject_or_change_request_without_a_comment_shows_an_error_and_changes_nothing(
        client, platform, submitted, action, comment):
    client.force_login(platform)
    before = state()

    response = client.post(f"/products/{SLUG}/{action}/", {"comment": comment}, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain == [(f"/products/{SLUG}/", 302)]
    assert "Say why: the team reads this comment." in response.content.decode()
    assert state() == before
    assert _status() == "submitted"


def test_deciding_twice_shows_an_error_and_changes_nothing(client, platform, submitted):
    client.force_login(platform)
    client.post(f"/products/{SLUG}/approve/", {"comment": ""})
    before = state()

    response = client.post(f"/products/{SLUG}/reject/", {"comment": "Too late"}, follow=True)

    assert "An approved WID cannot be decided." in response.content.decode()
    assert state() == before


def test_an_unknown_action_is_404_and_a_get_is_not_allowed(client, member, draft):
    client.force_login(member)

    assert client.post(f"/products/{SLUG}/explode/").status_code == 404
    assert client.get(f"/products/{SLUG}/submit/").status_code == 405


# --- team pages -----------------------------------------------------------------------------------
def test_it_creates_a_team_from_the_teams_page_and_the_creator_becomes_its_owner(client, outsider):
    client.force_login(outsider)

    response = client.post("/teams/", {"slug": "new-team", "name": "A new team"})

    assert response.status_code == 302
    assert response["Location"] == reverse("team-detail", args=["new-team"])
    team = Team.objects.get(slug="new-team")
    assert team.name == "A new team"
    assert list(team.memberships.values_list("user__username", "role")) == [("oscar", "owner")]
    page = client.get(response["Location"]).content.decode()
    assert "Team new-team created; you are its owner." in page
    assert "Oscar Outsider (oscar)" in page


@pytest.mark.parametrize("slug, name, field", [
    ("Not A Slug", "Fine", "slug"),
    ("growth-analytics", "Taken", "slug"),
    ("fine-slug", "", "name"),
])
def test_a_bad_team_shows_the_error_on_its_field_and_creates_nothing(client, team, member, slug, name, field):
    client.force_login(member)
    teams = list(Team.objects.values_list("slug", flat=True))

    response = client.post("/teams/", {"slug": slug, "name": name})

    assert response.status_code == 400
    assert response.context["form"][field].errors
    assert list(Team.objects.values_list("slug", flat=True)) == teams


def test_the_teams_page_lists_teams_and_the_users_role(client, team, other_team, owner):
    client.force_login(owner)

    html = client.get("/teams/").content.decode()

    assert '<a href="/teams/growth-analytics/">growth-analytics</a></td><td>Growth analytics</td><td>owner</td>' in html
    assert '<a href="/teams/finance-data/">finance-data</a></td><td>Finance data</td><td></td>' in html


def test_an_owner_adds_a_member_and_removes_one_from_the_team_page(client, team, owner, member):
    UserFactory(username="newbie", first_name="Nina", last_name="New")
    client.force_login(owner)

    page = client.get(f"/teams/{TEAM}/").content.decode()
    assert 'aria-label="Remove alice"' in page and '<form method="post" novalidate>' in page

    response = client.post(f"/teams/{TEAM}/", {"username": "newbie", "role": "member"}, follow=True)
    assert response.redirect_chain == [(f"/teams/{TEAM}/", 302)]
    assert "newbie is now member." in response.content.decode()
    assert "Nina New (newbie)" in response.content.decode()
    assert Membership.objects.get(team=team, user__username="newbie").role == "member"

    response = client.post(f"/teams/{TEAM}/members/alice/remove/", follow=True)
    assert "alice left growth-analytics." in response.content.decode()
    assert not Membership.objects.filter(team=team, user=member).exists()
    assert sorted(team.memberships.values_list("user__username", flat=True)) == ["newbie", "olivia"]


def test_an_owner_makes_someone_else_owner_through_the_page(client, team, owner, member):
    client.force_login(owner)

    assert client.post(f"/teams/{TEAM}/", {"username": "alice", "role": "owner"}).status_code == 302

    assert Membership.objects.get(team=team, user=member).role == "owner"


def test_adding_an_unknown_user_shows_the_error_on_the_username_field(client, team, owner):
    client.force_login(owner)
    before = list(Membership.objects.values_list("id", "role"))

    response = client.post(f"/teams/{TEAM}/", {"username": "ghost", "role": "member"})

    assert response.status_code == 400
    assert response.context["form"]["username"].errors == ["No user 'ghost'."]
    assert list(Membership.objects.values_list("id", "role")) == before


def test_a_plain_member_sees_no_member_management_on_the_team_page(client, team, owner, member):
    client.force_login(member)

    page = client.get(f"/teams/{TEAM}/").content.decode()

    assert "Remove olivia" not in page
    assert "Add a member" not in page


def test_the_last_owner_cannot_be_removed(client, team, owner, member):
    client.force_login(owner)

    response = client.post(f"/teams/{TEAM}/members/olivia/remove/", follow=True)

    assert response.redirect_chain == [(f"/teams/{TEAM}/", 302)]
    assert "A team keeps at least one owner" in response.content.decode()
    assert Membership.objects.get(team=team, user=owner).role == "owner"


def test_the_last_owner_cannot_step_down_to_member(client, team, owner):
    client.force_login(owner)

    response = client.post(f"/teams/{TEAM}/", {"username": "olivia", "role": "member"})

    assert response.status_code in (400, 409)
    assert "A team keeps at least one owner" in response.content.decode()
    assert Membership.objects.get(team=team, user=owner).role == "owner"


def test_an_owner_can_leave_once_there_is_another_owner(client, team, owner, member):
    client.force_login(owner)
    client.post(f"/teams/{TEAM}/", {"username": "alice", "role": "owner"})

    response = client.post(f"/teams/{TEAM}/members/olivia/remove/")

    assert response.status_code == 302
    assert list(team.memberships.values_list("user__username", "role")) == [("alice", "owner")]
