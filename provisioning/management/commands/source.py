"""`manage.py source add|change|list|remove`: the register of ingestion sources, from the command line.

A connection URL holds a password, and every user of a machine reads every process's arguments: a
URL is therefore read from standard input (`--connection -`), never taken from the command line; a
reference (env:NAME, file:/path) may be given there.
"""
import sys

from django.core.management.base import BaseCommand, CommandError

from portal.errors import PortalError
from provisioning import sources


class Command(BaseCommand):
    help = "Register, change, list or remove the sources products ingest from (databases, share folders)."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        for action in ("add", "change"):
            sub = actions.add_parser(action, help=f"{action} a source")
            sub.add_argument("name")
            if action == "add":
                sub.add_argument("--kind", required=True, choices=sources.Source.Kind.values)
            sub.add_argument("--description")
            sub.add_argument("--connection", help="env:NAME or file:/path, or - to read a postgresql:// URL from "
                                                  "standard input")
            sub.add_argument("--path", help="a share folder's absolute path on the workers' machines")
        actions.add_parser("list", help="list the sources")
        actions.add_parser("remove", help="remove a source no product reads").add_argument("name")

    def handle(self, *args, action, **options):
        try:
            if action == "list":
                for source in sources.source_list():
                    where = sources.masked(source) or source.path
                    users = ", ".join(sources.source_users(source.name)) or "-"
                    self.stdout.write(f"{source.name}\t{source.kind}\t{where}\tused by {users}\t{source.description}")
                return
            if action == "remove":
                sources.source_delete(user=None, name=options["name"])
                self.stdout.write(f"Removed source {options['name']}.")
                return
            data = {key: options[key] for key in ("description", "connection", "path") if options.get(key) is not None}
            if data.get("connection") == "-":
                data["connection"] = sys.stdin.readline().strip()
            if action == "add":
                source = sources.source_create(user=None, data={"name": options["name"], "kind": options["kind"],
                                                                **data})
            else:
                source = sources.source_update(user=None, name=options["name"], data=data)
            self.stdout.write(f"Source {source.name} ({source.kind}): {sources.masked(source) or source.path}")
        except PortalError as exc:
            details = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.errors.items()
                                if field != "products")
            raise CommandError(f"{exc.detail}{' ' + details if details else ''}") from None
