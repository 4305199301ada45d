import os
import uuid

import pytest

import pipeline


@pytest.fixture
def lake(tmp_path):
    for area in ("raw", "staging", "curated"):
        (tmp_path / area).mkdir()
    (tmp_path / "raw" / "orders.csv").write_text("Order Id,Amount \n 1 , 9.50\n,\n2,3\n")
    (tmp_path / "raw" / ".half-written.csv").write_text("Order Id\n")
    return tmp_path


def test_a_delivery_is_cleaned_into_curated_and_hidden_files_are_not_read(lake):
    assert pipeline.run(lake) == {"orders.csv": 2}
    assert (lake / "curated" / "orders.csv").read_text().splitlines() == ["order_id,amount", "1,9.50", "2,3"]
    assert sorted(path.name for path in (lake / "raw").iterdir()) == [".half-written.csv", "orders.csv"]


def test_a_feed_port_holds_every_curated_delivery(lake):
    (lake / "curated" / "earlier.csv").write_text("order_id\n7\n")
    pipeline.run(lake, ports=[{"name": "daily", "kind": "feed"}, {"name": "board", "kind": "dashboard"}])
    assert sorted(path.name for path in (lake / "curated" / "daily").iterdir()) == ["earlier.csv", "orders.csv"]
    assert not (lake / "curated" / "board").exists()


@pytest.mark.parametrize("ports", ['[{"name": "../escape", "kind": "feed"}]', '[{"name": "Bad-Name", "kind": "table"}]',
                                   "not json"])
def test_port_names_that_could_escape_are_refused_and_nothing_is_written(lake, monkeypatch, ports):
    monkeypatch.setenv("LAKE_PATH", str(lake))
    monkeypatch.setenv("OUTPUT_PORTS", ports)
    monkeypatch.delenv("PRODUCT_DSN", raising=False)
    assert pipeline.main() == 2
    assert list((lake / "curated").iterdir()) == []


@pytest.mark.skipif(not (os.environ.get("PRODUCT_DSN") and os.environ.get("PUBLISHED_SCHEMA")),
                    reason="PRODUCT_DSN and PUBLISHED_SCHEMA are not set: no warehouse to load into")
def test_deliveries_accumulate_and_a_file_delivered_again_replaces_its_rows(lake, monkeypatch):
    import psycopg
    from psycopg import sql

    monkeypatch.setattr(pipeline, "TABLE", f"test_{uuid.uuid4().hex[:8]}")
    port = f"test_{uuid.uuid4().hex[:8]}"
    dsn, published = os.environ["PRODUCT_DSN"], os.environ["PUBLISHED_SCHEMA"]
    ports = [{"name": port, "kind": "table"}]
    try:
        pipeline.run(lake, dsn, ports, published)
        assert not (lake / "raw" / "orders.csv").exists() and (lake / "staging" / "processed" / "orders.csv").exists()
        (lake / "raw" / "refunds.csv").write_text("Order Id,Amount\n2,-3\n")
        (lake / "raw" / "orders.csv").write_text("Order Id,Amount\n1,9.75\n")
        assert pipeline.run(lake, dsn, ports, published) == {"orders.csv": 1, "refunds.csv": 1}
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(sql.SQL("SELECT source, line, record FROM {} ORDER BY source, line").format(
                sql.Identifier(published, port))).fetchall()
    finally:
        with psycopg.connect(dsn) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(published, port)))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(pipeline.schema(), pipeline.TABLE)))
    assert rows == [("orders.csv", 1, {"order_id": "1", "amount": "9.75"}),
                    ("refunds.csv", 1, {"order_id": "2", "amount": "-3"})]
