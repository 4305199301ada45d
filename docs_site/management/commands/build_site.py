from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from docs_site import builder


class Command(BaseCommand):
    help = "Build the static WID site: the one the portal serves at /docs/, or a copy in --output to host anywhere."

    def add_arguments(self, parser):
        parser.add_argument("--output", type=Path, help="write a complete site here instead (an empty or new directory)")
        parser.add_argument("--full", action="store_true", help="rebuild every page of the served site")

    def handle(self, *args, output=None, full=False, **options):
        try:
            result = builder.export(output) if output else builder.build(full=full)
        except builder.SiteError as exc:
            raise CommandError(str(exc)) from exc
        where = output or builder.published()
        self.stdout.write(self.style.SUCCESS(
            f"{result.kind} build of {result.pages} pages ({result.rendered} rendered) in {result.seconds:.2f} s: {where}"))
