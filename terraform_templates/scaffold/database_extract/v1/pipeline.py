"""This product's pipeline (ingestion pattern: database extract): the snapshot the portal extracted from
the source database into raw/extract.csv, loaded as a table of the same columns, and published.

Before every run the portal's worker writes raw/extract.csv: the whole table, or the whole result of
the query, that the WID names (a header row, then one row per source row). Each run replaces the
private table `extract` (one text column per source column; an empty value is NULL) with it, in one
transaction, and publishes it.

Settings come from the environment and never from this repository:
  LAKE_PATH         the product's lake folder (holds raw/, staging/, curated/)
  PRODUCT_DSN       the product's own warehouse credentials; without it only the lake is written
  PUBLISHED_SCHEMA  the product's published schema, the one its consumers may read
  OUTPUT_PORTS      its output ports as JSON, [{"name": ..., "kind": ...}]: each `table` port is
                    rewritten as PUBLISHED_SCHEMA.<name> with the snapshot's columns and rows, each
                    `feed` port as curated/<name>/extract.csv; other kinds are not written here
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
EXTRACT = "extract.csv"
TABLE = "extract"
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


def column_names(header: list[str]) -> list[str]:
    """The source's column names as PostgreSQL identifiers, each once."""
    names = []
    for raw in header:
        name = re.sub(r"[^a-z0-9_]+", "_", raw.strip().lower()).strip("_")[:60] or "column"
        if not re.match(r"[a-z_]", name):
            name = f"c_{name}"
        candidate, n = name, 1
        while candidate in names:
            n += 1
            candidate = f"{name}_{n}"
        names.append(candidate)
    return names


def read_extract(raw: Path) -> tuple[list[str], list[list[str | None]]]:
    path = raw / EXTRACT
    if not path.is_file():
        raise SettingsError(f"raw/{EXTRACT} is missing: the portal writes it before each run "
                            "(write one by hand to run the pipeline yourself)")
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if not header:
            raise SettingsError(f"raw/{EXTRACT} has no header row")
        rows = [[value if value != "" else None for value in row] for row in reader if row]
    return column_names(header), rows


def run(lake_path: Path, dsn: str | None = None, ports: list[dict] = (), published_schema: str | None = None,
        ) -> int:
    """The snapshot's rows."""
    tables = [port["name"] for port in ports if port.get("kind") == "table"]
    if tables and dsn and not published_schema:
        raise SettingsError("table ports need PUBLISHED_SCHEMA")
    columns, rows = read_extract(lake_path / "raw")
    curated = lake_path / "curated"
    curated.mkdir(exist_ok=True)
    with (curated / f".{EXTRACT}.tmp").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        writer.writerows(["" if value is None else value for value in row] for row in rows)
    os.replace(curated / f".{EXTRACT}.tmp", curated / EXTRACT)
    for port in ports:
        if port.get("kind") == "feed":
            folder = curated / port["name"]
            folder.mkdir(exist_ok=True)
            shutil.copyfile(curated / EXTRACT, folder / f".{EXTRACT}.tmp")
            os.replace(folder / f".{EXTRACT}.tmp", folder / EXTRACT)
    if dsn:
        load(dsn, columns, rows, published_schema, tables)
    return len(rows)


def load(dsn: str, columns: list[str], rows: list[list], published_schema: str | None = None, tables=()) -> None:
    """The snapshot replaces the private table and every table port, in one transaction: consumers see
    the previous snapshot or this one, never a mix."""
    import psycopg
    from psycopg import sql

    targets = [sql.Identifier(schema(), TABLE), *(sql.Identifier(published_schema, name) for name in tables)]
    with psycopg.connect(dsn) as conn:
        for target in targets:
            _replace(conn, target, columns, rows)


def _replace(conn, target, columns: list[str], rows: list[list]) -> None:
    from psycopg import sql

    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    existing = [name for (name,) in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum", [target.as_string(conn)]).fetchall()]
    if existing == columns:
        conn.execute(sql.SQL("DELETE FROM {}").format(target))  # kept: consumers' grants and views stay
    else:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(
            target, sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns)))
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, names)) as copy:
        for row in rows:
            copy.write_row(row[:len(columns)] + [None] * (len(columns) - len(row)))


def main() -> int:
    lake = os.environ.get("LAKE_PATH")
    if not lake:
        print("LAKE_PATH is not set", file=sys.stderr)
        return 2
    try:
        ports = output_ports(os.environ.get("OUTPUT_PORTS"))
        dsn = os.environ.get("PRODUCT_DSN") or None
        count = run(Path(lake), dsn, ports, os.environ.get("PUBLISHED_SCHEMA") or None)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{EXTRACT}: {count} rows")
    for port in ports:
        if port.get("kind") == "feed" or (port.get("kind") == "table" and dsn):
            print(f"published {port['kind']} port {port['name']}")
        elif port.get("kind") == "table":
            print(f"table port {port['name']} not published: PRODUCT_DSN is not set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
