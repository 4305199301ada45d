import os
import uuid

import pytest

import pipeline


@pytest.fixture
def lake(tmp_path):
    for area in ("raw", "staging", "curated"):
        (tmp_path / area).mkdir()
    (tmp_path / "raw" / "budget.q1.csv").write_text(",,\nRegion ,Amount,\n north , 10,note\n,,\nsouth,20,\n")
    return tmp_path


def test_a_sheet_starts_at_its_first_row_with_a_value_and_drops_columns_without_a_header(lake):
    assert pipeline.run(lake) == {"budget.q1.csv": 2}
    assert (lake / "curated" / "budget.q1.csv").read_text().splitlines() == ["region,amount", "north,10", "south,20"]


def test_a_feed_port_holds_the_current_sheets_only(lake):
    (lake / "curated" / "daily").mkdir()
    (lake / "curated" / "daily" / "gone.csv").write_text("old\n")
    pipeline.run(lake, ports=[{"name": "daily", "kind": "feed"}])
    assert sorted(path.name for path in (lake / "curated" / "daily").iterdir()) == ["budget.q1.csv"]


@pytest.mark.parametrize("ports", ['[{"name": "../escape", "kind": "feed"}]', "not json"])
def test_port_names_that_could_escape_are_refused_and_nothing_is_written(lake, monkeypatch, ports):
    monkeypatch.setenv("LAKE_PATH", str(lake))
    monkeypatch.setenv("OUTPUT_PORTS", ports)
    monkeypatch.delenv("PRODUCT_DSN", raising=False)
    assert pipeline.main() == 2
    assert list((lake / "curated").iterdir()) == []


@pytest.mark.skipif(not (os.environ.get("PRODUCT_DSN") and os.environ.get("PUBLISHED_SCHEMA")),
                    reason="PRODUCT_DSN and PUBLISHED_SCHEMA are not set: no warehouse to load into")
def test_sheets_replace_their_rows_and_a_sheet_gone_from_raw_is_removed(lake, monkeypatch):
    import psycopg
    from psycopg import sql

    monkeypatch.setattr(pipeline, "TABLE", f"test_{uuid.uuid4().hex[:8]}")
    port = f"test_{uuid.uuid4().hex[:8]}"
    dsn, published = os.environ["PRODUCT_DSN"], os.environ["PUBLISHED_SCHEMA"]
    try:
        (lake / "raw" / "budget.q2.csv").write_text("region,amount\neast,5\n")
        pipeline.run(lake, dsn, [{"name": port, "kind": "table"}], published)
        (lake / "raw" / "budget.q2.csv").unlink()
        pipeline.run(lake, dsn, [{"name": port, "kind": "table"}], published)
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(sql.SQL("SELECT sheet, line, record FROM {} ORDER BY line").format(
                sql.Identifier(published, port))).fetchall()
    finally:
        with psycopg.connect(dsn) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(published, port)))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(pipeline.schema(), pipeline.TABLE)))
    assert rows == [("budget.q1.csv", 1, {"region": "north", "amount": "10"}),
                    ("budget.q1.csv", 2, {"region": "south", "amount": "20"})]
