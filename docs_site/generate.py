"""The WID site's sources: a Markdown page per WID and index pages, written for MkDocs.

Page bodies are HTML blocks rendered by Django templates (so every value is escaped), and each
WID section is sanitised HTML from `onboarding.rendering.render_markdown`, the portal's own
renderer: MkDocs passes raw HTML blocks through untouched, so nothing a WID says becomes markup
of its own. Headings stay Markdown, for the page's table of contents.
"""
import hashlib
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import yaml
from django.conf import settings
from django.template.loader import render_to_string

from docs_site import lineage
from onboarding import selectors, widfile
from onboarding.models import Product
from onboarding.rendering import render_markdown
from onboarding.services import AMENDMENT_STATUSES
from onboarding.validation import markdown_too_costly
from onboarding.widrepo import CommitInfo, get_repository
from provisioning.ports import location
from provisioning.rendering import PIPELINE_VARIANTS, published_schema
from provisioning.selectors import archive_summary, status_summaries, usage_summaries

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
ASSETS = HERE / "assets"


def _generator_version() -> str:
    """Changes whenever the code, templates, theme or MkDocs configuration of the site change:
    a build after such a change is a full one."""
    digest = hashlib.sha256()
    for path in sorted(HERE.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".html", ".md", ".yml", ".css"} and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(HERE)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


VERSION = _generator_version()


def wid_page(product) -> str:
    return f"{product.domain}/{product.slug}/index.md"


def url_of(page: str) -> str:
    """The page's URL relative to the site's root: `growth/churn/index.md` -> `growth/churn/`."""
    return page[: -len("index.md")] if page.endswith("index.md") else page[: -len(".md")] + "/"


def base_of(page: str) -> str:
    """The relative path from a page's URL back to the site's root."""
    return "../" * url_of(page).count("/")


@dataclass
class SiteData:
    products: list
    status: dict[int, dict]
    edges: list[tuple[str, str]]
    usage: dict[int, dict] = field(default_factory=dict)  # {product id: {port: who read it, by day}}
    notices: dict[str, dict] = field(default_factory=dict)  # deprecated or suspended products: see selectors
    by_slug: dict = field(default_factory=dict)
    links: tuple = ()

    def __post_init__(self):
        self.by_slug = {p.slug: p for p in self.products}
        self.links = lineage.adjacency(self.edges)


def load() -> SiteData:
    products = list(Product.objects.select_related("team").order_by("slug"))
    known = {p.slug for p in products}
    edges = [(up, p.slug) for p in products for up in p.depends_on if up in known]
    return SiteData(products=products, status=status_summaries(), edges=edges, usage=usage_summaries(),
                    notices=selectors.product_notices(known))


# The ingestion patterns, each with a page made from its scaffold variant's README.
INGESTION_PATTERNS = tuple(variant for variant in PIPELINE_VARIANTS if variant != "none")


def index_page_paths(data: SiteData) -> list[str]:
    return [
        "index.md", "-/lineage/index.md", "-/teams/index.md", "-/status/index.md", "-/ingestion/index.md",
        *[f"-/ingestion/{pattern}/index.md" for pattern in INGESTION_PATTERNS],
        *sorted({f"{p.domain}/index.md" for p in data.products}),
        *sorted({f"-/teams/{p.team.slug}/index.md" for p in data.products}),
        *[f"-/status/{s}/index.md" for s in widfile.STATUSES],
    ]


def _page(title: str, body: str, *, searchable: bool = True) -> str:
    """Index pages stay out of the search: people search WIDs, and lists would only repeat them."""
    meta = {"title": escape(title), **({} if searchable else {"search": {"exclude": True}})}
    front = yaml.safe_dump(meta, allow_unicode=True, width=1000)
    return f"---\n{front}---\n\n{body.strip()}\n"


