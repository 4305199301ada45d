"""The WID file contract: Markdown with YAML front matter, as stored in the WID repository.

`render` and `parse` are exact inverses for every document that passes validation, which is
what lets the database be rebuilt from git.
"""
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

import frontmatter
import yaml

SLUG_PATTERN = r"^[a-z][a-z0-9-]{1,40}[a-z0-9]$"
SLUG_RE = re.compile(SLUG_PATTERN)

STATUSES = ["draft", "submitted", "changes_requested", "approved", "deprecated", "rejected", "retired"]
TARGETS = ["local", "aws", "azure", "gcp"]
CLASSIFICATIONS = ["public", "internal", "confidential", "restricted"]
COMPUTE_TIERS = ["small", "medium", "large"]
OUTPUT_KINDS = ["table", "dashboard", "api", "feed", "model"]
# Outputs whose data a run writes, so that their age and content can be checked.
CHECKED_OUTPUT_KINDS = ["table", "feed"]
INGESTIONS = ["file_drop", "database_extract", "spreadsheet", "none"]
REVIEW_ACTIONS = ["submitted", "approved", "rejected", "changes_requested", "retired", "withdrawn", "deprecated"]
# Entries about access to the product's data: they change neither its status nor its decision dates.
ACCESS_ACTIONS = ["access_requested", "access_approved", "access_rejected", "access_revoked"]
# Entries that switch the live product's access off and on (the "did anyone scream" test): likewise.
SUSPENSION_ACTIONS = ["suspended", "resumed"]
REVIEW_ACTIONS += ACCESS_ACTIONS + SUSPENSION_ACTIONS
STATUS_NEUTRAL_ACTIONS = ACCESS_ACTIONS + SUSPENSION_ACTIONS

# (key in the API, heading in the file), in file order.
SECTIONS = [
    ("value_proposition", "Value proposition"),
    ("architecture", "Architecture"),
    ("integration_points", "Integration points"),
    ("data_surfacing", "Data surfacing"),
]
REVIEW_LOG_HEADING = "Review log"
RESERVED_HEADINGS = {f"## {title}" for _, title in SECTIONS} | {f"## {REVIEW_LOG_HEADING}"}

FRONT_MATTER_KEYS = [
    "slug", "name", "domain", "team", "status", "version", "target", "classification", "pii",
    "compute_tier", "contacts", "data_custodian", "depends_on", "outputs",
]
# Keys a file holds only when they are set (files written before them parse unchanged), with the
# required key each one follows in the file (several after one key: in this order).
OPTIONAL_KEYS = {
    "approved_version": "version", "suspended": "version", "sunset": "version",
    "ingestion": "outputs", "source": "outputs", "schedule": "outputs", "triggers": "outputs",
}
# Optional keys the portal sets (approval, suspend, deprecate), never a team's input.
PORTAL_KEYS = ("approved_version", "suspended", "sunset")

# Python-Markdown's backslash-escapable characters: escaping every one of them (the backslash
# included) makes `md_unescape(md_escape(s)) == s` for any text.
_ESCAPABLE = "\\`*_{}[]()>#+-.!"
_UNESCAPE_RE = re.compile(r"\\([" + re.escape(_ESCAPABLE) + r"])")


def md_escape(text: str) -> str:
    return "".join("\\" + ch if ch in _ESCAPABLE else ch for ch in text)


def md_unescape(text: str) -> str:
    return _UNESCAPE_RE.sub(r"\1", text)


def wid_path(domain: str, slug: str) -> str:
    """Only ever called with validated slugs: nothing user-typed reaches a path otherwise."""
    if not (SLUG_RE.fullmatch(domain) and SLUG_RE.fullmatch(slug)):  # `$` alone lets a final newline in
        raise ValueError(f"not a valid domain/slug: {domain!r}/{slug!r}")
    return f"wids/{domain}/{slug}.md"


@dataclass
class ReviewEntry:
    action: str
    at: datetime
    actor: str = ""  # username; empty when the policy decided
    actor_name: str = ""
    comment: str = ""

    @property
    def by_policy(self) -> bool:
        return not self.actor


@dataclass
class WidDocument:
    meta: dict
    sections: dict[str, str]
    reviews: list[ReviewEntry] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return self.meta["slug"]

    @property
    def path(self) -> str:
        return wid_path(self.meta["domain"], self.meta["slug"])


def _format_time(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _render_review(entry: ReviewEntry) -> str:
    who = f"@{entry.actor} ({md_escape(entry.actor_name)})" if entry.actor else "policy"
    lines = [f"- {_format_time(entry.at)} **{entry.action}** by {who}"]
    lines += [f"  > {md_escape(line)}".rstrip() for line in entry.comment.split("\n")] if entry.comment else []
    return "\n".join(lines)


_REVIEW_RE = re.compile(
    r"^- (?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) \*\*(?P<action>[a-z_]+)\*\* by "
    r"(?:@(?P<actor>[\w.@+-]+) \((?P<name>.*)\)|policy)$"
)


def _ordered_meta(meta: dict) -> dict:
    ordered = {}
    for key in FRONT_MATTER_KEYS:
        ordered[key] = meta[key]
        for optional, after in OPTIONAL_KEYS.items():
            value = meta.get(optional)
            if after == key and value is not None and value is not False:  # `suspended` is absent when false
                ordered[optional] = meta[optional]
    return ordered


def render(doc: WidDocument) -> str:
    meta = _ordered_meta(doc.meta)
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    parts = [f"---\n{front}---\n"]
    for key, title in SECTIONS:
        body = doc.sections.get(key, "").strip("\n")
        parts.append(f"## {title}\n\n{body}\n" if body else f"## {title}\n")
    reviews = "\n".join(_render_review(r) for r in doc.reviews)
    parts.append(f"## {REVIEW_LOG_HEADING}\n\n{reviews}\n" if reviews else f"## {REVIEW_LOG_HEADING}\n")
    return "\n".join(parts)


class WidFormatError(ValueError):
    pass


def parse(text: str) -> WidDocument:
    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        raise WidFormatError(f"front matter is not valid YAML: {exc}") from exc
    missing = [key for key in FRONT_MATTER_KEYS if key not in post.metadata]
    if missing:
        raise WidFormatError(f"front matter lacks {', '.join(missing)}")
    titles = {f"## {title}": key for key, title in SECTIONS}
    chunks: dict[str, list[str]] = {}
    current = None
    for line in post.content.split("\n"):
        if line in titles:
            current = titles[line]
            chunks[current] = []
        elif line == f"## {REVIEW_LOG_HEADING}":
            current = "__reviews__"
            chunks[current] = []
        elif current is not None:
            chunks[current].append(line)
    sections = {key: "\n".join(chunks.get(key, [])).strip("\n") for key, _ in SECTIONS}
    return WidDocument(meta=dict(post.metadata), sections=sections, reviews=_parse_reviews(chunks.get("__reviews__", [])))


def _parse_reviews(lines: list[str]) -> list[ReviewEntry]:
    entries: list[ReviewEntry] = []
    comment: list[str] = []
    for line in lines:
        match = _REVIEW_RE.match(line)
        if match:
            if entries:
                entries[-1].comment = "\n".join(comment)
            comment = []
            at = datetime.strptime(match["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            entries.append(ReviewEntry(
                action=match["action"], at=at, actor=match["actor"] or "",
                actor_name=md_unescape(match["name"] or ""),
            ))
        elif line.startswith("  >") and entries:
            comment.append(md_unescape(line[4:] if line.startswith("  > ") else line[3:]))
    if entries:
        entries[-1].comment = "\n".join(comment)
    return entries
