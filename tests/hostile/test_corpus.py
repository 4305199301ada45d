"""Hostile input over every field of every write endpoint and form: never a 5xx; a refusal is a
400 naming the field and changes nothing (git head, rows); what is accepted reads back as sent
after the documented clean-up, through the API and /markdown/, and shows escaped on the page."""
import copy
import json

import pytest
from django.test import Client

from onboarding.models import Product
from onboarding.widfile import parse
from onboarding.widrepo import get_repository
from tests.factories import wid_payload
from tests.hostile.conftest import Snapshot
from tests.hostile.corpus import (
    BIDI, INJECTIONS, KEPT_IN_TEXT, MULTILINE_INJECTIONS, NOT_IN_A_LINE, cleaned, cleaned_comment, name_of,
)

pytestmark = pytest.mark.django_db

PRODUCT = "/api/v1/products/orders-core/"
NEW = "customer-churn"


def with_change(path: str, value) -> dict:
    data = copy.deepcopy(wid_payload(slug=NEW))
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last):int(last) + 1] = [value]
    else:
        target[last] = value
    return data


def refused(response, field: str | None, snapshot: Snapshot) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:500])
    body = response.json()
    assert body["detail"]
    if field is not None:
        assert field in body["errors"], body
        assert all(isinstance(m, str) and m for m in body["errors"][field])
    snapshot.unchanged()


# --- single-line fields refuse control, separator and bidi characters --------------------------
SINGLE_LINE_FIELDS = {
    "slug": NEW, "domain": "growth", "team": "growth-analytics", "contacts.business.name": "Maria Business",
    "contacts.business.email": "maria@example.com", "contacts.technical.name": "Tom Technical",
    "contacts.technical.email": "tom@example.com", "data_custodian.name": "Carla Custodian",
    "data_custodian.email": "carla@example.com", "outputs.0.name": "churn_scores", "depends_on.0": "orders-core",
    "schedule": "0 6 * * *", "outputs.0.freshness": "24h",
}
LINE_CASES = [
    pytest.param("name", f"Customer{char}churn", id=f"name-{name_of(char)}") for char in NOT_IN_A_LINE
] + [
    # At the end, where DRF's trimming would silently drop the whitespace-like ones (U+001C, U+2028).
    pytest.param(field, f"{value}{char}", id=f"{field}-{name_of(char)}")
    for offset, (field, value) in enumerate(SINGLE_LINE_FIELDS.items())
    for char in NOT_IN_A_LINE[offset::20]
]


@pytest.mark.parametrize("field, value", LINE_CASES)
def test_a_single_line_field_with_a_control_character_is_refused_naming_it(api, member, existing, field, value):
    snapshot = Snapshot()
    refused(api(member).post("/api/v1/products/", with_change(field, value), format="json"), field, snapshot)


@pytest.mark.parametrize("char", BIDI + ["\u2028", "\x1b", "\x85"], ids=name_of)
def test_a_patched_name_with_a_control_character_is_refused(api, member, existing, char):
    snapshot = Snapshot()
    response = api(member).patch(PRODUCT, {"version": 1, "name": f"Orders{char}"}, format="json")
    refused(response, "name", snapshot)


@pytest.mark.parametrize("field, value", [
    *[pytest.param("name", f"Team{char}", id=f"team-name-{name_of(char)}") for char in NOT_IN_A_LINE[::4]],
    pytest.param("slug", "new-team\u2028", id="team-slug-line-separator"),
    pytest.param("slug", "new-team\x1c", id="team-slug-file-separator"),
    pytest.param("slug", "new\u202eteam", id="team-slug-bidi-override"),
    pytest.param("slug", "../new-team", id="team-slug-path"),
    pytest.param("slug", "nеw-team", id="team-slug-cyrillic-look-alike"),
])
def test_a_team_with_a_control_character_is_refused(api, member, team, field, value):
    snapshot = Snapshot()
    body = {"slug": "new-team", "name": "New team", field: value}
    refused(api(member).post("/api/v1/teams/", body, format="json"), field, snapshot)


