"""The WID site and a product's life after approval: how it runs, its deprecation and suspension,
shown on its page and on the pages of the products that read it. Real git, real MkDocs builds."""
from datetime import datetime, timedelta, timezone

import pytest

from docs_site import builder
from provisioning.models import Source
from tests.docs_site.test_site import HOSTILE, content, create, markup_of, page

pytestmark = pytest.mark.django_db
SUNSET = (datetime.now(timezone.utc).date() + timedelta(days=60)).isoformat()
LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


@pytest.fixture(autouse=True)
def site_root(settings, tmp_path):
    settings.WID_SITE_ROOT = tmp_path / "site"
    return settings.WID_SITE_ROOT


def act(api, user, slug, action, **body):
    response = api(user).post(f"/api/v1/products/{slug}/{action}/", body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def notices(html: str) -> list[str]:
    """The text of the page's banners."""
    return [part.split("</div>", 1)[0] for part in html.split('class="wid-notice')[1:]]


@pytest.fixture
def producer_and_readers(api, member, platform):
    create(api, member, "orders-core", domain="sales", **LOW_RISK)
    act(api, member, "orders-core", "submit")  # approved by the policy
    create(api, member, "customer-churn", depends_on=["orders-core"])
    create(api, member, "web-sessions", domain="web")
    builder.build()


def test_a_deprecation_shows_on_the_products_page_and_on_its_readers_pages_only(api, member, producer_and_readers):
    act(api, member, "orders-core", "deprecate", sunset=SUNSET, comment=f"Use orders-v2. {HOSTILE}")

    assert builder.build().kind == "incremental"

    own = content(page("orders-core", "sales"))
    [banner] = notices(own)
    assert f"Deprecated: sunset {SUNSET}." in banner and "Use orders-v2." in banner
    assert "&lt;script&gt;" in banner and "<script>" not in banner
    assert "status-deprecated" in own
    reader = content(page("customer-churn"))
    [banner] = notices(reader)
    assert 'Depends on <a href="../../sales/orders-core/">' in banner
    assert f"deprecated, sunset {SUNSET}" in banner and "Use orders-v2." in banner
    assert notices(content(page("web-sessions", "web"))) == []  # it reads nothing deprecated
    assert "orders-core" in (builder.published() / "-/status/deprecated/index.html").read_text()
    for path in builder.published().rglob("*.html"):
        assert markup_of(path.read_text()) == [], path


def test_a_suspension_shows_while_it_lasts_on_the_product_and_its_readers(api, member, platform,
                                                                         producer_and_readers):
    act(api, platform, "orders-core", "suspend", comment="Who still reads it?")
    builder.build()

    [banner] = notices(content(page("orders-core", "sales")))
    assert "Suspended:" in banner and "Who still reads it?" in banner
    [banner] = notices(content(page("customer-churn")))
    assert "<strong>suspended</strong>: reads of it fail until it is resumed" in banner
    assert "wid-badge suspended" in (builder.published() / "sales/index.html").read_text()

    act(api, platform, "orders-core", "resume")
    builder.build()

    assert notices(content(page("orders-core", "sales"))) == []
    assert notices(content(page("customer-churn"))) == []  # the reader's page followed, though its WID did not change


def test_a_wid_page_shows_how_the_product_is_fed_and_run_and_what_its_outputs_promise(api, member):
    Source.objects.create(name="erp-main", kind="database", connection="env:ERP_URL")  # the platform's register
    create(api, member, "orders-core", domain="sales")
    create(api, member, "customer-churn", depends_on=["orders-core"], ingestion="database_extract",
           source={"name": "erp-main", "table": "sales.orders"}, schedule="0 6 * * *",
           triggers={"on_file": True, "on_upstream": ["orders-core"]},
           outputs=[{"name": "churn_scores", "kind": "table", "freshness": "24h",
                     "checks": {"rows_min": 1, "not_null": ["customer_id"], "unique": ["customer_id", "day"]}}])
    builder.build()

    html = content(page("customer-churn"))
    assert ('<a href="../../-/ingestion/database_extract/">database extract</a> from source <code>erp-main</code>, '
            "table <code>sales.orders</code>") in html
    assert "on schedule <code>0 6 * * *</code> (UTC); when a file arrives; after a run of <code>orders-core</code>" in html
    assert ("<code>churn_scores</code> (table, fresh within 24h, checks: at least 1 row; no NULL in customer_id; "
            "unique customer_id, day)") in html
    assert "when started by hand" in content(page("orders-core", "sales"))
