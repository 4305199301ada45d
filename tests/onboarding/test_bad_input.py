"""Bad input never reaches git or the index: 400 naming the field, no commit, no row.

Hostile-looking text that is valid (HCL, shell, HTML) is stored exactly as typed.
"""
import copy
import json

import pytest
from django.conf import settings

from onboarding.models import Product, ReviewEvent
from onboarding.widfile import parse
from onboarding.widrepo import get_repository
from tests.factories import wid_payload

pytestmark = pytest.mark.django_db

SECTION_KEYS = ["value_proposition", "architecture", "integration_points", "data_surfacing"]


@pytest.fixture
def existing(api, member):
    """One valid product already in the repository (this also creates the repository)."""
    response = api(member).post("/api/v1/products/", wid_payload(slug="orders-core"), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


class Unchanged:
    """Remembers the repository head and the index, to assert a refused request changed neither."""

    def __init__(self):
        self.head = get_repository().head()
        self.products = list(Product.objects.order_by("slug").values())
        self.events = list(ReviewEvent.objects.order_by("id").values())

    def check(self):
        assert get_repository().head() == self.head, "a refused request made a commit"
        assert list(Product.objects.order_by("slug").values()) == self.products, "a refused request changed a row"
        assert list(ReviewEvent.objects.order_by("id").values()) == self.events
        assert not get_repository().repo.is_dirty(untracked_files=True), "a refused request left files behind"


@pytest.fixture
def unchanged(existing):
    return Unchanged()


def with_change(path: str, value, **payload_kwargs) -> dict:
    """A valid payload with the value at a dotted path replaced (or removed when value is REMOVE)."""
    data = copy.deepcopy(wid_payload(**payload_kwargs))
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    elif value is REMOVE:
        del target[last]
    else:
        target[last] = value
    return data


REMOVE = object()
LONG_SECTION = "x" * (settings.WID_SECTION_MAX_BYTES + 1)
# Fewer characters than the limit, but more bytes: the limit is in bytes of UTF-8.
LONG_SECTION_IN_BYTES = "é" * (settings.WID_SECTION_MAX_BYTES // 2 + 1)

BAD_CREATE_INPUTS = [
    # slugs
    pytest.param("slug", "../x", "slug", id="slug-with-a-path"),
    pytest.param("slug", "A", "slug", id="slug-uppercase-single-letter"),
    pytest.param("slug", "Customer-churn", "slug", id="slug-with-uppercase"),
    pytest.param("slug", "a" * 60, "slug", id="slug-of-60-characters"),
    pytest.param("slug", "a" * 43, "slug", id="slug-of-43-characters"),
    pytest.param("slug", "a--", "slug", id="slug-ending-with-a-hyphen"),
    pytest.param("slug", "-ab", "slug", id="slug-starting-with-a-hyphen"),
    pytest.param("slug", "1ab", "slug", id="slug-starting-with-a-digit"),
    pytest.param("slug", "ab", "slug", id="slug-too-short"),
    pytest.param("slug", "", "slug", id="slug-empty"),
    pytest.param("slug", "ab c", "slug", id="slug-with-a-space"),
    pytest.param("slug", "ab\nc", "slug", id="slug-with-a-newline"),
    pytest.param("slug", "ab\u0131c", "slug", id="slug-with-a-non-ascii-letter"),
    pytest.param("slug", "ab_c", "slug", id="slug-with-an-underscore"),
    pytest.param("slug", 123, "slug", id="slug-a-number"),
    pytest.param("slug", REMOVE, "slug", id="slug-missing"),
    # domain
    pytest.param("domain", "../etc", "domain", id="domain-with-a-path"),
    pytest.param("domain", "growth/../../etc", "domain", id="domain-with-a-nested-path"),
    pytest.param("domain", "Growth", "domain", id="domain-with-uppercase"),
    pytest.param("domain", REMOVE, "domain", id="domain-missing"),
    # name
    pytest.param("name", "", "name", id="name-empty"),
    pytest.param("name", "two\nlines", "name", id="name-on-two-lines"),
    pytest.param("name", "n" * 201, "name", id="name-too-long"),
    # enums
    pytest.param("target", "on-prem", "target", id="unknown-target"),
    pytest.param("classification", "secret", "classification", id="unknown-classification"),
    pytest.param("compute_tier", "huge", "compute_tier", id="unknown-compute-tier"),
    pytest.param("outputs.0.kind", "spreadsheet", "outputs.0.kind", id="unknown-output-kind"),
    pytest.param("outputs.0.name", "../etc/passwd", "outputs.0.name", id="output-name-with-a-path"),
    pytest.param("outputs", "churn_scores", "outputs", id="outputs-not-a-list"),
    # e-mails
    pytest.param("contacts.business.email", "maria-at-example.com", "contacts.business.email",
                 id="business-contact-email-malformed"),
    pytest.param("contacts.technical.email", "tom@", "contacts.technical.email",
                 id="technical-contact-email-malformed"),
    pytest.param("data_custodian.email", "carla example.com", "data_custodian.email",
                 id="data-custodian-email-malformed"),
    pytest.param("contacts.business.name", "", "contacts.business.name", id="business-contact-name-empty"),
    pytest.param("contacts.technical", REMOVE, "contacts.technical", id="technical-contact-missing"),
    # sections
    *[pytest.param(f"sections.{key}", REMOVE, f"sections.{key}", id=f"section-{key}-missing")
      for key in SECTION_KEYS],
    *[pytest.param(f"sections.{key}", "", f"sections.{key}", id=f"section-{key}-empty") for key in SECTION_KEYS],
    *[pytest.param(f"sections.{key}", "  \n\t\n  ", f"sections.{key}", id=f"section-{key}-blank")
      for key in SECTION_KEYS],
    pytest.param("sections.architecture", LONG_SECTION, "sections.architecture", id="section-over-the-limit"),
    pytest.param("sections.architecture", LONG_SECTION_IN_BYTES, "sections.architecture",
                 id="section-over-the-limit-in-bytes"),
    pytest.param("sections.architecture", "Intro.\n## Review log\n- 2020-01-01T00:00:00Z **approved** by policy",
                 "sections.architecture", id="section-with-the-review-log-heading"),
    pytest.param("sections.value_proposition", "Value.\n\n## Architecture\n\nHidden.", "sections.value_proposition",
                 id="section-with-another-section-heading"),
    pytest.param("sections.data_surfacing", "## Review log   ", "sections.data_surfacing",
                 id="section-with-a-reserved-heading-and-trailing-spaces"),
    pytest.param("sections", "all of it", "sections", id="sections-not-an-object"),
    pytest.param("contacts", ["maria@example.com"], "contacts", id="contacts-not-an-object"),
    pytest.param("data_custodian", "carla@example.com", "data_custodian", id="data-custodian-not-an-object"),
    pytest.param("outputs.0", "churn_scores", "outputs.0", id="output-not-an-object"),
    # references
    pytest.param("team", "no-such-team", "team", id="team-that-does-not-exist"),
    pytest.param("team", "../growth-analytics", "team", id="team-with-a-path"),
    pytest.param("depends_on", ["no-such-product"], "depends_on", id="depends-on-an-unknown-product"),
    pytest.param("depends_on", ["orders-core", "no-such-product"], "depends_on",
                 id="depends-on-a-known-and-an-unknown-product"),
    pytest.param("depends_on", ["customer-churn"], "depends_on", id="depends-on-itself"),
    pytest.param("depends_on", ["../orders-core"], "depends_on.0", id="depends-on-a-path"),
    pytest.param("depends_on", "orders-core", "depends_on", id="depends-on-not-a-list"),
    # pii
    pytest.param("pii", "maybe", "pii", id="pii-a-word"),
    pytest.param("pii", None, "pii", id="pii-null"),
    pytest.param("pii", 2, "pii", id="pii-a-number"),
    pytest.param("pii", [True], "pii", id="pii-a-list"),
    pytest.param("pii", REMOVE, "pii", id="pii-missing"),
]


@pytest.mark.parametrize("path, value, error_key", BAD_CREATE_INPUTS)
def test_a_bad_create_answers_400_naming_the_field_and_changes_nothing(api, member, unchanged, path, value, error_key):
    response = api(member).post("/api/v1/products/", with_change(path, value), format="json")

    assert response.status_code == 400, response.json()
    body = response.json()
    assert error_key in body["errors"], body
    assert all(isinstance(m, str) and m for m in body["errors"][error_key])
    assert body["detail"]
    unchanged.check()
    assert not Product.objects.filter(slug="customer-churn").exists()


def test_every_bad_field_of_one_request_is_named_at_once(api, member, unchanged):
    data = wid_payload(slug="../x", target="moon", compute_tier="huge")
    data["contacts"]["technical"]["email"] = "nope"
    data["sections"]["architecture"] = ""

    response = api(member).post("/api/v1/products/", data, format="json")

    assert response.status_code == 400
    assert {"slug", "target", "compute_tier", "contacts.technical.email", "sections.architecture"} <= set(
        response.json()["errors"]
    )
    unchanged.check()


def test_a_duplicate_slug_answers_400_and_changes_nothing(api, member, unchanged):
    response = api(member).post("/api/v1/products/", wid_payload(slug="orders-core", domain="other"), format="json")

    assert response.status_code == 400
    assert "slug" in response.json()["errors"]
    unchanged.check()
    assert Product.objects.get(slug="orders-core").domain == "growth"


def test_a_duplicate_slug_in_the_same_domain_answers_400_and_changes_nothing(api, member, unchanged):
    response = api(member).post("/api/v1/products/", wid_payload(slug="orders-core", name="Again"), format="json")

    assert response.status_code == 400
    assert "slug" in response.json()["errors"]
    unchanged.check()


@pytest.mark.parametrize("field", ["slug", "domain"])
def test_whitespace_around_a_slug_never_reaches_the_file_path(api, member, existing, field):
    value = {"slug": "padded-slug", "domain": "padded-domain"}[field]

    data = wid_payload(slug="padded-slug")
    data[field] = f"  {value}\n"

    response = api(member).post("/api/v1/products/", data, format="json")

    if response.status_code == 201:
        assert response.json()[field] == value
        assert response.json()["path"] == f"wids/{response.json()['domain']}/padded-slug.md"
        assert get_repository().read(response.json()["path"]) is not None
    else:
        assert response.status_code == 400 and field in response.json()["errors"]
    assert all(p == p.strip() for p in get_repository().tracked_files("wids"))


@pytest.mark.parametrize("domain, slug", [
    ("growth", "abc\n"), ("growth\n", "abc"), ("growth", "../abc"), ("..", "abc"), ("growth", "ab"),
])
def test_the_file_path_of_a_wid_refuses_anything_but_slugs(domain, slug):
    from onboarding.widfile import wid_path

    with pytest.raises(ValueError):
        wid_path(domain, slug)


@pytest.mark.parametrize("body", [
    pytest.param("[1, 2]", id="a-json-list"),
    pytest.param('"just a string"', id="a-json-string"),
    pytest.param("{not json", id="malformed-json"),
    pytest.param("", id="empty"),
])
def test_a_create_body_that_is_not_a_json_object_answers_400(api, member, unchanged, body):
    response = api(member).post("/api/v1/products/", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"]
    unchanged.check()


def test_a_request_body_over_the_upload_limit_answers_400_naming_the_body(api, member, unchanged):
    data = wid_payload()
    filler = "y" * (100 * 1024)  # each section stays under its own limit
    data["sections"] = {key: filler for key in SECTION_KEYS}
    data["name"] = "Big"
    data["outputs"] = [{"name": f"o{i}", "kind": "table"} for i in range(100)]
    data["extra"] = "z" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    body = json.dumps(data)
    assert len(body.encode()) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = api(member).post("/api/v1/products/", body, content_type="application/json")

    assert response.status_code == 400
    assert "body" in response.json()["errors"]
    unchanged.check()
    assert not Product.objects.filter(slug="customer-churn").exists()


def test_a_patch_body_over_the_upload_limit_answers_400_naming_the_body(api, member, unchanged):
    body = json.dumps({"version": 1, "name": "Big", "junk": "z" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})

    response = api(member).patch("/api/v1/products/orders-core/", body, content_type="application/json")

    assert response.status_code == 400
    assert "body" in response.json()["errors"]
    unchanged.check()


def test_a_lifecycle_body_over_the_upload_limit_answers_400_naming_the_body(api, member, unchanged):
    body = json.dumps({"comment": "z" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})

    response = api(member).post("/api/v1/products/orders-core/submit/", body, content_type="application/json")

    assert response.status_code == 400
    assert "body" in response.json()["errors"]
    unchanged.check()
    assert Product.objects.get(slug="orders-core").status == "draft"


BAD_PATCHES = [
    pytest.param({"contacts": {"business": {"email": "not-an-email"}}}, "contacts.business.email",
                 id="business-contact-email-malformed"),
    pytest.param({"contacts": {"technical": {"email": "@example.com"}}}, "contacts.technical.email",
                 id="technical-contact-email-malformed"),
    pytest.param({"data_custodian": {"email": "carla"}}, "data_custodian.email", id="data-custodian-email-malformed"),
    pytest.param({"target": "on-prem"}, "target", id="unknown-target"),
    pytest.param({"classification": "secret"}, "classification", id="unknown-classification"),
    pytest.param({"compute_tier": "huge"}, "compute_tier", id="unknown-compute-tier"),
    pytest.param({"outputs": [{"name": "x", "kind": "spreadsheet"}]}, "outputs.0.kind", id="unknown-output-kind"),
    pytest.param({"pii": "maybe"}, "pii", id="pii-not-a-boolean"),
    pytest.param({"name": ""}, "name", id="name-empty"),
    pytest.param({"sections": {"architecture": "   "}}, "sections.architecture", id="blank-section"),
    pytest.param({"sections": {"architecture": None}}, "sections.architecture", id="null-section"),
    pytest.param({"sections": {"integration_points": LONG_SECTION}}, "sections.integration_points",
                 id="section-over-the-limit"),
    pytest.param({"sections": {"data_surfacing": "a\n## Review log\nb"}}, "sections.data_surfacing",
                 id="section-with-a-reserved-heading"),
    pytest.param({"team": "no-such-team"}, "team", id="team-that-does-not-exist"),
    pytest.param({"depends_on": ["no-such-product"]}, "depends_on", id="depends-on-an-unknown-product"),
    pytest.param({"depends_on": ["orders-core"]}, "depends_on", id="depends-on-itself"),
    pytest.param({"slug": "renamed"}, "slug", id="changing-the-slug"),
    pytest.param({"domain": "elsewhere"}, "domain", id="changing-the-domain"),
    pytest.param({"domain": "../etc"}, "domain", id="domain-with-a-path"),
    pytest.param({"version": "1"}, "version", id="version-a-string"),
    pytest.param({"version": True}, "version", id="version-a-boolean"),
    pytest.param({"version": None}, "version", id="version-null"),
]


@pytest.mark.parametrize("changes, error_key", BAD_PATCHES)
def test_a_bad_patch_answers_400_naming_the_field_and_changes_nothing(api, member, unchanged, changes, error_key):
    response = api(member).patch("/api/v1/products/orders-core/", {"version": 1, **changes}, format="json")

    assert response.status_code == 400, response.json()
    assert error_key in response.json()["errors"], response.json()
    unchanged.check()
    assert Product.objects.get(slug="orders-core").version == 1


@pytest.mark.parametrize("body", [
    pytest.param("[1, 2]", id="a-json-list"),
    pytest.param("{not json", id="malformed-json"),
])
def test_a_patch_body_that_is_not_a_json_object_answers_400(api, member, unchanged, body):
    response = api(member).patch("/api/v1/products/orders-core/", body, content_type="application/json")

    assert response.status_code == 400
    unchanged.check()


def test_a_bad_patch_after_a_good_one_leaves_the_good_one_in_place(api, member, existing):
    assert api(member).patch("/api/v1/products/orders-core/", {"version": 1, "name": "Orders"},
                             format="json").status_code == 200
    snapshot = Unchanged()

    response = api(member).patch(
        "/api/v1/products/orders-core/", {"version": 2, "data_custodian": {"email": "nope"}}, format="json"
    )

    assert response.status_code == 400
    assert "data_custodian.email" in response.json()["errors"]
    snapshot.check()
    product = api(member).get("/api/v1/products/orders-core/").json()
    assert (product["version"], product["name"], product["data_custodian"]["email"]) == (2, "Orders",
                                                                                          "carla@example.com")


# --- hostile-looking text is just text -------------------------------------------------------------
HCL = 'resource "x" { a = "${file("/etc/passwd")}" }'
SHELL = "$(rm -rf /); `echo hi`"
HTML = "<script>alert(1)</script>"
MARKDOWN = "[link](javascript:alert(1)) ![img](x \"y\") *a* _b_ \\ \\\\ # not a heading {{ template }} {% tag %}"
YAML = "---\nkey: value\n...\n--- !!python/object:os.system"


@pytest.mark.parametrize("text", [
    pytest.param(HCL, id="hcl"),
    pytest.param(SHELL, id="shell"),
    pytest.param(HTML, id="html"),
    pytest.param(MARKDOWN, id="markdown"),
])
def test_text_that_looks_like_code_in_the_name_is_stored_verbatim(api, member, text):
    response = api(member).post("/api/v1/products/", wid_payload(name=text), format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["name"] == text
    markdown = api(member).get("/api/v1/products/customer-churn/markdown/")
    assert markdown.status_code == 200
    assert parse(markdown.content.decode()).meta["name"] == text
    stored = get_repository().read("wids/growth/customer-churn.md")
    assert parse(stored).meta["name"] == text
    assert Product.objects.get(slug="customer-churn").name == text


@pytest.mark.parametrize("text", [
    pytest.param(HCL, id="hcl"),
    pytest.param(SHELL, id="shell"),
    pytest.param(HTML, id="html"),
    pytest.param(MARKDOWN, id="markdown"),
    pytest.param(YAML, id="yaml-front-matter-markers"),
    pytest.param(f"{HCL}\n\n    {SHELL}\n  {HTML}\n\n\n## Not reserved: Review log\n ## Review log", id="mixed"),
])
def test_text_that_looks_like_code_in_sections_is_stored_verbatim(api, member, text):
    sections = {key: f"{key}: {text}" for key in SECTION_KEYS}
    sections["architecture"] = text

    response = api(member).post("/api/v1/products/", wid_payload(sections=sections), format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["sections"] == sections
    markdown = api(member).get("/api/v1/products/customer-churn/markdown/").content.decode()
    assert text in markdown
    assert parse(markdown).sections == sections
    assert parse(get_repository().read("wids/growth/customer-churn.md")).sections == sections
    assert Product.objects.get(slug="customer-churn").sections == sections


def test_text_that_looks_like_code_survives_a_patch_and_a_review_comment(api, member, platform):
    api(member).post("/api/v1/products/", wid_payload(), format="json")
    comment = f"{HTML}\n{SHELL}\n\n  {HCL}"

    patched = api(member).patch(
        "/api/v1/products/customer-churn/", {"version": 1, "name": SHELL, "sections": {"architecture": HCL}},
        format="json",
    )
    api(member).post("/api/v1/products/customer-churn/submit/", {"comment": comment}, format="json")
    decided = api(platform).post("/api/v1/products/customer-churn/request-changes/", {"comment": comment},
                                 format="json")

    assert patched.status_code == 200 and decided.status_code == 200
    doc = parse(api(member).get("/api/v1/products/customer-churn/markdown/").content.decode())
    assert doc.meta["name"] == SHELL
    assert doc.sections["architecture"] == HCL
    assert [r.comment for r in doc.reviews] == [comment, comment]
    assert [e["comment"] for e in decided.json()["review_log"]] == [comment, comment]
