"""This product's pipeline: CSV files from the lake's raw/ area, cleaned, to curated/ and the warehouse.

Settings come from the environment and never from this repository:
  LAKE_PATH    the product's lake folder (holds raw/, staging/, curated/)
  PRODUCT_DSN  the product's own warehouse credentials; without it only the lake is written
The product's schema is recorded by the portal in .portal-template.json.
"""
import csv
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLE = "curated_records"


def schema() -> str:
    return json.loads((HERE / ".portal-template.json").read_text())["schema"]


def clean(rows):
    """Header names in snake_case, values trimmed, empty rows dropped."""
    for row in rows:
        cleaned = {key.strip().lower().replace(" ", "_"): (value or "").strip()
                   for key, value in row.items() if key is not None}
        if any(cleaned.values()):
            yield cleaned


def run(lake_path: Path, dsn: str | None = None) -> dict[str, int]:
    """Rows written per source file."""
    raw, curated = lake_path / "raw", lake_path / "curated"
    curated.mkdir(exist_ok=True)
    batches = {}
    for source in sorted(raw.glob("*.csv")):
        with source.open(newline="") as file:
            rows = list(clean(csv.DictReader(file)))
        with (curated / source.name).open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)
        batches[source.name] = rows
    if dsn:
        load(dsn, batches)
    return {name: len(rows) for name, rows in batches.items()}


def load(dsn: str, batches: dict[str, list[dict]]) -> None:
    """Replace each source file's rows in the product's own schema, in one transaction."""
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb

    table = sql.Identifier(schema(), TABLE)
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (source text NOT NULL, line int NOT NULL, record jsonb NOT NULL,"
            " loaded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (source, line))").format(table))
        with conn.cursor() as cursor:
            for source, rows in batches.items():
                cursor.execute(sql.SQL("DELETE FROM {} WHERE source = %s").format(table), [source])
                cursor.executemany(sql.SQL("INSERT INTO {} (source, line, record) VALUES (%s, %s, %s)").format(table),
                                   [(source, line, Jsonb(row)) for line, row in enumerate(rows, start=1)])


def main() -> int:
    lake = os.environ.get("LAKE_PATH")
    if not lake:
        print("LAKE_PATH is not set", file=sys.stderr)
        return 2
    for source, count in run(Path(lake), os.environ.get("PRODUCT_DSN") or None).items():
        print(f"{source}: {count} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
