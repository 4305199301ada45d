"""Who gets what from every page and endpoint of the portal: one table, one row per request, one
column per kind of person, the answer written out in each cell.

The roles (DESIGN.md): members of a team create and edit their team's products and start `plan`
jobs; the platform team (the `platform` group, or superusers) approves, rejects, confirms,
destroys and sees everything; anyone signed in reads; credentials (and pipeline runs) only for
the product's team and the platform; a team's members managed by its owners (and the platform).
Every write is sent with the product in a state where it would succeed, so that a refusal is the
permission's doing. A refused request changes nothing.

The world is built once for the module (committed, emptied at the end); each cell runs in a
transaction rolled back after it, and the WID repository is put back to where it was.
A new URL pattern that no row of the table requests fails `test_the_table_covers_every_url`.
"""
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings
from django.urls import URLResolver, get_resolver, resolve
from rest_framework.test import APIClient

from onboarding import services as onboarding_services
from onboarding.models import Membership, Product, ReviewEvent, Team
from onboarding.widrepo import get_repository
from provisioning import services as provisioning_services
from provisioning.models import CredentialRead, Job, Provisioning, Run, Source
from tests.factories import TeamFactory, UserFactory, member_of, platform_user, wid_payload
from tests.onboarding.test_permissions import _page_form

TEAM, OTHER = "growth-analytics", "finance-data"
ACTORS = ["anonymous", "outsider", "other_team", "member", "owner", "platform", "superuser"]
LOGIN = "login"  # 302 to the login page, with ?next=


@dataclass(frozen=True)
class Row:
    name: str  # the URL pattern's name, checked against what the path resolves to
    method: str
    path: str  # formatted with the world's job and run ids
    expected: tuple  # one answer per actor, in the order of ACTORS
    body: dict = field(default_factory=dict)
    json: bool = False


def page(name, method, path, *expected, body=None):
    return Row(name, method, path, expected, body or {})


def api(name, method, path, *expected, body=None):
    return Row(name, method, path, expected, body or {}, json=True)


NEW_WID_FORM = _page_form(slug="new-wid")
EDIT_FORM = _page_form(slug="draft-wid", name="Renamed on the page", version="1")
ACCESS_ASKED = {"purpose": "A churn study", "until": str(date.today() + timedelta(days=30))}
SUNSET = {"sunset": str(date.today() + timedelta(days=30)), "comment": "Replaced."}

