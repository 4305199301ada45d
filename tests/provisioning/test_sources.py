"""The register of ingestion sources (provisioning/sources.py): the platform registers, changes and
removes; everyone signed in sees names, kinds and descriptions; a connection is never shown whole; a
WID may name only a registered source of the kind its ingestion reads; a source in use stays.
"""
import io
import json
import sys

import pytest
from django.core.management import CommandError, call_command

from provisioning.models import Source
from tests.factories import wid_payload
from tests.onboarding.test_bad_input import Unchanged

pytestmark = pytest.mark.django_db

URL = "/api/v1/sources/"
PASSWORD = "pw-s3cret"
CONNECTION = f"postgresql://reader:{PASSWORD}@db.example:5432/crm?sslmode=require&password=other-s3cret"
MASKED = "postgresql://reader:***@db.example:5432/crm?sslmode=require&password=***"


@pytest.fixture
def registered(api, platform, tmp_path):
    share = tmp_path / "finance"
    assert api(platform).post(URL, {"name": "crm", "kind": "database", "description": "The CRM",
                                    "connection": CONNECTION}, format="json").status_code == 201
    assert api(platform).post(URL, {"name": "finance-share", "kind": "share", "description": "Finance's drive",
                                    "path": str(share)}, format="json").status_code == 201
    return share


def test_the_platform_sees_where_each_source_is_and_everyone_else_names_kinds_and_descriptions(
        api, platform, member, registered):
    shown = api(platform).get(URL).json()
    assert [(s["name"], s["kind"], s["connection"], s["path"], s["used_by"], s["created_by"]) for s in shown] == [
        ("crm", "database", MASKED, "", [], "priya"), ("finance-share", "share", "", str(registered), [], "priya")]

    for answer in (api(member).get(URL), api(member).get(f"{URL}crm/"), api(member).get(f"{URL}finance-share/")):
        assert answer.status_code == 200
        assert str(registered) not in answer.content.decode() and "db.example" not in answer.content.decode()
    assert api(member).get(URL).json() == [
        {"name": "crm", "kind": "database", "description": "The CRM"},
        {"name": "finance-share", "kind": "share", "description": "Finance's drive"}]
    assert api(member).get(f"{URL}nope/").status_code == 404


def test_a_connection_is_never_shown_whole_not_even_to_the_platform(api, platform, registered):
    answers = [api(platform).get(URL), api(platform).get(f"{URL}crm/"),
               api(platform).patch(f"{URL}crm/", {"description": "CRM, read replica"}, format="json"),
               api(platform).post(URL, {"name": "crm-2", "kind": "database", "connection": CONNECTION}, format="json")]
    for answer in answers:
        assert answer.status_code in (200, 201)
        assert PASSWORD not in answer.content.decode() and "other-s3cret" not in answer.content.decode()
    rotated = api(platform).patch(f"{URL}crm/", {"connection": "env:CRM_URL"}, format="json").json()
    assert rotated["connection"] == "env:CRM_URL" and rotated["description"] == "CRM, read replica"
    assert Source.objects.get(name="crm").connection == "env:CRM_URL"


def test_only_the_platform_registers_changes_or_removes_sources(api, member, registered):
    before = list(Source.objects.values())
    mine = {"name": "mine", "kind": "share", "path": "/srv/mine"}
    assert api(member).post(URL, mine, format="json").status_code == 403
    assert api(member).patch(f"{URL}crm/", {"connection": "env:X"}, format="json").status_code == 403
    assert api(member).delete(f"{URL}crm/").status_code == 403
    assert list(Source.objects.values()) == before


