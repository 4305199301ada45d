"""After each accepted hostile save, everything derived from the WID still works: its history,
its product page, the site build and rebuild_index; and a WID that cannot be rendered takes
nothing else down."""
import pytest
from django.test import Client

from docs_site import builder
from onboarding import services
from onboarding.models import Product, ReviewEvent
from onboarding.widfile import parse, render
from onboarding.widrepo import Author, get_repository
from tests.factories import wid_payload
from tests.hostile.corpus import INJECTIONS, KEPT_IN_TEXT, MULTILINE_INJECTIONS, cleaned, cleaned_comment

pytestmark = pytest.mark.django_db

# A representative subset: the characters that broke history and the site before (git log's
# separators, line and paragraph separators, Markdown's placeholders) and the injections.
TEXTS = [
    "".join(KEPT_IN_TEXT),
    "Subject\x1e with \x1f separators\u2028and\u2029more\x85",
    "\x02wzxhzdk:0\x03 and \x02klzzwxh:1\x03 \x00"[:-2],
    "\u202eevil\u202c \u2066isolate\u2069",
    MULTILINE_INJECTIONS["front-matter"],
    MULTILINE_INJECTIONS["yaml-documents"],
    MULTILINE_INJECTIONS["review-log-lookalike"],
    MULTILINE_INJECTIONS["script-block"],
    INJECTIONS["hcl-interpolation"],
    INJECTIONS["template"],
]


@pytest.fixture(autouse=True)
def site_root(settings, tmp_path):
    settings.WID_SITE_ROOT = tmp_path / "site"


def page_of(slug: str) -> str:
    return (builder.published() / "growth" / slug / "index.html").read_text()


def test_history_pages_the_site_and_rebuild_index_survive_every_hostile_save(api, member, platform):
    client = Client()
    client.force_login(member)
    for number, text in enumerate(TEXTS):
        slug = f"hostile-{number}"
        sections = {**wid_payload()["sections"], "architecture": f"Before.\n{text}\nAfter."}
        created = api(member).post("/api/v1/products/", wid_payload(slug=slug, sections=sections), format="json")
        assert created.status_code == 201, created.json()
        submitted = api(member).post(f"/api/v1/products/{slug}/submit/", {"comment": text}, format="json")
        assert submitted.status_code == 200, submitted.json()
        decided = api(platform).post(f"/api/v1/products/{slug}/request-changes/", {"comment": f"Re: {text}"},
                                     format="json")
        assert decided.status_code == 200, decided.json()

        history = api(member).get(f"/api/v1/products/{slug}/history/")
        assert history.status_code == 200
        assert [c["message"].split(":")[0] for c in history.json()] == [
            f"Request changes to {slug}", f"Submit {slug}", f"Create {slug}"]
        assert client.get(f"/products/{slug}/").status_code == 200
        result = builder.build()
        assert result.pages > number
        assert "could not be rendered" not in page_of(slug)
        assert "After." in page_of(slug)

        before = _index()
        assert services.index_rebuild() == number + 1
        assert _index() == before
        product = api(member).get(f"/api/v1/products/{slug}/").json()
        assert product["sections"]["architecture"] == cleaned(f"Before.\n{text}\nAfter.")
        assert [e["comment"] for e in product["review_log"]] == [cleaned_comment(text),
                                                                 cleaned_comment(f"Re: {text}")]


def _index():
    return (list(Product.objects.order_by("slug").values("slug", "name", "sections", "version", "status", "head_sha")),
            list(ReviewEvent.objects.order_by("product__slug", "position").values("position", "comment", "action")))


def test_a_wid_that_cannot_be_rendered_shows_the_error_on_its_pages_and_the_rest_stands(api, member):
    for slug in ("plain-one", "broken-one", "plain-two"):
        assert api(member).post("/api/v1/products/", wid_payload(slug=slug), format="json").status_code == 201
    # A plain git commit to the repository skips the portal's checks: 4,000 '[' would take the
    # renderer half a minute.
    repo = get_repository()
    path = "wids/growth/broken-one.md"
    doc = parse(repo.read(path))
    doc.sections["architecture"] = "[" * 4000
    with repo.locked():
        repo.commit_file(path, render(doc), author=Author("Someone", "someone@example.com"), message="By hand")
    assert services.index_rebuild() == 3

    result = builder.build()

    assert result.kind == "full"
    broken = page_of("broken-one")
    assert "could not be rendered" in broken and "broken-one.md" in broken
    for slug in ("plain-one", "plain-two"):
        assert "Predict churn so retention can act." in page_of(slug)
    assert "broken-one" in (builder.published() / "index.html").read_text()
    client = Client()
    client.force_login(member)
    product_page = client.get("/products/broken-one/")
    assert product_page.status_code == 200
    assert b"could not be rendered" in product_page.content
    assert b"Predict churn so retention can act." in product_page.content  # the other sections stand
    assert api(member).get("/api/v1/products/broken-one/markdown/").content.decode().count("[") >= 4000


def test_a_get_edit_patch_round_trip_works_with_every_key_a_get_returns(api, member):
    assert api(member).post("/api/v1/products/", wid_payload(slug="round-trip"), format="json").status_code == 201
    body = api(member).get("/api/v1/products/round-trip/").json()
    body["name"] = "Edited by round trip"
    body["sections"]["architecture"] = "Edited\r\n\r\narchitecture.\n\n"

    response = api(member).patch("/api/v1/products/round-trip/", body, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 2
    assert response.json()["name"] == "Edited by round trip"
    assert response.json()["sections"]["architecture"] == "Edited\n\narchitecture."
    again = api(member).get("/api/v1/products/round-trip/").json()
    again["name"] = "Twice"
    assert api(member).patch("/api/v1/products/round-trip/", again, format="json").status_code == 200


def test_history_reads_commits_whose_message_and_author_hold_git_logs_old_separators(api, member):
    assert api(member).post("/api/v1/products/", wid_payload(slug="odd-commits"), format="json").status_code == 201
    repo = get_repository()
    path = "wids/growth/odd-commits.md"
    message = "By hand\x1e with\x1f separators\u2028and a line separator\x85"
    with repo.locked():
        repo.commit_file(path, repo.read(path) + "\n", author=Author("Odd\x1fname\u2028", "odd@example.com"),
                         message=message)

    history = repo.history(path)
    assert [(c.author_name, c.message) for c in history][0] == ("Odd\x1fname\u2028", message)
    assert len(history) == 2
    assert [c.message for c in repo.histories("wids")[path]] == [message, "Create odd-commits"]
    first, latest = repo.file_spans("wids")[path]
    assert (first.message, latest.message) == ("Create odd-commits", message)