#            name                     method    path                                      anonymous outsider other  member owner platform superuser
MATRIX = [
    # --- pages of provisioning ----------------------------------------------------------------------------------------------
    page("my-products",          "get",  "/my/",                                           LOGIN, 200, 200, 200, 200, 200, 200),
    page("dashboard",            "get",  "/dashboard/",                                    LOGIN, 403, 403, 403, 403, 200, 200),
    page("job-list",             "get",  "/jobs/",                                         LOGIN, 200, 200, 200, 200, 200, 200),
    page("job-start",            "post", "/products/approved-wid/jobs/",                   LOGIN, 403, 403, 302, 302, 302, 302, body={"action": "plan"}),
    page("job-start",            "post", "/products/approved-wid/jobs/",                   LOGIN, 403, 403, 403, 403, 302, 302, body={"action": "apply"}),
    page("job-start",            "post", "/products/approved-wid/jobs/",                   LOGIN, 403, 403, 403, 403, 302, 302, body={"action": "destroy"}),
    page("product-credentials",  "get",  "/products/provisioned-wid/credentials/",         LOGIN, 403, 403, 200, 200, 200, 200),
    page("job-detail",           "get",  "/jobs/{queued}/",                                LOGIN, 200, 200, 200, 200, 200, 200),
    page("job-action",           "post", "/jobs/{planned}/confirm/",                       LOGIN, 403, 403, 403, 403, 302, 302),
    page("job-action",           "post", "/jobs/{queued}/cancel/",                         LOGIN, 403, 403, 403, 403, 302, 302),
    page("job-action",           "post", "/jobs/{planning}/cancel/",                       LOGIN, 403, 403, 302, 403, 302, 302),
    page("job-action",           "post", "/jobs/{failed}/retry/",                          LOGIN, 403, 403, 403, 403, 302, 302),
    page("job-action",           "post", "/jobs/{failed_plan}/retry/",                     LOGIN, 403, 403, 302, 302, 302, 302),
    page("product-credentials-rotate", "post", "/products/provisioned-wid/credentials/rotate/", LOGIN, 403, 403, 302, 302, 302, 302),
    page("product-access",       "get",  "/products/provisioned-wid/access/",              LOGIN, 200, 200, 200, 200, 200, 200),
    # The team is told (a message) that it reads its own product's credentials instead of asking.
    page("product-access-request", "post", "/products/provisioned-wid/access/request/",    LOGIN, 302, 302, 302, 302, 302, 302, body=ACCESS_ASKED),
    page("access-report",        "get",  "/access/",                                       LOGIN, 403, 403, 403, 403, 200, 200),
    page("access-request-action", "post", "/access/requests/{request}/approve/",           LOGIN, 403, 403, 403, 302, 403, 403),
    # No login: the data custodian is an e-mail address; a link that is not signed by the portal is not found.
    page("access-custodian",     "get",  "/access/custodian/not-a-token/",                 404, 404, 404, 404, 404, 404, 404),
    page("access-custodian",     "post", "/access/custodian/not-a-token/",                 404, 404, 404, 404, 404, 404, 404, body={"decision": "approve"}),
    # --- pages of onboarding --------------------------------------------------------------------------------------------
    page("home",                 "get",  "/",                                              LOGIN, 302, 302, 302, 302, 302, 302),
    page("product-list",         "get",  "/products/",                                     LOGIN, 200, 200, 200, 200, 200, 200),
    page("product-create",       "get",  "/products/new/",                                 LOGIN, 200, 200, 200, 200, 200, 200),
    page("product-create",       "post", "/products/new/",                                 LOGIN, 403, 403, 302, 302, 403, 403, body=NEW_WID_FORM),
    page("product-detail",       "get",  "/products/submitted-wid/",                       LOGIN, 200, 200, 200, 200, 200, 200),
    page("product-edit",         "get",  "/products/draft-wid/edit/",                      LOGIN, 403, 403, 200, 200, 403, 403),
    page("product-edit",         "post", "/products/draft-wid/edit/",                      LOGIN, 403, 403, 302, 302, 403, 403, body=EDIT_FORM),
    page("product-action",       "post", "/products/draft-wid/submit/",                    LOGIN, 403, 403, 302, 302, 403, 403),
    page("product-action",       "post", "/products/submitted-wid/approve/",               LOGIN, 403, 403, 403, 403, 302, 302),
    page("product-action",       "post", "/products/submitted-wid/reject/",                LOGIN, 403, 403, 403, 403, 302, 302, body={"comment": "No."}),
    page("product-action",       "post", "/products/submitted-wid/request-changes/",       LOGIN, 403, 403, 403, 403, 302, 302, body={"comment": "More."}),
    page("product-action",       "post", "/products/approved-wid/withdraw/",               LOGIN, 403, 403, 302, 302, 302, 302),
    page("product-action",       "post", "/products/approved-wid/deprecate/",              LOGIN, 403, 403, 302, 302, 302, 302, body=SUNSET),
    page("product-action",       "post", "/products/approved-wid/suspend/",                LOGIN, 403, 403, 403, 403, 302, 302),
    page("product-action",       "post", "/products/approved-wid/resume/",                 LOGIN, 403, 403, 403, 403, 302, 302),
    page("team-list",            "get",  "/teams/",                                        LOGIN, 200, 200, 200, 200, 200, 200),
    page("team-list",            "post", "/teams/",                                        LOGIN, 302, 302, 302, 302, 302, 302, body={"slug": "new-team", "name": "New"}),
    page("team-detail",          "get",  f"/teams/{TEAM}/",                                LOGIN, 200, 200, 200, 200, 200, 200),
    page("team-detail",          "post", f"/teams/{TEAM}/",                                LOGIN, 403, 403, 403, 302, 302, 302, body={"username": "nina", "role": "member"}),
    page("team-member-remove",   "post", f"/teams/{TEAM}/members/newbie/remove/",          LOGIN, 403, 403, 403, 302, 302, 302),
    page("team-member-remove",   "post", f"/teams/{TEAM}/members/alice/remove/",           LOGIN, 403, 403, 302, 302, 302, 302),
    # --- signing in and out, Django's admin, the API's pages, the WID site, health -----------------------------------------
    page("login",                "get",  "/accounts/login/",                               200, 200, 200, 200, 200, 200, 200),
    page("logout",               "post", "/accounts/logout/",                              302, 302, 302, 302, 302, 302, 302),
    page("admin:index",          "get",  "/admin/",                                        302, 302, 302, 302, 302, 302, 200),
    page("api-schema",           "get",  "/api/schema/",                                   401, 200, 200, 200, 200, 200, 200),
    page("api-docs",             "get",  "/api/docs/",                                     LOGIN, 200, 200, 200, 200, 200, 200),
    page("wid-site",             "get",  "/docs/",                                         LOGIN, 200, 200, 200, 200, 200, 200),
    page("wid-site-page",        "get",  "/docs/teams/",                                   LOGIN, 200, 200, 200, 200, 200, 200),
    page("healthz",              "get",  "/healthz/",                                      200, 200, 200, 200, 200, 200, 200),
    # --- the API of onboarding ------------------------------------------------------------------------------------------
    api("api-team-list",         "get",  "/api/v1/teams/",                                 401, 200, 200, 200, 200, 200, 200),
    api("api-team-list",         "post", "/api/v1/teams/",                                 401, 201, 201, 201, 201, 201, 201, body={"slug": "new-team", "name": "New"}),
    api("api-team-detail",       "get",  f"/api/v1/teams/{TEAM}/",                         401, 200, 200, 200, 200, 200, 200),
    api("api-team-members",      "get",  f"/api/v1/teams/{TEAM}/members/",                 401, 200, 200, 200, 200, 200, 200),
    api("api-team-members",      "post", f"/api/v1/teams/{TEAM}/members/",                 401, 403, 403, 403, 201, 201, 201, body={"username": "nina", "role": "member"}),
    api("api-team-member",       "delete", f"/api/v1/teams/{TEAM}/members/newbie/",        401, 403, 403, 403, 204, 204, 204),
    api("api-team-member",       "delete", f"/api/v1/teams/{TEAM}/members/alice/",         401, 403, 403, 204, 204, 204, 204),
    api("api-product-list",      "get",  "/api/v1/products/",                              401, 200, 200, 200, 200, 200, 200),
    api("api-product-list",      "post", "/api/v1/products/",                              401, 403, 403, 201, 201, 403, 403, body=wid_payload(slug="new-wid")),
    api("api-product-detail",    "get",  "/api/v1/products/draft-wid/",                    401, 200, 200, 200, 200, 200, 200),
    api("api-product-detail",    "patch", "/api/v1/products/draft-wid/",                   401, 403, 403, 200, 200, 403, 403, body={"version": 1, "name": "Renamed"}),
    api("api-product-markdown",  "get",  "/api/v1/products/draft-wid/markdown/",           401, 200, 200, 200, 200, 200, 200),
    api("api-product-history",   "get",  "/api/v1/products/draft-wid/history/",            401, 200, 200, 200, 200, 200, 200),
    api("api-product-submit",    "post", "/api/v1/products/draft-wid/submit/",             401, 403, 403, 200, 200, 403, 403),
    api("api-product-approve",   "post", "/api/v1/products/submitted-wid/approve/",        401, 403, 403, 403, 403, 200, 200),
    api("api-product-reject",    "post", "/api/v1/products/submitted-wid/reject/",         401, 403, 403, 403, 403, 200, 200, body={"comment": "No."}),
    api("api-product-request-changes", "post", "/api/v1/products/submitted-wid/request-changes/",
                                                                                           401, 403, 403, 403, 403, 200, 200, body={"comment": "More."}),
    # approved-wid has no open amendment: those allowed to withdraw one are told so (409).
    api("api-product-withdraw",  "post", "/api/v1/products/approved-wid/withdraw/",        401, 403, 403, 409, 409, 409, 409),
    api("api-product-deprecate", "post", "/api/v1/products/approved-wid/deprecate/",       401, 403, 403, 200, 200, 200, 200, body=SUNSET),
    api("api-product-suspend",   "post", "/api/v1/products/approved-wid/suspend/",         401, 403, 403, 403, 403, 200, 200),
    # approved-wid is not suspended: those allowed to resume it are told so (409).
    api("api-product-resume",    "post", "/api/v1/products/approved-wid/resume/",          401, 403, 403, 403, 403, 409, 409),
    # --- the API of provisioning ----------------------------------------------------------------------------------------
    api("api-product-jobs",      "get",  "/api/v1/products/approved-wid/jobs/",            401, 200, 200, 200, 200, 200, 200),
    api("api-product-jobs",      "post", "/api/v1/products/approved-wid/jobs/",            401, 403, 403, 202, 202, 202, 202, body={"action": "plan"}),
    api("api-product-jobs",      "post", "/api/v1/products/approved-wid/jobs/",            401, 403, 403, 403, 403, 202, 202, body={"action": "apply"}),
    api("api-product-jobs",      "post", "/api/v1/products/approved-wid/jobs/",            401, 403, 403, 403, 403, 202, 202, body={"action": "destroy"}),
    api("api-product-provisioning", "get", "/api/v1/products/provisioned-wid/provisioning/", 401, 200, 200, 200, 200, 200, 200),
    # provisioned-wid holds personal data: its team and the platform read its credentials only with a
    # reason (400 naming `reason` without one); the others never (tests/provisioning/test_access.py).
    api("api-product-credentials", "get", "/api/v1/products/provisioned-wid/credentials/", 401, 403, 403, 400, 400, 400, 400),
    api("api-product-credentials-rotate", "post", "/api/v1/products/provisioned-wid/credentials/rotate/",
                                                                                           401, 403, 403, 202, 202, 202, 202),
    api("api-product-ports",     "get",  "/api/v1/products/provisioned-wid/ports/",        401, 200, 200, 200, 200, 200, 200),
    api("api-product-access",    "get",  "/api/v1/products/provisioned-wid/access/",       401, 403, 403, 200, 200, 200, 200),
    api("api-product-access-requests", "get", "/api/v1/products/provisioned-wid/access-requests/",
                                                                                           401, 200, 200, 200, 200, 200, 200),
    api("api-product-access-requests", "post", "/api/v1/products/provisioned-wid/access-requests/",
                                                                                           401, 201, 201, 400, 400, 201, 201, body=ACCESS_ASKED),
    # {request}: nina's pending request for provisioned-wid (growth-analytics' product, personal data).
    api("api-access-request-detail", "get", "/api/v1/access-requests/{request}/",          401, 403, 403, 200, 200, 200, 200),
    api("api-access-request-approve", "post", "/api/v1/access-requests/{request}/approve/", 401, 403, 403, 403, 200, 403, 403),
    api("api-access-request-reject", "post", "/api/v1/access-requests/{request}/reject/",  401, 403, 403, 403, 200, 403, 403,
        body={"comment": "No."}),
    api("api-access-request-revoke", "post", "/api/v1/access-requests/{request}/revoke/",  401, 403, 403, 403, 200, 200, 200),
    api("api-access-events",     "get",  "/api/v1/access/",                                401, 403, 403, 403, 403, 200, 200),
    api("api-product-runs",      "get",  "/api/v1/products/provisioned-wid/runs/",         401, 200, 200, 200, 200, 200, 200),
    api("api-product-runs",      "post", "/api/v1/products/provisioned-wid/runs/",         401, 403, 403, 202, 202, 202, 202),
    api("api-run-detail",        "get",  "/api/v1/runs/{run}/",                            401, 200, 200, 200, 200, 200, 200),
    api("api-run-log",           "get",  "/api/v1/runs/{run}/log/",                        401, 200, 200, 200, 200, 200, 200),
    api("api-job-detail",        "get",  "/api/v1/jobs/{queued}/",                         401, 200, 200, 200, 200, 200, 200),
    api("api-job-log",           "get",  "/api/v1/jobs/{queued}/log/",                     401, 200, 200, 200, 200, 200, 200),
    api("api-job-confirm",       "post", "/api/v1/jobs/{planned}/confirm/",                401, 403, 403, 403, 403, 202, 202),
    api("api-job-cancel",        "post", "/api/v1/jobs/{queued}/cancel/",                  401, 403, 403, 403, 403, 200, 200),
    api("api-job-cancel",        "post", "/api/v1/jobs/{planning}/cancel/",                401, 403, 403, 200, 403, 200, 200),
    api("api-job-retry",         "post", "/api/v1/jobs/{failed}/retry/",                   401, 403, 403, 403, 403, 202, 202),
    api("api-job-retry",         "post", "/api/v1/jobs/{failed_plan}/retry/",              401, 403, 403, 202, 202, 202, 202),
    # Ingestion sources: everyone signed in lists names, kinds and descriptions; the platform registers.
    api("api-sources",           "get",  "/api/v1/sources/",                               401, 200, 200, 200, 200, 200, 200),
    api("api-sources",           "post", "/api/v1/sources/",                               401, 403, 403, 403, 403, 201, 201,
        body={"name": "new-share", "kind": "share", "path": "/srv/shares/new"}),
    api("api-source-detail",     "get",  "/api/v1/sources/crm/",                           401, 200, 200, 200, 200, 200, 200),
    api("api-source-detail",     "patch", "/api/v1/sources/crm/",                          401, 403, 403, 403, 403, 200, 200,
        body={"description": "The CRM's read replica"}),
    api("api-source-detail",     "delete", "/api/v1/sources/spare-share/",                 401, 403, 403, 403, 403, 204, 204),
]

