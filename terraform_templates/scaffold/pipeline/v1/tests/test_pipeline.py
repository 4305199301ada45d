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
    assert [path.name for path in (lake / "curated").iterdir()] == ["orders.csv"]


def test_a_feed_port_holds_this_runs_curated_files_and_only_those(lake):
    (lake / "curated" / "daily").mkdir()
    (lake / "curated" / "daily" / "gone.csv").write_text("old\n")
    ports = [{"name": "daily", "kind": "feed"}, {"name": "board", "kind": "dashboard"}]
    pipeline.run(lake, ports=ports)
    assert sorted(path.name for path in (lake / "curated" / "daily").iterdir()) == ["orders.csv"]
    assert (lake / "curated" / "daily" / "orders.csv").read_text() == (lake / "curated" / "orders.csv").read_text()
    assert not (lake / "curated" / "board").exists()


@pytest.mark.parametrize("ports", [
    '[{"name": "../escape", "kind": "feed"}]', '[{"name": "Bad-Name", "kind": "table"}]',
    '[{"name": "a; DROP TABLE x", "kind": "table"}]', '{"name": "daily"}', "not json",
])
def test_port_names_that_could_escape_are_refused_and_nothing_is_written(lake, monkeypatch, capsys, ports):
    monkeypatch.setenv("LAKE_PATH", str(lake))
    monkeypatch.setenv("OUTPUT_PORTS", ports)
    monkeypatch.delenv("PRODUCT_DSN", raising=False)
    assert pipeline.main() == 2
    assert "OUTPUT_PORTS" in capsys.readouterr().err
    assert list((lake / "curated").iterdir()) == []


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


@pytest.mark.skipif(not (os.environ.get("PRODUCT_DSN") and os.environ.get("PUBLISHED_SCHEMA")),
                    reason="PRODUCT_DSN and PUBLISHED_SCHEMA are not set: nowhere to publish")
def test_a_table_port_is_rewritten_in_the_published_schema_with_this_runs_records(lake):
    import psycopg
    from psycopg import sql

    port, source = f"test_{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}.csv"
    published = sql.Identifier(os.environ["PUBLISHED_SCHEMA"], port)
    private = sql.Identifier(pipeline.schema(), pipeline.TABLE)
    (lake / "raw" / "orders.csv").rename(lake / "raw" / source)
    dsn, ports = os.environ["PRODUCT_DSN"], [{"name": port, "kind": "table"}]
    try:
        pipeline.run(lake, dsn, ports, os.environ["PUBLISHED_SCHEMA"])
        (lake / "raw" / source).write_text("Order Id,Amount\n7,1\n")
        pipeline.run(lake, dsn, ports, os.environ["PUBLISHED_SCHEMA"])
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(sql.SQL("SELECT source, line, record FROM {}").format(published)).fetchall()
            same = conn.execute(sql.SQL("SELECT count(*) FROM {} p JOIN {} c USING (source, line, record, loaded_at)")
                                .format(published, private)).fetchone()
    finally:
        with psycopg.connect(dsn) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(published))
            conn.execute(sql.SQL("DELETE FROM {} WHERE source = %s").format(private), [source])
    assert rows == [(source, 1, {"order_id": "7", "amount": "1"})]
    assert same == (1,)
