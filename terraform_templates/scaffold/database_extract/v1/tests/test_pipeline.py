import os
import uuid

import pytest

import pipeline


@pytest.fixture
def lake(tmp_path):
    for area in ("raw", "staging", "curated"):
        (tmp_path / area).mkdir()
    (tmp_path / "raw" / "extract.csv").write_text('id,Region Name,1st,id\n1,north,"a,b",x\n2,,c,y\n')
    return tmp_path


def test_the_sources_columns_become_identifiers_each_once():
    assert pipeline.column_names(["id", "Region Name", "1st", "id", "Ünits", ""]) == [
        "id", "region_name", "c_1st", "id_2", "nits", "column"]


def test_the_extract_is_written_to_curated_and_to_a_feed(lake):
    assert pipeline.run(lake, ports=[{"name": "daily", "kind": "feed"}]) == 2
    expected = ["id,region_name,c_1st,id_2", '1,north,"a,b",x', "2,,c,y"]
    assert (lake / "curated" / "extract.csv").read_text().splitlines() == expected
    assert (lake / "curated" / "daily" / "extract.csv").read_text().splitlines() == expected


def test_without_an_extract_nothing_is_written(lake, monkeypatch, capsys):
    (lake / "raw" / "extract.csv").unlink()
    monkeypatch.setenv("LAKE_PATH", str(lake))
    monkeypatch.delenv("PRODUCT_DSN", raising=False)
    assert pipeline.main() == 2
    assert "raw/extract.csv is missing" in capsys.readouterr().err
    assert list((lake / "curated").iterdir()) == []


@pytest.mark.skipif(not (os.environ.get("PRODUCT_DSN") and os.environ.get("PUBLISHED_SCHEMA")),
                    reason="PRODUCT_DSN and PUBLISHED_SCHEMA are not set: no warehouse to load into")
def test_each_snapshot_replaces_the_table_and_its_ports(lake, monkeypatch):
    import psycopg
    from psycopg import sql

    monkeypatch.setattr(pipeline, "TABLE", f"test_{uuid.uuid4().hex[:8]}")
    port = f"test_{uuid.uuid4().hex[:8]}"
    dsn, published = os.environ["PRODUCT_DSN"], os.environ["PUBLISHED_SCHEMA"]
    try:
        pipeline.run(lake, dsn, [{"name": port, "kind": "table"}], published)
        (lake / "raw" / "extract.csv").write_text("id,region\n3,south\n")
        pipeline.run(lake, dsn, [{"name": port, "kind": "table"}], published)
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(published, port))).fetchall()
    finally:
        with psycopg.connect(dsn) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(published, port)))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(pipeline.schema(), pipeline.TABLE)))
    assert rows == [("3", "south")]
