"""This product's pipeline (ingestion pattern: spreadsheet): the sheets the portal copied from the
share folder into the lake's raw/ area, each loaded as it is now, and published.

Before every run the portal's worker copies the share's new or changed files into raw/: a `.csv` as
it is, each sheet of an `.xlsx` as raw/<workbook>.<sheet>.csv. Each raw/*.csv is one sheet: leading
empty rows skipped, the first row with a value is the header (snake_case; columns without a header
dropped), values trimmed, empty rows dropped. Its rows replace the sheet's rows in the private table
`sheets`; sheets no longer in raw/ are removed from it.

Settings come from the environment and never from this repository:
  LAKE_PATH         the product's lake folder (holds raw/, staging/, curated/)
  PRODUCT_DSN       the product's own warehouse credentials; without it only the lake is written
  PUBLISHED_SCHEMA  the product's published schema, the one its consumers may read
  OUTPUT_PORTS      its output ports as JSON, [{"name": ..., "kind": ...}]: each `table` port is
                    rewritten as PUBLISHED_SCHEMA.<name> with every sheet's rows, each `feed` port as
                    curated/<name>/ with the curated sheets; other kinds are not written here
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
TABLE = "sheets"
COLUMNS = ("(sheet text NOT NULL, line int NOT NULL, record jsonb NOT NULL,"
           " loaded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (sheet, line))")
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


def read_sheet(rows) -> list[dict]:
    """A sheet's rows as records: the first row with a value is the header; the rest cleaned."""
    rows = [[(value or "").strip() for value in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    header = [re.sub(r"\s+", "_", name.lower()) for name in rows[0]]
    kept = [(i, name) for i, name in enumerate(header) if name]
    return [{name: (row[i] if i < len(row) else "") for i, name in kept} for row in rows[1:]
            if any(row[i] for i, _ in kept if i < len(row))]


def run(lake_path: Path, dsn: str | None = None, ports: list[dict] = (), published_schema: str | None = None,
        ) -> dict[str, int]:
    """Rows per sheet."""
    tables = [port["name"] for port in ports if port.get("kind") == "table"]
    if tables and dsn and not published_schema:
        raise SettingsError("table ports need PUBLISHED_SCHEMA")
    raw, curated = lake_path / "raw", lake_path / "curated"
    curated.mkdir(exist_ok=True)
    sheets = {}
    for source in sorted(path for path in raw.glob("*.csv") if not path.name.startswith(".")):
        with source.open(newline="", encoding="utf-8-sig", errors="replace") as file:
            records = read_sheet(csv.reader(file))
        with (curated / source.name).open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(records[0]) if records else [])
            writer.writeheader()
            writer.writerows(records)
        sheets[source.name] = records
    for port in ports:
        if port.get("kind") == "feed":
            publish_feed(curated, port["name"], list(sheets))
    if dsn:
        load(dsn, sheets, published_schema, tables)
    return {name: len(records) for name, records in sheets.items()}


def publish_feed(curated: Path, port: str, names: list[str]) -> None:
    """curated/<port>/ holds the curated sheets, and only those."""
    folder = curated / port
    folder.mkdir(exist_ok=True)
    for name in names:
        shutil.copyfile(curated / name, folder / f".{name}.tmp")
        os.replace(folder / f".{name}.tmp", folder / name)
    for stale in folder.glob("*.csv"):
        if stale.name not in names:
            stale.unlink()


def load(dsn: str, sheets: dict[str, list[dict]], published_schema: str | None = None, tables=()) -> None:
    """The sheets replace the private table's and every table port's rows, in one transaction."""
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb

    private = sql.Identifier(schema(), TABLE)
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} " + COLUMNS).format(private))
        conn.execute(sql.SQL("DELETE FROM {} WHERE NOT sheet = ANY(%s)").format(private), [list(sheets)])
        with conn.cursor() as cursor:
            for sheet, records in sheets.items():
                cursor.execute(sql.SQL("DELETE FROM {} WHERE sheet = %s").format(private), [sheet])
                cursor.executemany(sql.SQL("INSERT INTO {} (sheet, line, record) VALUES (%s, %s, %s)").format(private),
                                   [(sheet, line, Jsonb(record)) for line, record in enumerate(records, start=1)])
        for name in tables:
            table = sql.Identifier(published_schema, name)
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} " + COLUMNS).format(table))
            conn.execute(sql.SQL("DELETE FROM {}").format(table))
            conn.execute(sql.SQL("INSERT INTO {} SELECT sheet, line, record, loaded_at FROM {}").format(table, private))


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
    for sheet, count in counts.items():
        print(f"{sheet}: {count} rows")
    for port in ports:
        if port.get("kind") == "feed" or (port.get("kind") == "table" and dsn):
            print(f"published {port['kind']} port {port['name']}")
        elif port.get("kind") == "table":
            print(f"table port {port['name']} not published: PRODUCT_DSN is not set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