@pytest.mark.parametrize("body, field", [
    ({"name": "Bad Name", "kind": "share", "path": "/srv/x"}, "name"),
    ({"name": "crm", "kind": "share", "path": "/srv/x"}, "name"),  # registered already
    ({"name": "x-1", "kind": "ftp", "path": "/srv/x"}, "kind"),
    ({"name": "x-1", "kind": "database"}, "connection"),
    ({"name": "x-1", "kind": "database", "connection": f"mysql://u:{PASSWORD}@h/db"}, "connection"),
    ({"name": "x-1", "kind": "database", "connection": f"postgresql://u:{PASSWORD}@h:notaport/db"}, "connection"),
    ({"name": "x-1", "kind": "database", "connection": f"postgresql://u:{PASSWORD}@h"}, "connection"),
    ({"name": "x-1", "kind": "database", "connection": "env:1BAD"}, "connection"),
    ({"name": "x-1", "kind": "database", "connection": "file:relative/path"}, "connection"),
    ({"name": "x-1", "kind": "database", "connection": f"postgresql://u:{PASSWORD}@h/db\nx"}, "connection"),
    ({"name": "x-1", "kind": "database", "connection": "env:CRM", "path": "/srv/x"}, "path"),
    ({"name": "x-1", "kind": "share"}, "path"),
    ({"name": "x-1", "kind": "share", "path": "/srv/x", "connection": "env:CRM"}, "connection"),
    ({"name": "x-1", "kind": "share", "path": "srv/x"}, "path"),
    ({"name": "x-1", "kind": "share", "path": "/"}, "path"),
    ({"name": "x-1", "kind": "share", "path": "/srv/../etc"}, "path"),
    ({"name": "x-1", "kind": "share", "path": "/srv/x/"}, "path"),
    ({"name": "x-1", "kind": "share", "path": "LAKE"}, "path"),  # the lake: one product would read another's
    ({"name": "x-1", "kind": "share", "path": "/srv/x", "owner": "me"}, "owner"),
])
def test_bad_input_answers_400_naming_the_field_and_registers_nothing(api, platform, registered, settings, body,
                                                                       field):
    body = {**body, "path": str(settings.LAKE_ROOT / "growth")} if body.get("path") == "LAKE" else body
    before = list(Source.objects.values())
    answer = api(platform).post(URL, body, format="json")
    assert answer.status_code == 400 and list(answer.json()["errors"]) == [field], answer.json()
    assert PASSWORD not in answer.content.decode()
    assert list(Source.objects.values()) == before


def test_a_change_keeps_a_sources_name_and_kind(api, platform, registered):
    before = list(Source.objects.values())
    for body, field in (({"path": "/srv/other"}, "path"), ({"kind": "share"}, "kind"), ({"name": "x"}, "name"),
                        ({"connection": "nope"}, "connection")):
        answer = api(platform).patch(f"{URL}crm/", body, format="json")
        assert answer.status_code == 400 and list(answer.json()["errors"]) == [field], answer.json()
    assert list(Source.objects.values()) == before


def test_a_wid_names_only_a_registered_source_of_the_kind_its_ingestion_reads(api, member, registered):
    unchanged = Unchanged()
    for ingestion, source, message in (
            ("database_extract", {"name": "nope", "table": "sales.orders"}, "No source named 'nope' is registered"),
            ("database_extract", {"name": "finance-share", "table": "sales.orders"},
             "finance-share is a share folder: a database_extract reads a database."),
            ("spreadsheet", {"name": "crm"}, "crm is a database: a spreadsheet reads a share folder.")):
        answer = api(member).post("/api/v1/products/", wid_payload(ingestion=ingestion, source=source), format="json")
        assert answer.status_code == 400 and list(answer.json()["errors"]) == ["source.name"], answer.json()
        assert message in answer.json()["errors"]["source.name"][0]
    unchanged.check()
    answer = api(member).post("/api/v1/products/", wid_payload(
        ingestion="database_extract", source={"name": "crm", "table": "sales.orders"}), format="json")
    assert answer.status_code == 201, answer.json()


def test_a_source_that_a_wid_names_cannot_be_removed_and_the_answer_lists_the_products(api, platform, member,
                                                                                        registered):
    for slug in ("sheet-reader", "other-reader"):
        assert api(member).post("/api/v1/products/", wid_payload(
            slug=slug, ingestion="spreadsheet", source={"name": "finance-share"}), format="json").status_code == 201
    answer = api(platform).delete(f"{URL}finance-share/")
    assert answer.status_code == 409 and answer.json()["errors"] == {"products": ["other-reader", "sheet-reader"]}
    assert "other-reader, sheet-reader" in answer.json()["detail"]
    assert Source.objects.filter(name="finance-share").exists()
    assert api(platform).get(f"{URL}finance-share/").json()["used_by"] == ["other-reader", "sheet-reader"]

    assert api(platform).delete(f"{URL}crm/").status_code == 204
    assert not Source.objects.filter(name="crm").exists()
    assert api(platform).delete(f"{URL}crm/").status_code == 404


def test_the_command_reads_a_url_from_standard_input_and_never_from_its_arguments(db, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "stdin", io.StringIO(CONNECTION + "\n"))
    out = io.StringIO()
    call_command("source", "add", "crm", "--kind", "database", "--connection", "-", "--description", "CRM",
                 stdout=out)
    assert Source.objects.get(name="crm").connection == CONNECTION
    call_command("source", "add", "finance-share", "--kind", "share", "--path", str(tmp_path / "share"), stdout=out)
    call_command("source", "list", stdout=out)
    assert PASSWORD not in out.getvalue() and MASKED in out.getvalue()
    with pytest.raises(CommandError, match="connection: Give a postgresql://"):
        call_command("source", "change", "crm", "--connection", "ftp://x")
    call_command("source", "remove", "finance-share", stdout=out)
    assert list(Source.objects.values_list("name", flat=True)) == ["crm"]
    assert json.dumps(list(Source.objects.values("kind"))) == '[{"kind": "database"}]'
