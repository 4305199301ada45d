from django.core.management.base import BaseCommand, CommandError

from onboarding import selectors as onboarding
from portal.errors import NotFound
from provisioning import archives, services
from provisioning.models import Archive, Provisioning


class Command(BaseCommand):
    help = ("Bring back a destroyed product's archive: its schemas into the warehouse (pg_restore), its lake "
            "folder and its pipeline repository. Checks every file against the manifest first; refuses to "
            "replace what exists unless --force.")

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--archive", type=int, help="the archive's id (default: the product's newest kept one)")
        parser.add_argument("--into-schema-suffix", default="", metavar="SUFFIX",
                            help="restore beside the original names: schemas p_x_SUFFIX and pub_x_SUFFIX, folders "
                                 "<slug>_SUFFIX under LAKE_ROOT and PIPELINES_ROOT")
        parser.add_argument("--force", action="store_true", help="replace schemas and folders that exist")

    def handle(self, *args, slug, archive, into_schema_suffix, force, **options):
        try:
            product = onboarding.product_get(slug)
        except NotFound as exc:
            raise CommandError(exc.detail) from None
        kept = Archive.objects.filter(product=product).select_related("product")
        chosen = kept.filter(pk=archive).first() if archive else kept.filter(deleted_at__isnull=True).first()
        if chosen is None:
            raise CommandError(f"No archive #{archive} of {slug}." if archive else f"{slug} has no archive kept.")
        provisioned = Provisioning.objects.filter(product=product, provisioned=True).exists()
        try:
            restored = archives.archive_restore(archive=chosen, warehouse=services.warehouse_admin(),
                                                suffix=into_schema_suffix, force=force, provisioned=provisioned,
                                                say=self.stdout.write)
        except archives.ArchiveError as exc:
            raise CommandError(f"Archive #{chosen.pk} of {slug} not restored: {exc}") from None
        self.stdout.write(f"Restored archive #{chosen.pk} of {slug}:")
        self.stdout.write(f"  schemas: {', '.join(restored['schemas']) or 'none in the archive'} "
                          "(owned by the warehouse admin: the product's roles went with its destroy)")
        self.stdout.write(f"  lake folder: {restored['lake'] or 'none in the archive'}")
        self.stdout.write(f"  pipeline repository: {restored['pipeline'] or 'none in the archive'}")
        if restored["missing"]:
            self.stdout.write(f"  not in this archive: {', '.join(restored['missing'])} (an earlier archive of "
                              f"{slug} may hold them: see its job's log)")
