"""Lineage maps: data products as boxes, an arrow from each product to every product reading it.

A layered drawing: every product sits one column right of the furthest product it reads from,
products in a column are ordered to keep arrows short (barycentre sweeps), and the result is
plain SVG with a link on every box. Linear in products and edges, so the whole platform's map is
redrawn on every site build (docs/adr/0008 says why not Graphviz or Mermaid).
"""
from collections import defaultdict
from dataclasses import dataclass
from html import escape

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 200, 46, 64, 14, 12
LABEL_CHARS = 26


@dataclass(frozen=True)
class Node:
    slug: str
    name: str
    domain: str
    status: str
    href: str


def _columns(nodes: dict[str, Node], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest path from the products that read nothing; a cycle is cut where it is met."""
    preds, succs = defaultdict(list), defaultdict(list)
    for up, down in edges:
        preds[down].append(up)
        succs[up].append(down)
    waiting = {slug: len(preds[slug]) for slug in nodes}
    ready = sorted((s for s, n in waiting.items() if n == 0), reverse=True)
    column: dict[str, int] = {}
    while len(column) < len(nodes):
        if not ready:  # only cycles are left: place the first unplaced product of one
            ready = [min(s for s in nodes if s not in column)]
        slug = ready.pop()
        if slug in column:
            continue
        column[slug] = max((column[p] + 1 for p in preds[slug] if p in column), default=0)
        for down in succs[slug]:
            waiting[down] -= 1
            if waiting[down] == 0 and down not in column:
                ready.append(down)
    return column


def _order(nodes: dict[str, Node], edges, column: dict[str, int]) -> list[list[str]]:
    layers: list[list[str]] = [[] for _ in range(max(column.values(), default=-1) + 1)]
    for slug in sorted(nodes, key=lambda s: (nodes[s].domain, nodes[s].name.lower(), s)):
        layers[column[slug]].append(slug)
    preds, succs = defaultdict(list), defaultdict(list)
    for up, down in edges:
        preds[down].append(up)
        succs[up].append(down)
    for _ in range(2):
        for neighbours, sweep in ((preds, range(1, len(layers))), (succs, range(len(layers) - 2, -1, -1))):
            for i in sweep:
                other = layers[i - 1] if neighbours is preds else layers[i + 1]
                position = {s: n for n, s in enumerate(other)}
                here = {s: n for n, s in enumerate(layers[i])}

                def centre(slug, position=position, here=here):
                    ranks = [position[n] for n in neighbours[slug] if n in position]
                    return sum(ranks) / len(ranks) if ranks else here[slug]

                layers[i].sort(key=centre)
    return layers


def _label(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def draw(nodes: list[Node], edges: list[tuple[str, str]], *, title: str, focus: str | None = None) -> str:
    """An SVG lineage map; `edges` are (product read, product reading it) pairs of slugs in `nodes`."""
    by_slug = {n.slug: n for n in nodes}
    edges = sorted({(u, d) for u, d in edges if u in by_slug and d in by_slug and u != d})
    column = _columns(by_slug, edges)
    layers = _order(by_slug, edges, column)
    tallest = max((len(layer) for layer in layers), default=0)
    height = PAD * 2 + max(tallest * (BOX_H + GAP_Y) - GAP_Y, BOX_H)
    width = PAD * 2 + max(len(layers) * (BOX_W + GAP_X) - GAP_X, BOX_W)
    where = {}
    for i, layer in enumerate(layers):
        offset = (height - PAD * 2 - (len(layer) * (BOX_H + GAP_Y) - GAP_Y)) / 2
        for n, slug in enumerate(layer):
            where[slug] = (PAD + i * (BOX_W + GAP_X), PAD + offset + n * (BOX_H + GAP_Y))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage-map" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" role="group" aria-labelledby="lineage-title lineage-desc">',
        f'<title id="lineage-title">{escape(title)}</title>',
        f'<desc id="lineage-desc">{len(nodes)} data products; an arrow points from a product to each product '
        f'that reads from it. The same relations are listed as text below the map.</desc>',
        '<defs><marker id="lineage-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="lineage-arrowhead"/></marker></defs>',
    ]
    for up, down in edges:
        (x1, y1), (x2, y2) = where[up], where[down]
        x1, y1, y2 = x1 + BOX_W, y1 + BOX_H / 2, y2 + BOX_H / 2
        bend = max((x2 - x1) / 2, 30)
        out.append(f'<path class="lineage-edge" d="M{x1:.0f},{y1:.0f} C{x1 + bend:.0f},{y1:.0f} '
                   f'{x2 - bend:.0f},{y2:.0f} {x2:.0f},{y2:.0f}" marker-end="url(#lineage-arrow)"/>')
    for slug, (x, y) in where.items():
        node = by_slug[slug]
        css = f"lineage-node status-{node.status}" + (" lineage-focus" if slug == focus else "")
        out.append(
            f'<a href="{escape(node.href)}" class="{css}"><title>{escape(node.name)} ({escape(node.domain)}, '
            f'{escape(node.status.replace("_", " "))})</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
            f'<text x="{x + 10:.0f}" y="{y + 19:.0f}" class="lineage-name">{escape(_label(node.name))}</text>'
            f'<text x="{x + 10:.0f}" y="{y + 36:.0f}" class="lineage-sub">'
            f'{escape(_label(node.domain + " · " + node.status.replace("_", " ")))}</text></a>'
        )
    out.append("</svg>")
    return "\n".join(out)


def adjacency(edges: list[tuple[str, str]]) -> tuple[dict, dict]:
    """(what each product reads, what reads each product), to reuse across many neighbourhoods."""
    ups, downs = defaultdict(set), defaultdict(set)
    for up, down in edges:
        ups[down].add(up)
        downs[up].add(down)
    return ups, downs


def neighbourhood(slug: str, edges: list[tuple[str, str]] | None = None, depth: int = 2, *,
                  links: tuple[dict, dict] | None = None) -> set[str]:
    """The product, what it reads and what reads it, `depth` steps either way."""
    ups, downs = links or adjacency(edges or [])
    seen = {slug}
    for links in (ups, downs):
        frontier = {slug}
        for _ in range(depth):
            frontier = {n for s in frontier for n in links[s]} - seen
            seen |= frontier
    return seen