def _nodes(data: SiteData, slugs, base: str) -> list[lineage.Node]:
    return [lineage.Node(p.slug, p.name, p.domain, p.status, f"{base}{p.domain}/{p.slug}/")
            for p in (data.by_slug[s] for s in sorted(slugs))]


def _table(data: SiteData, products, base: str, *, updated: bool = False) -> str:
    """A table of products; built without template loops, since index pages list hundreds."""
    head = "".join(f'<th scope="col">{h}</th>' for h in ("Data product", "Domain", "Team", "Status",
                                                          *(("Updated",) if updated else ())))
    rows = []
    for p in products:
        state = data.status.get(p.id, {})
        badge = '<span class="wid-badge provisioned">provisioned</span>' if state.get("provisioned") else ""
        if p.suspended:
            badge += ' <span class="wid-badge suspended">suspended</span>'
        trouble = (state.get("health") or {}).get("state") if not state.get("retired") else None
        if trouble in ("stale", "failing"):
            badge += f' <span class="wid-badge health-{trouble}">{trouble}</span>'
        cells = [
            f'<a href="{base}{p.domain}/{p.slug}/">{escape(p.name)}</a><br><small>{p.slug}</small>',
            f'<a href="{base}{p.domain}/">{p.domain}</a>', f'<a href="{base}-/teams/{p.team.slug}/">{p.team.slug}</a>',
            f'<span class="wid-badge status-{p.status}">{p.status.replace("_", " ")}</span> {badge}',
        ]
        if updated:
            cells.append(f'<time datetime="{p.updated_at.isoformat()}">{p.updated_at:%Y-%m-%d}</time>')
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    body = "\n".join(rows) or f'<tr><td colspan="{4 + updated}">None.</td></tr>'
    return f'<div class="table-wrap" tabindex="0"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table></div>'


def _rows(data: SiteData, products, base: str) -> list[dict]:
    return [{"p": p, "href": f"{base}{p.domain}/{p.slug}/", "team_href": f"{base}-/teams/{p.team.slug}/",
             "provisioned": data.status.get(p.id, {}).get("provisioned", False)} for p in products]


def index_pages(data: SiteData) -> dict[str, str]:
    pages = {}
    products = data.products
    by_domain, by_team, by_status = defaultdict(list), defaultdict(list), defaultdict(list)
    for p in products:
        by_domain[p.domain].append(p)
        by_team[p.team.slug].append(p)
        by_status[p.status].append(p)
    teams = {p.team.slug: p.team for p in products}
    recent = sorted(products, key=lambda p: (p.updated_at, p.slug), reverse=True)[:15]
    statuses = [(s, len(by_status[s])) for s in widfile.STATUSES]
    pages["index.md"] = _page("Work Initiation Documents", render_to_string("docs_site/home.html", {
        "base": "", "total": len(products), "statuses": statuses,
        "domains": [(d, len(ps), Counter(p.status for p in ps)) for d, ps in sorted(by_domain.items())],
        "teams": [(teams[t], len(ps)) for t, ps in sorted(by_team.items())],
        "recent": _table(data, recent, "", updated=True), "portal_url": settings.PORTAL_BASE_URL,
    }))
    for domain, ps in by_domain.items():
        path = f"{domain}/index.md"
        pages[path] = _page(f"Domain {domain}", render_to_string("docs_site/listing.html", {
            "heading": f"Domain {domain}", "table": _table(data, ps, base_of(path)),
            "intro": f"{len(ps)} data product{'s' if len(ps) != 1 else ''} in the {domain} domain."}), searchable=False)
    pages["-/teams/index.md"] = _page("Teams", render_to_string("docs_site/teams.html", {
        "base": base_of("-/teams/index.md"), "teams": [(teams[t], len(ps)) for t, ps in sorted(by_team.items())]}),
        searchable=False)
    for slug, ps in by_team.items():
        path = f"-/teams/{slug}/index.md"
        team = teams[slug]
        pages[path] = _page(f"Team {team.name}", render_to_string("docs_site/listing.html", {
            "heading": f"Team {team.name}", "table": _table(data, ps, base_of(path)),
            "intro": f"Data products owned by {team.name} ({team.slug})."}), searchable=False)
    pages["-/status/index.md"] = _page("By status", render_to_string("docs_site/statuses.html", {
        "base": base_of("-/status/index.md"), "statuses": statuses}), searchable=False)
    for status in widfile.STATUSES:
        path = f"-/status/{status}/index.md"
        label = status.replace("_", " ")
        pages[path] = _page(f"Status {label}", render_to_string("docs_site/listing.html", {
            "heading": f"Status: {label}", "table": _table(data, by_status[status], base_of(path)),
            "intro": f"{len(by_status[status])} WID{'s' if len(by_status[status]) != 1 else ''} {label}."}),
            searchable=False)
    pages.update(_ingestion_pages(data))
    base = base_of("-/lineage/index.md")
    svg = lineage.draw(_nodes(data, data.by_slug, base), data.edges, title="Lineage of every data product")
    pages["-/lineage/index.md"] = _page("Lineage", render_to_string("docs_site/lineage.html", {
        "svg": svg, "relations": _relations(data, data.products, base)}), searchable=False)
    return pages