@pytest.mark.parametrize("username", ["alice\u2028", "ali\x00ce", "\u202ealice", "alice\x1f", "alice\x85"],
                         ids=["line-separator", "nul", "bidi", "unit-separator", "next-line"])
def test_a_member_name_with_a_control_character_is_refused(api, owner, member, username):
    snapshot = Snapshot()
    response = api(owner).post("/api/v1/teams/growth-analytics/members/", {"username": username}, format="json")
    refused(response, "username", snapshot)


# --- multi-line text keeps what it is sent -------------------------------------------------------
def assert_section_reads_back(api, user, text: str) -> None:
    expected = cleaned(text)
    product = api(user).get(f"/api/v1/products/{NEW}/").json()
    assert product["sections"]["architecture"] == expected
    markdown = api(user).get(f"/api/v1/products/{NEW}/markdown/").content.decode()
    assert parse(markdown).sections["architecture"] == expected
    assert Product.objects.get(slug=NEW).sections["architecture"] == expected
    client = Client()
    client.force_login(user)
    page = client.get(f"/products/{NEW}/")
    assert page.status_code == 200
    assert b"<script>" not in page.content.split(b"</head>", 1)[1].replace(b'<script src', b"")


def groups(chars: list[str], size: int) -> list:
    return [pytest.param("".join(chars[i:i + size]), id="+".join(name_of(c) for c in chars[i:i + size]))
            for i in range(0, len(chars), size)]


@pytest.mark.parametrize("chars", groups(KEPT_IN_TEXT, 4))
def test_a_section_keeps_every_control_character_it_is_sent(api, member, chars):
    text = "".join(f"First{char}line\n{char}second line{char}middle\n\n" for char in chars) + "last"
    sections = {**wid_payload()["sections"], "architecture": text}
    response = api(member).post("/api/v1/products/", wid_payload(slug=NEW, sections=sections), format="json")
    assert response.status_code == 201, response.json()
    assert_section_reads_back(api, member, text)


@pytest.mark.parametrize("text", [*INJECTIONS.values(), *MULTILINE_INJECTIONS.values()],
                         ids=[*INJECTIONS, *MULTILINE_INJECTIONS])
def test_a_section_that_looks_like_code_is_stored_as_text(api, member, text):
    sections = {**wid_payload()["sections"], "architecture": f"Intro.\n{text}"}
    response = api(member).post("/api/v1/products/", wid_payload(slug=NEW, sections=sections), format="json")
    assert response.status_code == 201, response.json()
    assert_section_reads_back(api, member, f"Intro.\n{text}")
    assert api(member).get(f"/api/v1/products/{NEW}/").json()["status"] == "draft"


