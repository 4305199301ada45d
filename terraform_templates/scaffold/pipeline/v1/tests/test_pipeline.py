import os
import uuid

import pytest

import pipeline


@pytest.fixture
def lake(tmp_path):
    for area in ("raw", "staging", "curated"):
        (tmp_path / area).mkdir()
    (tmp_path / "raw" / "orders.csv").write_text("Order Id,Amount \n 1 , 9.50\n,\n2,3\n")
    return tmp_path


def test_raw_csv_files_are_cleaned_into_curated(lake):
    assert pipeline.run(lake) == {"orders.csv": 2}
    assert (lake / "curated" / "orders.csv").read_text().splitlines() == ["order_id,amount", "1,9.50", "2,3"]


@pytest.mark.skipif(not os.environ.get("PRODUCT_DSN"), reason="PRODUCT_DSN is not set: no warehouse to load into")
def test_rows_are_loaded_into_the_products_own_schema(lake):
    import psycopg
    from psycopg import sql

    source = f"test-{uuid.uuid4().hex[:8]}.csv"
    (lake / "raw" / "orders.csv").rename(lake / "raw" / source)
    pipeline.run(lake, os.environ["PRODUCT_DSN"])
    table = sql.Identifier(pipeline.schema(), pipeline.TABLE)
    with psycopg.connect(os.environ["PRODUCT_DSN"]) as conn:
        rows = conn.execute(sql.SQL("SELECT line, record FROM {} WHERE source = %s ORDER BY line").format(table),
                            [source]).fetchall()
        conn.execute(sql.SQL("DELETE FROM {} WHERE source = %s").format(table), [source])
    assert rows == [(1, {"order_id": "1", "amount": "9.50"}), (2, {"order_id": "2", "amount": "3"})]