# Django's own admin has many patterns, all behind its staff check: its index stands for them.
ADMIN_PREFIX = "admin/"


# --- the world ----------------------------------------------------------------------------------
def _approved(slug: str, *, author, platform) -> Product:
    onboarding_services.wid_create(user=author, data=wid_payload(slug=slug, team=TEAM))
    onboarding_services.wid_submit(user=author, slug=slug)
    return onboarding_services.wid_approve(user=platform, slug=slug)


def _build_world() -> SimpleNamespace:
    team, other = TeamFactory(slug=TEAM, name="Growth"), TeamFactory(slug=OTHER, name="Finance")
    alice = member_of(team, username="alice")
    people = {
        "outsider": UserFactory(username="oscar"),
        "other_team": member_of(other, username="fiona"),
        "member": alice,
        "owner": member_of(team, role="owner", username="olivia"),
        "platform": platform_user(username="priya"),
        "superuser": get_user_model().objects.create_superuser("root", "root@example.com", "pw"),
    }
    member_of(team, username="newbie")
    UserFactory(username="nina")
    priya = people["platform"]

    onboarding_services.wid_create(user=alice, data=wid_payload(slug="draft-wid"))
    onboarding_services.wid_create(user=alice, data=wid_payload(slug="submitted-wid"))
    onboarding_services.wid_submit(user=alice, slug="submitted-wid")
    products = {slug: _approved(slug, author=alice, platform=priya) for slug in (
        "approved-wid", "planned-wid", "queued-wid", "planning-wid", "failed-wid", "failed-plan-wid",
        "provisioned-wid")}

    def job(slug, action, status, by):
        return Job.objects.create(product=products[slug], action=action, status=status, requested_by=by,
                                  plan_summary={"add": 0, "change": 1, "remove": 0}).pk

    ids = {
        "planned": job("planned-wid", "apply", "planned", priya),
        "queued": job("queued-wid", "apply", "queued", priya),
        "planning": job("planning-wid", "plan", "queued", alice),
        "failed": job("failed-wid", "apply", "failed", priya),
        "failed_plan": job("failed-plan-wid", "plan", "failed", alice),
    }
    Provisioning.objects.create(product=products["provisioned-wid"], provisioned=True,
                                outputs={"queue": "runs.provisioned-wid"})
    Source.objects.create(name="crm", kind="database", connection="env:CRM_URL", description="The CRM")
    Source.objects.create(name="spare-share", kind="share", path="/srv/shares/spare")
    ids["run"] = Run.objects.create(product=products["provisioned-wid"], requested_by=alice,
                                    queue="runs.provisioned-wid").pk
    from provisioning import access

    ids["request"] = access.request_personal(user=get_user_model().objects.get(username="nina"),
                                             product=products["provisioned-wid"], purpose="A study",
                                             until=date.today() + timedelta(days=30)).pk
    return SimpleNamespace(people=people, ids=ids)


