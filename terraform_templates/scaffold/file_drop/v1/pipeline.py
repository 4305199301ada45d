"""This product's pipeline (ingestion pattern: file drop): deliveries of CSV files into the lake's raw/
area, each loaded once, every row kept, and published.

Each raw/*.csv is a delivery: cleaned (snake_case headers, trimmed values, no empty rows) into
curated/, its rows loaded into the private table `deliveries` (a file dropped again under the same
name replaces its earlier rows), then moved to staging/processed/, so raw/ holds only what is new.
Files whose names start with "." are never read: write under such a name, then rename.

Settings come from the environment and never from this repository:
  LAKE_PATH         the product's lake folder (holds raw/, staging/, curated/)
  PRODUCT_DSN       the product's own warehouse credentials; without it only the lake is written
                    (and raw/ is left as it is: nothing was loaded)
  PUBLISHED_SCHEMA  the product's published schema, the one its consumers may read
  OUTPUT_PORTS      its output ports as JSON, [{"name": ..., "kind": ...}]: each `table` port is
                    rewritten as PUBLISHED_SCHEMA.<name> with every row delivered so far, each `feed`
                    port as curated/<name>/ with every curated file; other kinds are not written here
The product's private schema is recorded by the portal in .portal-template.json.
"""
import csv
import json
import os
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLE = "deliveries"
COLUMNS = ("(source text NOT NULL, line int NOT NULL, record jsonb NOT NULL,"
           " loaded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (source, line))")
PORT_NAMES = {"table": re.compile(r"^[a-z][a-z0-9_]{0,62}$"), "feed": re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")}


class SettingsError(ValueError):
    """The environment's settings are unusable; nothing was written."""


def schema() -> str:
    return json.loads((HERE / ".portal-template.json").read_text())["schema"]


def output_ports(text: str | None) -> list[dict]:
    """OUTPUT_PORTS, checked, since its names become table and folder names."""
    try:
        ports = json.loads(text) if text else []
    except ValueError as exc:
        raise SettingsError(f"OUTPUT_PORTS is not JSON: {exc}") from None
    if not isinstance(ports, list) or not all(isinstance(port, dict) for port in ports):
        raise SettingsError("OUTPUT_PORTS must be a JSON list of {name, kind}")
    for port in ports:
        pattern = PORT_NAMES.get(port.get("kind"))
        if pattern and not (isinstance(port.get("name"), str) and pattern.fullmatch(port["name"])):
            raise SettingsError(f"OUTPUT_PORTS: {port.get('name')!r} is not a {port['kind']} port name")
    return ports


def clean(rows):
    """Header names in snake_case, values trimmed, empty rows dropped."""
    for row in rows:
        cleaned = {key.strip().lower().replace(" ", "_"): (value or "").strip()
                   for key, value in row.items() if key is not None}
        if any(cleaned.values()):
            yield cleaned


def run(lake_path: Path, dsn: str | None = None, ports: list[dict] = (), published_schema: str | None = None,
        ) -> dict[str, int]:
    """Rows of each delivery loaded by this run."""
    tables = [port["name"] for port in ports if port.get("kind") == "table"]
    if tables and dsn and not published_schema:
        raise SettingsError("table ports need PUBLISHED_SCHEMA")
    raw, curated, processed = lake_path / "raw", lake_path / "curated", lake_path / "staging" / "processed"
    curated.mkdir(exist_ok=True)
    batches = {}
    for source in sorted(path for path in raw.glob("*.csv") if not path.name.startswith(".")):
        with source.open(newline="", encoding="utf-8-sig") as file:
            rows = list(clean(csv.DictReader(file)))
        with (curated / source.name).open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)
        batches[source.name] = rows
    for port in ports:
        if port.get("kind") == "feed":
            publish_feed(curated, port["name"])
    if dsn:
        load(dsn, batches, published_schema, tables)
        processed.mkdir(parents=True, exist_ok=True)
        for name in batches:  # loaded: the delivery leaves the inbox (a move: a sandbox may refuse a rename)
            shutil.move(raw / name, processed / name)
    return {name: len(rows) for name, rows in batches.items()}


def publish_feed(curated: Path, port: str) -> None:
    """curated/<port>/ holds every curated delivery."""
    folder = curated / port
    folder.mkdir(exist_ok=True)
    for path in sorted(path for path in curated.glob("*.csv") if not path.name.startswith(".")):
        shutil.copyfile(path, folder / f".{path.name}.tmp")
        os.replace(folder / f".{path.name}.tmp", folder / path.name)


def load(dsn: str, batches: dict[str, list[dict]], published_schema: str | None = None, tables=()) -> None:
    """Replace each delivery's rows in the private table and rewrite each table port with every row
    delivered so far, in one transaction: consumers never see half a run."""
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb

    private = sql.Identifier(schema(), TABLE)
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} " + COLUMNS).format(private))
        with conn.cursor() as cursor:
            for source, rows in batches.items():
                cursor.execute(sql.SQL("DELETE FROM {} WHERE source = %s").format(private), [source])
                cursor.executemany(sql.SQL("INSERT INTO {} (source, line, record) VALUES (%s, %s, %s)").format(private),
                                   [(source, line, Jsonb(row)) for line, row in enumerate(rows, start=1)])
        for name in tables:
            table = sql.Identifier(published_schema, name)
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} " + COLUMNS).format(table))
            conn.execute(sql.SQL("DELETE FROM {}").format(table))
            conn.execute(sql.SQL("INSERT INTO {} SELECT source, line, record, loaded_at FROM {}")
                         .format(table, private))


def main() -> int:
    lake = os.environ.get("LAKE_PATH")
    if not lake:
        print("LAKE_PATH is not set", file=sys.stderr)
        return 2
    try:
        ports = output_ports(os.environ.get("OUTPUT_PORTS"))
        dsn = os.environ.get("PRODUCT_DSN") or None
        counts = run(Path(lake), dsn, ports, os.environ.get("PUBLISHED_SCHEMA") or None)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    for source, count in counts.items():
        print(f"{source}: {count} rows delivered")
    if not counts:
        print("no new delivery in raw/")
    for port in ports:
        if port.get("kind") == "feed" or (port.get("kind") == "table" and dsn):
            print(f"published {port['kind']} port {port['name']}")
        elif port.get("kind") == "table":
            print(f"table port {port['name']} not published: PRODUCT_DSN is not set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
