"""Render a product's Terraform working directory: copy the target's module, write its values.

Values only ever reach Terraform as data in `terraform.tfvars.json`; nothing a user typed is
pasted into HCL. The directory is disposable and re-rendered before every job.
"""
import errno
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from onboarding.widfile import SLUG_RE, TARGETS

TEMPLATE_VERSION = "1"
# Quotas per compute tier, the same for every target.
COMPUTE_TIERS = {
    "small": {"concurrency": 1, "memory_mb": 512, "connection_limit": 5, "statement_timeout_ms": 60_000},
    "medium": {"concurrency": 2, "memory_mb": 2048, "connection_limit": 10, "statement_timeout_ms": 300_000},
    "large": {"concurrency": 4, "memory_mb": 8192, "connection_limit": 20, "statement_timeout_ms": 1_800_000},
}


def private_schema(slug: str) -> str:
    """The product's own schema, named after (and owned by) its login role."""
    return "p_" + slug.replace("-", "_")


# The pipeline a product's repository is scaffolded from: its WID's `ingestion` pattern (each one has a
# variant of the scaffold, terraform_templates/scaffold/<pattern>/), or the base pipeline for `none`.
PIPELINE_VARIANTS = ("none", "file_drop", "database_extract", "spreadsheet")


def published_schema(slug: str) -> str:
    """The schema a product publishes its table ports in, apart from its private one (`p_...`)."""
    return "pub_" + slug.replace("-", "_")


class RenderError(Exception):
    """The product cannot be rendered (unknown target, invalid values, a broken template)."""


@dataclass(frozen=True)
class ProductSpec:
    """What provisioning needs to know of a product (from onboarding's selectors)."""

    slug: str
    domain: str
    team: str
    target: str
    classification: str
    pii: bool
    compute_tier: str
    wid_url: str
    # Producers whose published ports this product may read (each provisioned, and approved by its
    # owners when it is sensitive), sorted; personal login roles on this product's published schema
    # ({"name": "a_<request id>", "valid_until": "YYYY-MM-DDTHH:MM:SSZ"}), sorted by name; the
    # generation of the product's password (one more on every rotation).
    reads: tuple[str, ...] = ()
    readers: tuple[dict, ...] = ()
    password_generation: int = 0
    outputs: tuple[dict, ...] = ()
    ingestion: str = "none"
    # The WID's `suspended: true` (its current file, not the approved version: a suspension holds
    # whatever the amendment's state): access off, data kept (docs/adr/0024).
    suspended: bool = False


def tfvars(spec: ProductSpec) -> dict:
    tier = COMPUTE_TIERS[spec.compute_tier]
    return {
        "product": spec.slug,
        "domain": spec.domain,
        "team": spec.team,
        "classification": spec.classification,
        "pii": spec.pii,
        "compute_tier": spec.compute_tier,
        **tier,
        "wid_url": spec.wid_url,
        "reads": sorted(spec.reads),
        "readers": sorted((dict(r) for r in spec.readers), key=lambda r: r["name"]),
        "password_generation": spec.password_generation,
        "suspended": spec.suspended,
        "template_version": TEMPLATE_VERSION,
        "lake_root": str(settings.LAKE_ROOT),
        "pipelines_root": str(settings.PIPELINES_ROOT),
        "scaffold_dir": str(settings.TERRAFORM_TEMPLATES / "scaffold" / "pipeline" / f"v{TEMPLATE_VERSION}"),
        "pipeline_variant": spec.ingestion,
    }


def naming_a_full_disk(message: str) -> str:
    """A command's error that a full disk caused (terraform says only which file), with the disk named."""
    if "no space left on device" not in message.lower() or str(settings.TERRAFORM_WORKDIR) in message:
        return message
    return (f"{message} (the disk under the working directories, {settings.TERRAFORM_WORKDIR}, is full: "
            "free space there, then retry)")


def render(spec: ProductSpec, workdir: Path | None = None) -> Path:
    """Copy terraform_templates/<target>/ into the product's working directory and write its values."""
    if spec.target not in TARGETS:
        raise RenderError(f"unknown target {spec.target!r}")
    if (not SLUG_RE.fullmatch(spec.slug) or spec.compute_tier not in COMPUTE_TIERS
            or spec.ingestion not in PIPELINE_VARIANTS):
        raise RenderError(f"invalid product values for {spec.slug!r}")
    source = settings.TERRAFORM_TEMPLATES / spec.target
    if not (source / "main.tf").is_file():
        raise RenderError(f"no template for target {spec.target!r} ({source}/main.tf is missing)")
    workdir = workdir or settings.TERRAFORM_WORKDIR / spec.slug
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        # Keep .terraform/ (providers and backend, re-initialised anyway); replace everything else,
        # the lock file too: it pins the mirror's wrapper by hash, which moves with the install.
        for entry in workdir.iterdir():
            if entry.name != ".terraform":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        shutil.copytree(source, workdir, dirs_exist_ok=True)
        (workdir / "terraform.tfvars.json").write_text(json.dumps(tfvars(spec), indent=2, sort_keys=True))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise RenderError(f"could not render {spec.slug}: the disk under the working directory {workdir} is "
                              f"full ({exc.strerror}); nothing was applied. Free space there, then retry.") from exc
        raise RenderError(f"could not render {spec.slug}: {exc}") from exc
    return workdir