def _pattern(name: str) -> dict:
    """A pattern's title, first paragraph and body, from terraform_templates/scaffold/<name>/README.md."""
    text = (settings.TERRAFORM_TEMPLATES / "scaffold" / name / "README.md").read_text()
    first, _, body = text.partition("\n")
    summary = " ".join(body.strip().split("\n\n")[0].split())
    return {"name": name, "title": first.lstrip("# ").strip(), "summary": summary, "body": body}


def _ingestion_pages(data: SiteData) -> dict[str, str]:
    pages, patterns = {}, []
    for name in INGESTION_PATTERNS:
        pattern = _pattern(name)
        users = [p for p in data.products if p.ingestion == name and p.status != "retired"]
        path = f"-/ingestion/{name}/index.md"
        # The README is the portal's own text, rendered and cleaned like a WID's all the same.
        readme = render_markdown(f"# {pattern['title']}\n{pattern['body']}")
        pages[path] = _page(f"Ingestion: {pattern['title']}", render_to_string("docs_site/ingestion_pattern.html", {
            "name": name, "readme": readme, "table": _table(data, users, base_of(path))}))
        patterns.append({**pattern, "count": len(users)})
    pages["-/ingestion/index.md"] = _page("Ingestion patterns", render_to_string(
        "docs_site/ingestion.html", {"patterns": patterns}), searchable=False)
    return pages


def _relations(data: SiteData, products, base: str) -> list[dict]:
    reads = defaultdict(list)
    for up, down in data.edges:
        reads[down].append(up)
    return [{"p": p, "href": f"{base}{p.domain}/{p.slug}/",
             "reads": [{"p": data.by_slug[u], "href": f"{base}{data.by_slug[u].domain}/{u}/"} for u in sorted(reads[p.slug])]}
            for p in products if reads[p.slug]]