class FakeState:
    """What Terraform's state holds for a provisioned product (read for its credentials)."""

    resources = ["storage"]
    outputs = {name: {"value": value} for name, value in {
        "warehouse_host": "127.0.0.1", "warehouse_port": 5433, "warehouse_database": "warehouse",
        "storage_role": "provisioned_wid", "storage_password": "s3cret", "storage_schema": "provisioned_wid",
        "lake_path": "/lake/provisioned-wid"}.items()}


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    root = tmp_path_factory.mktemp("access-matrix")
    site = root / "site" / "current"
    (site / "teams").mkdir(parents=True)
    (site / "index.html").write_text("<h1>WIDs</h1>")
    (site / "teams" / "index.html").write_text("<h1>Teams</h1>")
    with override_settings(WID_REPO_PATH=root / "wid-repo", WID_REPO_REMOTE="", WID_SITE_ROOT=root / "site"), \
            pytest.MonkeyPatch.context() as patch, django_db_blocker.unblock():
        patch.setattr(provisioning_services.terraform, "read_state", lambda *args, **kwargs: FakeState())
        try:
            built = _build_world()
            built.head = get_repository().head()
            yield built
        finally:
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(autouse=True)
def wid_repo():
    """Replaces the suite's one repository per test: every cell uses the world's (see `world`)."""


