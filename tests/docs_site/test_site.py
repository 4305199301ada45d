"""The static WID site: real git, real MkDocs builds, the portal serving them at /docs/."""
import json
from html.parser import HTMLParser
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from docs_site import builder, generate, lineage, services
from docs_site.models import SiteBuild
from onboarding import services as onboarding_services
from onboarding.models import Product
from onboarding.widrepo import get_repository
from provisioning.models import Job, Provisioning
from tests.factories import wid_payload

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
HOSTILE = '<script>alert("wid")</script><img src=x onerror="alert(2)">'


@pytest.fixture(autouse=True)
def site_root(settings, tmp_path):
    settings.WID_SITE_ROOT = tmp_path / "site"
    return settings.WID_SITE_ROOT


def create(api, user, slug, **overrides):
    response = api(user).post("/api/v1/products/", wid_payload(slug=slug, **overrides), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def page(slug, domain="growth") -> str:
    return (builder.published() / domain / slug / "index.html").read_text()


def content(html: str) -> str:
    """The page's own content, without the theme's navigation and scripts."""
    return html.split('role="main">', 1)[1].split("<footer", 1)[0]


def test_a_full_build_publishes_a_page_per_wid_with_its_sections_people_status_history_and_lineage(
        api, member, platform):
    create(api, member, "orders-core", domain="sales")
    create(api, member, "customer-churn", depends_on=["orders-core"])
    api(member).post("/api/v1/products/customer-churn/submit/", {"comment": "please"}, format="json")

    result = builder.build()

    assert result.kind == "full"
    html = content(page("customer-churn"))
    assert "<h1>Customer churn insights</h1>" in html
    assert "Predict churn so retention can act." in html
    assert "<code>raw/</code>" in html  # the sections' Markdown is rendered
    assert "maria@example.com" in html and "Carla Custodian" in html
    assert "confidential, holds personal data" in html
    assert "status-submitted" in html
    assert "Submit customer-churn: please" in html and "Create customer-churn" in html  # history from git
    assert "<svg" in html and 'href="../../sales/orders-core/"' in html  # its lineage links what it reads
    assert "Reads from: <a" in html
    assert "Read by: <a" in content(page("orders-core", "sales"))
    root = builder.published()
    for index in ("index.html", "growth/index.html", "sales/index.html", "-/teams/growth-analytics/index.html",
                  "-/status/submitted/index.html", "-/status/draft/index.html", "-/lineage/index.html"):
        assert (root / index).exists(), index
    assert "customer-churn" in (root / "-/status/submitted/index.html").read_text()
    assert "customer-churn" not in (root / "-/status/draft/index.html").read_text()
    assert "Customer churn insights" in (root / "-/lineage/index.html").read_text()


def test_the_search_index_covers_every_page_after_incremental_builds(api, member):
    create(api, member, "customer-churn")
    create(api, member, "web-sessions")
    builder.build()
    product = Product.objects.get(slug="web-sessions")
    onboarding_services.wid_update(user=member, slug="web-sessions", data={
        "version": product.version, "sections": {"architecture": "Kafka streams into the lakehouse."}})

    assert builder.build().kind == "incremental"

    index = json.loads((builder.published() / "search" / "search_index.json").read_text())
    pages = {doc["location"].split("#")[0] for doc in index["docs"]}
    assert {"growth/customer-churn/", "growth/web-sessions/", "", "-/lineage/"} <= pages
    assert any("Kafka streams" in doc["text"] for doc in index["docs"])


def test_an_edit_rebuilds_only_the_pages_it_touches_in_a_copy_of_the_published_site(api, member):
    create(api, member, "customer-churn")
    create(api, member, "web-sessions")
    builder.build()
    published = builder.published()
    untouched = (published / "growth/customer-churn/index.html").stat().st_mtime_ns
    product = Product.objects.get(slug="web-sessions")
    onboarding_services.wid_update(user=member, slug="web-sessions", data={
        "version": product.version, "sections": {"architecture": "Now streaming."}})

    result = builder.build()

    assert result.kind == "incremental" and builder.published() != published
    assert "Now streaming." in page("web-sessions")
    assert "Now streaming." not in (published / "growth/web-sessions/index.html").read_text()
    assert (builder.published() / "growth/customer-churn/index.html").stat().st_mtime_ns == untouched
    assert result.rendered < 10  # the WID's page and the index pages that list it
    assert builder.build().kind == "unchanged"


def test_a_new_wid_makes_a_full_build_published_in_a_fresh_directory(api, member):
    create(api, member, "customer-churn")
    builder.build()
    before = builder.published()
    create(api, member, "web-sessions", domain="web")

    result = builder.build()

    assert result.kind == "full" and builder.published() != before
    assert "Customer churn insights" in (builder.published() / "web/web-sessions/index.html").read_text()
    assert (builder.published() / "web/index.html").exists()


def test_a_wid_removed_from_git_leaves_the_site_at_the_next_full_build(api, member):
    create(api, member, "customer-churn")
    create(api, member, "web-sessions")
    builder.build()
    repo = get_repository()
    repo.repo.git.rm("-q", "wids/growth/web-sessions.md")
    repo.repo.index.commit("Remove web-sessions")
    onboarding_services.index_rebuild()

    assert builder.build().kind == "full"

    assert not (builder.published() / "growth/web-sessions").exists()
    assert not (Path(builder.site_root()) / "src/growth/web-sessions").exists()
    assert (builder.published() / "growth/customer-churn/index.html").exists()


def test_an_index_that_names_a_file_the_repository_lacks_still_builds_every_page(api, member, settings, tmp_path):
    # The index was built from another repository (two checkouts sharing one database), created
    # while the index was empty (the portal never creates one while the index holds products).
    settings.WID_REPO_PATH = tmp_path / "another-repo"
    get_repository().head()
    settings.WID_REPO_PATH = tmp_path / "wid-repo"
    create(api, member, "customer-churn")
    create(api, member, "web-sessions", name="Web sessions")
    settings.WID_REPO_PATH = tmp_path / "another-repo"
    create(api, member, "orders-core", name="Orders core")
    settings.WID_REPO_PATH = tmp_path / "wid-repo"

    result = builder.build()

    assert result.kind == "full"
    orphan = content(page("orders-core"))
    assert "Orders core" in orphan and "could not be read from the repository" in orphan
    assert "rebuild_index" in orphan and "Predict churn so retention can act." in orphan  # the index's copy
    assert "could not be read" not in content(page("web-sessions"))


class _Markup(HTMLParser):
    """Collects what a browser would run or load: event handlers, scripts of their own, frames,
    images and script links; the theme's own scripts (`src=` files and its `base_url` line) aside."""

    def __init__(self):
        super().__init__()
        self.found, self._script = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.found += [f"{tag} {name}" for name in attrs if name.startswith("on")]
        self.found += [f"{tag} {attrs[a]}" for a in ("href", "src") if (attrs.get(a) or "").strip().lower()
                       .startswith("javascript:")]
        if tag in ("iframe", "object", "embed", "img"):
            self.found.append(tag)
        if tag == "script" and not attrs.get("src"):
            self._script = ""

    def handle_data(self, data):
        if self._script is not None:
            self._script += data

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            if not self._script.strip().startswith("var base_url"):
                self.found.append(f"script {self._script[:40]}")
            self._script = None


def markup_of(html: str) -> list[str]:
    parser = _Markup()
    parser.feed(html)
    return parser.found


def test_text_from_a_wid_never_becomes_markup_on_the_site(api, member, platform):
    create(api, member, "customer-churn", name=f"Churn {HOSTILE}",
           sections={"value_proposition": f"Value {HOSTILE} [click](javascript:alert(3))",
                     "architecture": "```\n</div><script>alert(4)</script>\n```", "integration_points": "x",
                     "data_surfacing": "<iframe src=//evil.example></iframe>"},
           contacts={"business": {"name": HOSTILE, "email": "maria@example.com"},
                     "technical": {"name": "Tom", "email": "tom@example.com"}})
    api(member).post("/api/v1/products/customer-churn/submit/", format="json")
    api(platform).post("/api/v1/products/customer-churn/reject/", {"comment": HOSTILE}, format="json")

    builder.build()

    for path in builder.published().rglob("*.html"):
        assert markup_of(path.read_text()) == [], path
    html = page("customer-churn")
    assert "&lt;script&gt;alert(&quot;wid&quot;)&lt;/script&gt;" in content(html)
    assert "<title>Churn &lt;script&gt;" in html  # the theme does not escape titles: the generator does
    # The search index holds page text (entities decoded); the search page escapes what it shows.
    search_js = (builder.published() / "search" / "main.js").read_text()
    assert "escapeHtml(title)" in search_js and "escapeHtml(summary)" in search_js


def test_the_site_shows_provisioning_status_and_outputs_but_never_secrets(api, member):
    create(api, member, "customer-churn")
    product = Product.objects.get(slug="customer-churn")
    job = Job.objects.create(product=product, action="apply", status="succeeded",
                             outputs={"storage_schema": "p_customer_churn", "storage_password": "(sensitive)"})
    Provisioning.objects.create(product=product, provisioned=True, last_job=job, template_version="v1",
                                outputs={"storage_schema": "p_customer_churn", "storage_password": "(sensitive)"})

    builder.build()

    html = content(page("customer-churn"))
    assert "provisioned</span> on" in html and "template version v1" in html
    assert "p_customer_churn" in html
    assert "storage_password" not in html and "(sensitive)" not in html


def test_the_portal_serves_the_site_at_docs_to_signed_in_users(client, api, member):
    create(api, member, "customer-churn")
    builder.build()
    client.force_login(member)

    assert client.get("/docs/").status_code == 200
    response = client.get("/docs/growth/customer-churn/")
    assert response.status_code == 200 and b"Customer churn insights" in b"".join(response.streaming_content)
    assert client.get("/docs/growth/customer-churn").url == "/docs/growth/customer-churn/"
    assert client.get("/docs/assets/site.css").status_code == 200
    assert client.get("/docs/growth/nothing-here/").status_code == 404
    assert client.get("/docs/../../etc/passwd").status_code in (400, 404)
    client.logout()
    assert client.get("/docs/growth/customer-churn/").url.startswith("/accounts/login/")


def test_before_the_first_build_docs_says_it_is_being_built(client, member, settings):
    client.force_login(member)
    response = client.get("/docs/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert b"being built" in response.content


def test_build_site_output_writes_a_complete_copy_and_refuses_a_directory_that_is_not_a_site(
        api, member, tmp_path):
    create(api, member, "customer-churn")
    out = tmp_path / "public"

    call_command("build_site", "--output", str(out))

    assert (out / "growth/customer-churn/index.html").exists() and (out / "search/search_index.json").exists()
    assert builder.published() is None  # the served site is not touched
    call_command("build_site", "--output", str(out))  # a previous site may be replaced
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    with pytest.raises(CommandError, match="not a WID site"):
        call_command("build_site", "--output", str(precious))
    assert (precious / "thesis.txt").read_text() == "keep me"


def test_a_burst_of_requests_makes_one_queued_build_and_builds_once(
        api, member, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("portal.work.dispatch.send", lambda task, *args, **kw: sent.append((task, args)) or True)
    create(api, member, "customer-churn")
    SiteBuild.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(25):
            services.site_request_build("burst")

    [build] = SiteBuild.objects.all()
    assert build.status == "queued" and sent == [("docs_site.tasks.build_site", (build.pk,))]
    assert services.site_build(build.pk) == "full"
    build.refresh_from_db()
    assert build.status == "succeeded" and build.kind == "full" and build.finished_at
    assert "full build" in build.lines.get().text
    assert services.site_build(build.pk) == "not queued"  # a redelivered task builds nothing


def test_a_change_during_a_build_queues_the_next_one_and_builds_never_overlap(api, member, monkeypatch):
    monkeypatch.setattr("portal.work.dispatch.send", lambda *a, **kw: True)
    create(api, member, "customer-churn")
    SiteBuild.objects.all().delete()
    services.site_request_build("first")
    first = SiteBuild.objects.get()
    SiteBuild.objects.filter(pk=first.pk).update(status="running")  # a build of this site is running
    services.site_request_build("during the build")
    second = SiteBuild.objects.get(status="queued")

    assert services.site_build(second.pk) == "waiting"  # it waits for the running one, in its row
    second.refresh_from_db()
    assert second.status == "queued" and second.available_at > timezone.now()


def test_every_known_site_is_asked_for_a_build(api, member, monkeypatch, settings,
                                              django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("portal.work.dispatch.send", lambda task, *args, queue=None, **kw: sent.append(queue) or True)
    SiteBuild.objects.create(site="other-instance", queue="portal-site-b", status="succeeded")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.site_request_build("a change") == 2
    assert sorted(SiteBuild.objects.filter(status="queued").values_list("site", flat=True)) == sorted(
        [services.site_key(), "other-instance"])
    assert sorted(sent) == sorted([settings.WID_SITE_QUEUE, "portal-site-b"])
    assert services.site_build(SiteBuild.objects.get(site="other-instance", status="queued").pk) == \
        "another instance's"


def test_a_wid_change_asks_for_a_build_in_its_own_transaction(api, member, settings):
    settings.WID_SITE_AUTO_BUILD = True
    create(api, member, "customer-churn")
    assert SiteBuild.objects.filter(status="queued", site=services.site_key()).count() == 1


def test_the_lineage_layout_places_readers_right_of_what_they_read_and_survives_cycles():
    nodes = [lineage.Node(s, s.title(), "d", "approved", f"{s}/") for s in ("a", "b", "c", "d")]
    svg = lineage.draw(nodes, [("a", "b"), ("b", "c"), ("c", "b"), ("a", "d")], title="<map>")
    assert svg.count("<rect") == 4 and svg.count('class="lineage-edge"') == 4
    assert "&lt;map&gt;" in svg
    columns = lineage._columns({n.slug: n for n in nodes}, [("a", "b"), ("a", "d")])
    assert columns == {"a": 0, "b": 1, "c": 0, "d": 1}
    assert lineage.neighbourhood("b", [("a", "b"), ("b", "c"), ("x", "a"), ("y", "x")]) == {"a", "b", "c", "x"}


def test_mkdocs_can_build_the_generated_sources_on_its_own(api, member, site_root, tmp_path):
    """`docs_site/mkdocs.yml` is a plain MkDocs configuration: the sources build with the CLI too."""
    create(api, member, "customer-churn")
    builder.build()
    out = tmp_path / "cli-out"
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(ROOT / "docs_site" / "mkdocs.yml")],
                   check=True, env={"WID_SITE_DOCS_DIR": str(site_root / "src"), "WID_SITE_OUTPUT_DIR": str(out),
                                    "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, cwd=ROOT)
    assert (out / "growth/customer-churn/index.html").exists()
    assert generate.url_of("growth/customer-churn/index.md") == "growth/customer-churn/"


def ports_of(html: str) -> str:
    return html.split('class="wid-ports"', 1)[1].split("</div>", 1)[0]


def test_a_wid_page_shows_the_live_version_its_open_amendment_and_the_live_versions_ports(
        api, member, platform, settings, tmp_path):
    settings.LAKE_ROOT = tmp_path / f"lake {HOSTILE}"
    create(api, member, "orders-core", domain="sales", classification="internal", pii=False,
           outputs=[{"name": "orders", "kind": "table"}, {"name": "daily", "kind": "feed"},
                    {"name": "Board.v2", "kind": "dashboard"}])
    create(api, member, "never-approved")
    api(member).post("/api/v1/products/orders-core/submit/", format="json")  # approved by the policy
    product = Product.objects.get(slug="orders-core")
    live = product.approved_version
    builder.build()

    html = content(page("orders-core", "sales"))
    assert f"Live: version {live}</strong>" in html and "amendment in" not in html
    ports = ports_of(html)
    assert "<code>pub_orders_core.orders</code>" in ports and "/curated/daily/</code>" in ports
    assert "<code>Board.v2</code>" in ports and "not published in the warehouse or the lake" in ports
    assert "lake &lt;script&gt;alert(&quot;wid&quot;)&lt;/script&gt;" in ports  # a location is text, escaped
    assert "password" not in ports
    draft = content(page("never-approved"))
    assert "Live: version" not in draft and "Published once the WID is approved." in ports_of(draft)

    api(member).patch("/api/v1/products/orders-core/", {
        "version": product.version, "outputs": [{"name": "orders", "kind": "table"}, {"name": "refunds", "kind": "table"}]},
        format="json")
    assert builder.build().kind == "incremental"

    html = content(page("orders-core", "sales"))
    assert f"Live: version {live}; amendment in draft" in html
    ports = ports_of(html)
    assert "pub_orders_core.orders" in ports and "/curated/daily/" in ports  # the live version's ports
    assert "refunds" not in ports and "<code>refunds</code> (table)" in html  # the amendment's outputs, as written
    api(member).post("/api/v1/products/orders-core/submit/", format="json")
    builder.build()
    assert f"Live: version {live + 3}</strong>" in content(page("orders-core", "sales"))  # approved by policy
    assert "pub_orders_core.refunds" in ports_of(content(page("orders-core", "sales")))
    for path in builder.published().rglob("*.html"):
        assert markup_of(path.read_text()) == [], path


def test_each_ingestion_pattern_has_a_page_from_its_scaffolds_readme_listing_the_products_that_use_it(
        api, member, platform, tmp_path):
    share = tmp_path / "finance"
    assert api(platform).post("/api/v1/sources/", {"name": "finance-share", "kind": "share", "path": str(share)},
                              format="json").status_code == 201
    create(api, member, "budget-lines", ingestion="spreadsheet", source={"name": "finance-share"})
    create(api, member, "field-reports", ingestion="file_drop")
    create(api, member, "customer-churn")

    builder.build()

    root = builder.published()
    listing = content((root / "-/ingestion/index.html").read_text())
    for pattern, title in (("file_drop", "File drop"), ("database_extract", "Database extract"),
                           ("spreadsheet", "Spreadsheet")):
        assert f'href="{pattern}/">{title}</a>' in listing
        html = content((root / f"-/ingestion/{pattern}/index.html").read_text())
        readme = (ROOT / "terraform_templates" / "scaffold" / pattern / "README.md").read_text()
        assert f"<h1>{title}</h1>" in html and "When to use it" in html
        assert readme.split("\n\n")[1].split()[-1] in html  # the README's first paragraph, rendered
    sheet = content((root / "-/ingestion/spreadsheet/index.html").read_text())
    assert "budget-lines" in sheet and "field-reports" not in sheet and "customer-churn" not in sheet
    assert "field-reports" in content((root / "-/ingestion/file_drop/index.html").read_text())
    assert "None." in content((root / "-/ingestion/database_extract/index.html").read_text())
    assert str(share) not in sheet
    wid = content(page("budget-lines"))
    assert 'href="../../-/ingestion/spreadsheet/">spreadsheet</a> from source <code>finance-share</code>' in wid
    assert "<dt>Ingestion</dt><dd>none</dd>" in content(page("customer-churn"))