def wid_fingerprint(data: SiteData, product) -> str:
    """Everything a WID page shows besides its own file (whose commit is `head_sha`)."""
    around = lineage.neighbourhood(product.slug, links=data.links)
    parts = {
        "version": VERSION, "head": product.head_sha, "team": product.team.name,
        "status": data.status.get(product.id), "portal": settings.PORTAL_BASE_URL,
        "ports": [published_schema(product.slug), str(settings.LAKE_ROOT)],  # where its ports are published
        "usage": data.usage.get(product.id),  # by day: a page changes at most daily per reader
        "around": [(s, data.by_slug[s].name, data.by_slug[s].domain, data.by_slug[s].status) for s in sorted(around)],
        "notices": [data.notices.get(s) for s in sorted(product.depends_on)],  # the banners of what it reads
        "tombstone": archive_summary(product) if product.status == "retired" else None,  # its archive's fate
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


# C0 controls other than tab and newline are not allowed in HTML and Python-Markdown uses two of
# them (STX, ETX) as its own placeholders: in a page's source they become their visible pictures.
_CONTROLS = {code: 0x2400 + code for code in range(0x20) if code not in (0x09, 0x0A)}


def wid_pages(data: SiteData, slugs, histories: dict[str, list[CommitInfo]] | None = None) -> dict[str, str]:
    """A page per WID. One that cannot be rendered becomes a page that says so: it never takes
    the rest of the site down."""
    repo = get_repository()
    pages = {}
    for slug in slugs:
        product = data.by_slug[slug]
        try:
            pages[wid_page(product)] = _wid_page(data, repo, product, histories).translate(_CONTROLS)
        except Exception as exc:
            logger.exception("WID site: the page of %s could not be rendered", slug)
            pages[wid_page(product)] = _page(product.name, (
                f'<h1>{escape(product.name)}</h1>\n<p class="wid-warning" role="note">This WID could not be '
                f'rendered ({escape(type(exc).__name__)}: {escape(str(exc)[:300])}). Its file is '
                f'<code>{escape(product.path)}</code>; the portal shows it at '
                f'<a href="{escape(settings.PORTAL_BASE_URL)}/products/{slug}/">its product page</a>.</p>'
            ).translate(_CONTROLS))
    return pages


class UnrenderableSection(ValueError):
    pass


def _section_html(text: str) -> str:
    problem = markdown_too_costly(text)
    if problem:  # a WID committed to git by hand skipped the portal's checks
        raise UnrenderableSection(problem)
    return render_markdown(text)


def _wid_page(data: SiteData, repo, product, histories) -> str:
    slug = product.slug
    path = wid_page(product)
    base = base_of(path)
    try:
        doc = widfile.parse(repo.read(product.path) or "")
        meta, sections, reviews, unreadable = doc.meta, doc.sections, doc.reviews, ""
    except widfile.WidFormatError as exc:
        # The index names a file this repository lacks or cannot read (an index built from
        # another repository): the page shows what the index holds, and says so.
        logger.warning("WID site: %s: %s; its page shows the index's copy", product.path, exc)
        meta = {"contacts": product.contacts, "data_custodian": product.data_custodian, "outputs": product.outputs}
        sections, reviews, unreadable = product.sections, [], f"{product.path}: {exc}"
    history = histories.get(product.path, []) if histories is not None else repo.history(product.path)
    around = lineage.neighbourhood(slug, links=data.links)
    sub_edges = [(u, d) for u, d in data.edges if u in around and d in around]
    svg = lineage.draw(_nodes(data, around, base), sub_edges, title=f"Lineage of {product.name}", focus=slug)
    upstream = [data.by_slug[u] for u in sorted(data.links[0][slug])]
    downstream = [data.by_slug[d] for d in sorted(data.links[1][slug])]
    status = data.status.get(product.id) or {}
    live = _live_meta(repo, product, meta, history)
    return _page(product.name, render_to_string("docs_site/wid.html", {
        "amendment": product.approved_version is not None and product.status in AMENDMENT_STATUSES,
        "ports": [{"name": o["name"], "kind": o["kind"], "location": location(slug, o),
                   "usage": _port_usage(data, product, o, base)} for o in (live or {}).get("outputs", [])],
        "p": product, "meta": meta, "base": base, "unreadable": unreadable,
        "sections": [(title, _section_html(sections.get(key, ""))) for key, title in widfile.SECTIONS],
        "reviews": reviews, "history": [(len(history) - i, c) for i, c in enumerate(history)],
        "svg": svg, "upstream": _rows(data, upstream, base), "downstream": _rows(data, downstream, base),
        "missing": [s for s in product.depends_on if s not in data.by_slug],
        "state": status, "portal_url": f"{settings.PORTAL_BASE_URL}/products/{slug}/",
        "notice": _own_notice(meta, reviews),
        "tombstone": _tombstone(product, reviews, [p.slug for p in downstream], base, data)
        if product.status == "retired" else None,
        "upstream_notices": [{**data.notices[s], "href": f"{base}{data.notices[s]['domain']}/{s}/"}
                             for s in product.depends_on if s in data.notices],
    }))


def _port_usage(data: SiteData, product, output: dict, base: str) -> dict | None:
    """Who read a table or feed port, measured (provisioning's usage): products and runs linked, by
    day, people only counted. None for ports that are not measured."""
    if output["kind"] not in ("table", "feed"):
        return None
    seen = (data.usage.get(product.id) or {}).get(output["name"]) or {"products": [], "runs": [], "people": 0}

    def linked(readers):
        return [{"slug": slug, "day": day, "href": f"{base}{data.by_slug[slug].domain}/{slug}/"
                 if slug in data.by_slug else ""} for slug, day in readers]

    return {"products": linked(seen["products"]), "runs": linked(seen["runs"]), "people": seen["people"]}
def _tombstone(product, reviews, readers: list[str], base: str, data: SiteData) -> dict:
    """What a retired WID's page says first: retired when and by whom (its review log), what its
    destroy archived and where, until when (provisioning), and who depended on it then and now."""
    retired = next((r for r in reversed(reviews) if r.action == "retired"), None)
    destroy = archive_summary(product)
    then = list(destroy["dependants"]) if destroy else []

    def linked(slug):
        known = data.by_slug.get(slug)
        return {"slug": slug, "href": f"{base}{known.domain}/{slug}/" if known else ""}

    return {"at": retired.at if retired else product.updated_at,
            "by": (retired.actor_name or retired.actor or "the policy") if retired else "",
            "comment": retired.comment if retired else "", "destroy": destroy,
            "depended": [linked(s) for s in sorted(set(then) | set(readers))]}


def _own_notice(meta: dict, reviews) -> dict | None:
    """The page's own banner, from its file (the index's copy of it may be behind the page's commit)."""
    deprecated = meta.get("status") == "deprecated"
    if not (deprecated or meta.get("suspended")):
        return None
    last = {r.action: r.comment for r in reviews if r.action in ("deprecated", "suspended")}
    return {"status": meta.get("status"), "sunset": meta.get("sunset"), "suspended": bool(meta.get("suspended")),
            "deprecation": last.get("deprecated", "") if deprecated else "",
            "suspension": last.get("suspended", "") if meta.get("suspended") else ""}


def _live_meta(repo, product, meta: dict, history: list[CommitInfo]) -> dict | None:
    """The front matter of the approved version, whose ports are the published ones: the file itself
    unless an amendment is open, else its commit in `history` (the n-th commit is version n)."""
    live = product.approved_version
    if live is None or product.status == "retired":
        return None
    if meta.get("version") == live:
        return meta
    position = len(history) - live
    if 0 <= position < len(history):
        doc = widfile.parse(repo.show(history[position].sha, product.path))
        if doc.meta.get("version") == live:
            return doc.meta
    return selectors.document_at_version(product, live).meta


def assets() -> dict[str, bytes]:
    return {f"assets/{path.name}": path.read_bytes() for path in sorted(ASSETS.iterdir()) if path.is_file()}


def write(src: Path, pages: dict[str, str | bytes]) -> list[str]:
    """Write the pages that differ from what is on disk; untouched files keep their times, which
    is what `mkdocs build --dirty` goes by. Returns the paths written."""
    written = []
    for rel, content in pages.items():
        target = src / rel
        data = content.encode("utf-8") if isinstance(content, str) else content
        try:
            if target.read_bytes() == data:
                continue
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        written.append(rel)
    return written