# --- the cells ----------------------------------------------------------------------------------
def counts() -> dict:
    return {model.__name__: model.objects.count() for model in (
        Product, ReviewEvent, Team, Membership, Job, Run, CredentialRead, Source)}


def answer(response) -> object:
    if response.status_code == 302 and response["Location"].startswith("/accounts/login/?next="):
        return LOGIN
    return response.status_code


def request_as(user, row: Row, path: str):
    client = APIClient()
    if user is not None:
        client.force_login(user)
    if row.method == "get":
        return client.get(path)
    return getattr(client, row.method)(path, row.body, format="json" if row.json else "multipart")


def _id(row: Row) -> str:
    return f"{row.method.upper()} {row.path} {row.body.get('action', '')}".strip()


@pytest.mark.django_db
@pytest.mark.parametrize("row", MATRIX, ids=_id)
@pytest.mark.parametrize("actor", ACTORS)
def test_each_page_and_endpoint_answers_each_actor_as_the_table_says(world, row, actor):
    path = row.path.format(**world.ids)
    user = world.people.get(actor)
    before = counts()
    try:
        response = request_as(user, row, path)
        head = get_repository().head()
    finally:
        get_repository().rewind(world.head)

    expected = row.expected[ACTORS.index(actor)]
    assert answer(response) == expected, (actor, row.method, path, response.status_code, response.content[:300])
    if expected in (LOGIN, 401, 403):
        assert counts() == before and head == world.head, "a refused request changed something"


