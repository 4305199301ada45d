"""MkDocs hook: keeps the search index whole across `mkdocs build --dirty`.

A dirty build renders only the pages that changed, and the search plugin indexes only the pages
it rendered; so the entries of every page are kept beside the output (`<site_dir>.search.json`)
and the index is written from all of them after each build.
"""
import json
from pathlib import Path

from mkdocs.contrib.search.search_index import SearchIndex

_pages: list[str] = []
_built: dict[str, list[dict]] = {}


def _search_config(config) -> dict:
    return dict(config.plugins["search"].config)


def on_files(files, config):
    _pages[:] = ["" if f.url == "./" else f.url for f in files.documentation_pages()]  # as `page.url` says
    _built.clear()
    return files


def on_page_context(context, page, config, nav):
    index = SearchIndex(**_search_config(config))
    index.add_entry_from_context(page)
    _built[page.url] = index._entries
    return context


def on_post_build(config):
    cache = Path(str(config.site_dir).rstrip("/") + ".search.json")
    entries = json.loads(cache.read_text()) if cache.exists() else {}
    entries.update(_built)
    entries = {url: entries[url] for url in _pages if url in entries}
    cache.write_text(json.dumps(entries))
    index = SearchIndex(**_search_config(config))
    index._entries = [entry for url in _pages if url in entries for entry in entries[url]]
    out = Path(config.site_dir) / "search" / "search_index.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(index.generate_search_index(), encoding="utf-8")