@pytest.mark.parametrize("text", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_a_name_that_looks_like_code_is_stored_as_text(api, member, text):
    response = api(member).post("/api/v1/products/", wid_payload(slug=NEW, name=text), format="json")
    assert response.status_code == 201, response.json()
    stored = api(member).get(f"/api/v1/products/{NEW}/").json()
    assert stored["name"] == text.strip() and stored["status"] == "draft" and stored["version"] == 1
    assert parse(get_repository().read(f"wids/growth/{NEW}.md")).meta["name"] == text.strip()


@pytest.mark.parametrize("chars", groups(KEPT_IN_TEXT, 8))
def test_a_comment_keeps_every_control_character_and_history_stays_whole(api, member, existing, chars):
    comment = "Looks" + "".join(f"{char}good\nsecond{char}line" for char in chars)
    response = api(member).post(f"{PRODUCT}submit/", {"comment": comment}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["review_log"][-1]["comment"] == cleaned_comment(comment)
    doc = parse(api(member).get(f"{PRODUCT}markdown/").content.decode())
    assert doc.reviews[-1].comment == cleaned_comment(comment)
    history = api(member).get(f"{PRODUCT}history/").json()
    assert [c["version"] for c in history] == [2, 1]
    assert history[0]["message"].startswith("Submit orders-core: Looks")
    assert not any(c in history[0]["message"] for c in NOT_IN_A_LINE)


@pytest.mark.parametrize("text", MULTILINE_INJECTIONS.values(), ids=MULTILINE_INJECTIONS.keys())
def test_a_decision_comment_that_looks_like_code_is_stored_as_text(api, platform, submitted, text):
    response = api(platform).post(f"{PRODUCT}request-changes/", {"comment": text}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "changes_requested"
    assert response.json()["review_log"][-1]["comment"] == cleaned_comment(text)


# --- what no text can hold, wrong types, unknown and duplicate keys --------------------------------
def raw(data) -> str:
    return json.dumps(data)  # ASCII escapes: a lone surrogate travels as \ud800


BAD_CREATES = [
    pytest.param(raw(with_change("sections.architecture", "a\x00b")), "sections.architecture", id="section-nul"),
    pytest.param(raw(with_change("sections.architecture", "a\ud800b")), "sections.architecture",
                 id="section-lone-surrogate"),
    pytest.param(raw(with_change("name", "a\ud800b")), "name", id="name-lone-surrogate"),
    pytest.param(raw(with_change("name", 5)), "name", id="name-a-number"),
    pytest.param(raw(with_change("name", ["x"])), "name", id="name-a-list"),
    pytest.param(raw(with_change("name", {"x": 1})), "name", id="name-an-object"),
    pytest.param(raw(with_change("name", True)), "name", id="name-a-boolean"),
    pytest.param(raw(with_change("name", None)), "name", id="name-null"),
    pytest.param(raw(with_change("name", "n" * 10_000)), "name", id="name-of-10000-characters"),
    pytest.param(raw(with_change("slug", 12345)), "slug", id="slug-a-number"),
    pytest.param(raw(with_change("slug", "оrders-core")), "slug", id="slug-cyrillic-look-alike"),
    pytest.param(raw(with_change("slug", "orders\u2011core")), "slug", id="slug-non-breaking-hyphen"),
    pytest.param(raw(with_change("domain", "growth/../../etc")), "domain", id="domain-path"),
    pytest.param(raw(with_change("domain", "..")), "domain", id="domain-dot-dot"),
    pytest.param(raw(with_change("team", "growth-analytics/..")), "team", id="team-path"),
    pytest.param(raw(with_change("depends_on.0", "../orders-core")), "depends_on.0", id="depends-on-path"),
    pytest.param(raw(with_change("depends_on", [5])), "depends_on.0", id="depends-on-a-number"),
    pytest.param(raw(with_change("depends_on", {"a": "b"})), "depends_on", id="depends-on-an-object"),
    pytest.param(raw(with_change("outputs.0.name", "x; rm -rf /")), "outputs.0.name", id="output-name-shell"),
    pytest.param(raw(with_change("outputs.0.name", "${var.x}")), "outputs.0.name", id="output-name-hcl"),
    pytest.param(raw(with_change("outputs", {"name": "x"})), "outputs", id="outputs-an-object"),
    pytest.param(raw(with_change("outputs.0.checks", {"not_null": ["id; DROP TABLE x"]})), "outputs.0.checks.not_null.0",
                 id="check-column-sql"),
    pytest.param(raw(with_change("outputs.0.checks", {"unique": ["${var.x}"]})), "outputs.0.checks.unique.0",
                 id="check-column-hcl"),
    pytest.param(raw(with_change("schedule", "0 6 * * *; rm -rf /")), "schedule", id="schedule-shell"),
    pytest.param(raw({**wid_payload(slug=NEW), "ingestion": "spreadsheet", "source": {"name": "../../etc"}}),
                 "source.name", id="source-name-path"),
    pytest.param(raw({**wid_payload(slug=NEW), "ingestion": "spreadsheet",
                      "source": {"name": "share", "path": "/mnt/share"}}), "source.path", id="source-path"),
    pytest.param(raw({**wid_payload(slug=NEW), "ingestion": "database_extract",
                      "source": {"name": "erp", "table": "a.b", "url": "postgres://u:p@h/db"}}), "source.url",
                 id="source-connection-string"),
    pytest.param(raw({**wid_payload(slug=NEW), "ingestion": "database_extract",
                      "source": {"name": "erp", "table": "a.b; DROP TABLE x"}}), "source.table", id="source-table-sql"),
    pytest.param(raw({**wid_payload(slug=NEW), "ingestion": "database_extract",
                      "source": {"name": "erp", "query": "SELECT 1; COPY x TO PROGRAM 'sh'"}}), "source.query",
                 id="source-query-two-statements"),
    pytest.param(raw({**wid_payload(slug=NEW), "ingestion": "database_extract",
                      "source": {"name": "erp", "query": "SELECT a\ud800"}}), "source.query",
                 id="source-query-lone-surrogate"),
    pytest.param(raw({**wid_payload(slug=NEW), "triggers": {"on_upstream": "orders-core"}}), "triggers.on_upstream",
                 id="triggers-upstream-a-string"),
    pytest.param(raw({**wid_payload(slug=NEW), "suspended": True}), "suspended", id="suspended-on-create"),
    pytest.param(raw(with_change("sections.architecture", 5)), "sections.architecture", id="section-a-number"),
    pytest.param(raw(with_change("sections.architecture", ["a"])), "sections.architecture", id="section-a-list"),
    pytest.param(raw(with_change("contacts.business", "maria")), "contacts.business", id="contact-a-string"),
    pytest.param(raw(with_change("contacts.business.email", 5)), "contacts.business.email", id="email-a-number"),
    pytest.param(raw(with_change("contacts.business.email", "a@b.c\u202e")), "contacts.business.email",
                 id="email-bidi"),
    pytest.param(raw(with_change("pii", "true")), "pii", id="pii-a-string"),
    pytest.param(raw(with_change("pii", 1)), "pii", id="pii-one"),
    pytest.param(raw(with_change("target", ["local"])), "target", id="target-a-list"),
    pytest.param(raw(with_change("classification", "public\n")), "classification", id="classification-newline"),
    pytest.param(raw({**wid_payload(slug=NEW), "owner": "mallory"}), "owner", id="unknown-top-level-key"),
    pytest.param(raw({**wid_payload(slug=NEW), "status": "approved"}), "status", id="status-on-create"),
    pytest.param(raw({**wid_payload(slug=NEW), "version": 7}), "version", id="version-on-create"),
    pytest.param(raw(with_change("contacts.business", {"name": "M", "email": "m@x.io", "phone": "1"})),
                 "contacts.business.phone", id="unknown-nested-key"),
    pytest.param(raw(with_change("sections", {**wid_payload()["sections"], "secrets": "x"})), "sections.secrets",
                 id="unknown-section"),
    pytest.param(raw(with_change("outputs", [{"name": "a", "kind": "table", "format": "csv"}])),
                 "outputs.0.format", id="unknown-output-key"),
    pytest.param(raw(with_change("data_custodian", {"name": "C", "email": "c@x.io", "role": "x"})),
                 "data_custodian.role", id="unknown-custodian-key"),
    pytest.param('{"slug": "a-b-c", "slug": "customer-churn"}', "slug", id="duplicate-key"),
    pytest.param(raw(wid_payload(slug=NEW))[:-1] + ', "name": "Second"}', "name", id="duplicate-name-last"),
    pytest.param(raw(wid_payload(slug=NEW)).replace('"business": {', '"business": {"name": "X", ', 1),
                 "name", id="duplicate-nested-key"),
    pytest.param("[" * 100_000 + "]" * 100_000, None, id="json-nested-100000-deep"),
    pytest.param('{"a": ' * 50_000 + "1" + "}" * 50_000, None, id="json-objects-nested-50000-deep"),
    pytest.param('{"version": 1e999}', None, id="json-infinity"),
    pytest.param('{"version": NaN}', None, id="json-nan"),
    pytest.param('{"version": ' + "9" * 5000 + "}", None, id="json-huge-integer"),
    pytest.param(b'{"name": "\xff\xfe"}', None, id="json-invalid-utf8"),
    pytest.param("null", None, id="json-null"),
    pytest.param("", None, id="empty-body"),
    *[pytest.param(raw(with_change("sections.architecture", text)), "sections.architecture", id=f"section-{name}")
      for name, text in {
          "brackets-4000": "[" * 4000, "links-3000": "[a](" * 3000, "images-3000": "![" * 3000,
          "emphasis-run": "*" * 5000 + "x" + "*" * 5000, "quotes-run": ">" * 5000, "quotes-spaced": "> " * 100 + "x",
          "lists-nested-100": "\n".join("    " * i + "- x" for i in range(100)),
          "numbered-nested": "1. " * 1000, "quotes-and-lists": "> - " * 1000,
          "over-the-limit": "x" * (256 * 1024 + 1),
      }.items()],
]


@pytest.mark.parametrize("body, field", BAD_CREATES)
def test_a_hostile_create_is_refused_naming_the_field(api, member, existing, body, field):
    snapshot = Snapshot()
    response = api(member).generic("POST", "/api/v1/products/", body, content_type="application/json")
    refused(response, field, snapshot)
    assert not Product.objects.filter(slug=NEW).exists()


BAD_PATCHES = [
    pytest.param({"version": 1, "statuss": "approved"}, "statuss", id="unknown-key"),
    pytest.param({"version": 1, "status": "approved"}, "status", id="read-only-status-changed"),
    pytest.param({"version": 1, "head_sha": "0" * 40}, "head_sha", id="read-only-head-changed"),
    pytest.param({"version": 1, "review_log": [{"action": "approved"}]}, "review_log", id="read-only-log-forged"),
    pytest.param({"version": 1, "path": "wids/../../etc/passwd"}, "path", id="read-only-path-changed"),
    pytest.param({"version": 1, "url": "/api/v1/products/other/"}, "url", id="read-only-url-changed"),
    pytest.param({"version": 1, "sections": {"architecture": "x", "extra": "y"}}, "sections.extra",
                 id="unknown-section"),
    pytest.param({"version": 1, "contacts": {"business": {"phone": "1"}}}, "contacts.business.phone",
                 id="unknown-nested-key"),
    pytest.param({"version": "1"}, "version", id="version-a-string"),
    pytest.param({"version": [1]}, "version", id="version-a-list"),
    pytest.param({"version": 1.5}, "version", id="version-a-fraction"),
    pytest.param({"version": 1, "name": 7}, "name", id="name-a-number"),
    pytest.param({"version": 1, "pii": "false"}, "pii", id="pii-a-string"),
    pytest.param({"version": 1, "name": "a\x00b"}, "name", id="name-nul"),
    pytest.param({"version": 1, "sections": {"architecture": "a\x00b"}}, "sections.architecture", id="section-nul"),
    pytest.param({"version": 1, "sections": {"architecture": "[" * 4000}}, "sections.architecture",
                 id="section-too-costly"),
    pytest.param({"version": 1, "depends_on": ["orders-core\u2028"]}, "depends_on.0", id="depends-on-separator"),
    pytest.param('{"version": 1, "version": 1, "name": "x"}', "version", id="duplicate-version"),
    pytest.param('{"version": 1, "sections": {"architecture": "a", "architecture": "b"}}', "architecture",
                 id="duplicate-nested-section"),
]


@pytest.mark.parametrize("body, field", BAD_PATCHES)
def test_a_hostile_patch_is_refused_naming_the_field(api, member, existing, body, field):
    snapshot = Snapshot()
    body = body if isinstance(body, str) else raw(body)
    refused(api(member).generic("PATCH", PRODUCT, body, content_type="application/json"), field, snapshot)


LIFECYCLE = ["submit", "approve", "reject", "request-changes", "deprecate", "suspend", "resume"]
BAD_COMMENTS = [
    pytest.param(raw({"comment": "a\x00b"}), "comment", id="nul"),
    pytest.param(raw({"comment": "a\udc00b"}), "comment", id="lone-surrogate"),
    pytest.param(raw({"comment": 5}), "comment", id="a-number"),
    pytest.param(raw({"comment": ["why"]}), "comment", id="a-list"),
    pytest.param(raw({"comment": {"text": "why"}}), "comment", id="an-object"),
    pytest.param(raw({"comment": "why", "force": True}), "force", id="unknown-key"),
    pytest.param('{"comment": "a", "comment": "b"}', "comment", id="duplicate-key"),
    pytest.param(raw(["why"]), "body", id="a-list-body"),
]


@pytest.mark.parametrize("action", LIFECYCLE)
@pytest.mark.parametrize("body, field", BAD_COMMENTS)
def test_a_hostile_comment_is_refused_naming_it(api, member, platform, submitted, action, body, field):
    user = member if action == "submit" else platform
    snapshot = Snapshot()
    response = api(user).generic("POST", f"{PRODUCT}{action}/", body, content_type="application/json")
    refused(response, field, snapshot)


@pytest.mark.parametrize("body, field", [
    pytest.param(raw({"action": "plan; rm -rf /"}), "action", id="shell"),
    pytest.param(raw({"action": "PLAN"}), "action", id="upper-case"),
    pytest.param(raw({"action": "plan\u2028"}), "action", id="line-separator"),
    pytest.param(raw({"action": ["plan"]}), "action", id="a-list"),
    pytest.param(raw({"action": {"plan": 1}}), "action", id="an-object"),
    pytest.param(raw({"action": None}), "action", id="null"),
    pytest.param(raw({"action": "plan", "target": "aws"}), "target", id="unknown-key"),
    pytest.param('{"action": "plan", "action": "destroy"}', "action", id="duplicate-key"),
    pytest.param(raw("plan"), "body", id="a-string-body"),
])
def test_a_hostile_job_request_is_refused_naming_the_field(api, member, existing, body, field):
    snapshot = Snapshot()
    response = api(member).generic("POST", f"{PRODUCT}jobs/", body, content_type="application/json")
    refused(response, field, snapshot)


@pytest.mark.parametrize("body", [raw({"x": "\u202e"}), '{"a": 1, "a": 2}', "[" * 50_000, raw("x" * 10_000)],
                         ids=["bidi", "duplicate-key", "deep", "long-string"])
def test_a_hostile_run_request_never_answers_5xx_and_starts_nothing(api, member, existing, body):
    snapshot = Snapshot()
    response = api(member).generic("POST", f"{PRODUCT}runs/", body, content_type="application/json")
    assert 400 <= response.status_code < 500, response.content
    snapshot.unchanged()


@pytest.mark.parametrize("body, field", [
    pytest.param(raw({"slug": "new-team", "name": "N", "owner": "x"}), "owner", id="unknown-key"),
    pytest.param(raw({"slug": "new-team", "name": 5}), "name", id="name-a-number"),
    pytest.param(raw({"slug": ["new-team"], "name": "N"}), "slug", id="slug-a-list"),
    pytest.param('{"slug": "new-team", "name": "A", "name": "B"}', "name", id="duplicate-key"),
    pytest.param(raw({"slug": "new-team", "name": "a\ud800"}), "name", id="name-lone-surrogate"),
])
def test_a_hostile_team_request_is_refused_naming_the_field(api, member, team, body, field):
    snapshot = Snapshot()
    refused(api(member).generic("POST", "/api/v1/teams/", body, content_type="application/json"), field, snapshot)


@pytest.mark.parametrize("body, field", [
    pytest.param(raw({"username": "alice", "role": "admin"}), "role", id="unknown-role"),
    pytest.param(raw({"username": "alice", "role": "owner", "is_superuser": True}), "is_superuser",
                 id="unknown-key"),
    pytest.param(raw({"username": 5}), "username", id="username-a-number"),
    pytest.param('{"username": "alice", "role": "member", "role": "owner"}', "role", id="duplicate-key"),
])
def test_a_hostile_member_request_is_refused_naming_the_field(api, owner, member, body, field):
    snapshot = Snapshot()
    response = api(owner).generic("POST", "/api/v1/teams/growth-analytics/members/", body,
                                  content_type="application/json")
    refused(response, field, snapshot)


# --- the HTML forms ---------------------------------------------------------------------------------
def form_data(**changes) -> dict:
    data = {
        "slug": NEW, "name": "Customer churn", "domain": "growth", "team": "growth-analytics", "target": "local",
        "classification": "internal", "compute_tier": "small",
        "contacts_business_name": "Maria", "contacts_business_email": "maria@example.com",
        "contacts_technical_name": "Tom", "contacts_technical_email": "tom@example.com",
        "data_custodian_name": "Carla", "data_custodian_email": "carla@example.com", "depends_on": "",
        "outputs": "churn_scores: table", **{f"section_{k}": "Text." for k in
                                             ("value_proposition", "architecture", "integration_points",
                                              "data_surfacing")},
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("field, value", [
    *[pytest.param("name", f"Churn{char}", id=f"name-{name_of(char)}") for char in NOT_IN_A_LINE[1::6]],
    pytest.param("slug", f"{NEW}\u2028", id="slug-line-separator"),
    pytest.param("contacts_business_email", "maria@example.com\u202e", id="email-bidi"),
    pytest.param("data_custodian_name", "Carla\x1e", id="custodian-record-separator"),
    pytest.param("depends_on", "orders-core\x1f", id="depends-on-unit-separator"),
    pytest.param("outputs", "churn_scores\u2028: table", id="outputs-line-separator"),
    pytest.param("section_architecture", "[" * 4000, id="section-too-costly"),
    pytest.param("section_architecture", "a\x00b", id="section-nul"),
])
def test_the_product_form_refuses_hostile_fields_and_saves_nothing(member, existing, field, value):
    client = Client()
    client.force_login(member)
    snapshot = Snapshot()
    for extra in ({}, {"preview": "1"}):
        response = client.post("/products/new/", {**form_data(**{field: value}), **extra})
        assert response.status_code in (200, 400), response.status_code
        assert b'aria-invalid="true"' in response.content or extra
    snapshot.unchanged()


@pytest.mark.parametrize("name", ["Team\u2028", "Team\x1f", "\u202eTeam", "Team\x85", "Te\x00am"],
                         ids=["line-separator", "unit-separator", "bidi", "next-line", "nul"])
def test_the_team_form_refuses_control_characters_and_saves_nothing(member, team, name):
    client = Client()
    client.force_login(member)
    snapshot = Snapshot()
    response = client.post("/teams/", {"slug": "new-team", "name": name})
    assert response.status_code in (200, 400)
    snapshot.unchanged()


@pytest.mark.parametrize("comment", ["Why\x00not", "Fine\u2028really\x1e\x1f", "<script>alert(1)</script>"],
                         ids=["nul", "separators", "script"])
def test_the_comment_form_never_answers_5xx(member, existing, comment):
    client = Client()
    client.force_login(member)
    response = client.post("/products/orders-core/submit/", {"comment": comment})
    assert response.status_code < 500
    assert client.get("/products/orders-core/").status_code == 200