WRITES = [row for row in MATRIX if row.method != "get"]


@pytest.mark.django_db
@pytest.mark.parametrize("row", WRITES, ids=_id)
def test_a_write_from_another_site_with_a_signed_in_cookie_is_refused(world, row):
    """Every write that succeeds for someone is refused when the CSRF token is missing."""
    actor = next(a for a, expected in zip(ACTORS, row.expected) if expected not in (LOGIN, 401, 403))
    client = APIClient(enforce_csrf_checks=True)
    if world.people.get(actor) is not None:
        client.force_login(world.people[actor])
    path = row.path.format(**world.ids)
    before = counts()
    try:
        response = getattr(client, row.method)(path, row.body, format="json" if row.json else "multipart")
        head = get_repository().head()
    finally:
        get_repository().rewind(world.head)

    assert response.status_code == 403, (actor, row.method, path, response.status_code)
    assert counts() == before and head == world.head


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


def test_the_table_covers_every_url():
    routes = {route for route in _routes(get_resolver().url_patterns) if not route.startswith(ADMIN_PREFIX)}
    covered = set()
    for row in MATRIX:
        match = resolve(row.path.format(planned=1, queued=1, planning=1, failed=1, failed_plan=1, run=1, request=1))
        assert match.view_name == row.name, (row.path, match.view_name)
        covered.add(match.route)

    assert routes - covered == set(), "URL patterns the access matrix does not cover"
    assert covered - routes == {ADMIN_PREFIX}


def test_the_table_has_an_answer_for_every_actor():
    assert [row for row in MATRIX if len(row.expected) != len(ACTORS)] == []
