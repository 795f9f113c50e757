"""The statistics through their three doors: the stats API, `imptrack report`, and
the DuckDB snapshot analysts open while the exporter writes."""

from __future__ import annotations

import asyncio
import io
import json
import time

import aiohttp
import duckdb
import pyarrow.parquet as pq
import pytest

from tests.integration.conftest import RunningStack
from tests.integration.pixels import PixelRun, pixel_params, send_pixels

pytestmark = pytest.mark.integration


def _stats_url(stack: RunningStack, name: str) -> str:
    return f"{stack.settings.exporter_url}/api/v1/stats/{name}"


async def test_stats_api_answers_every_slice_with_the_key_only(stack: RunningStack) -> None:
    """Each slice as JSON with the API key; without it 401; bad requests a clear 400."""
    total = stack.exported_impressions()
    async with aiohttp.ClientSession() as session:
        async with session.get(_stats_url(stack, "daily")) as response:
            assert response.status == 401
            assert "API-Key" in (await response.json())["error"]
        async with session.get(
            _stats_url(stack, "daily"), headers={"API-Key": "wrong"}
        ) as response:
            assert response.status == 401
        for name in (
            "daily",
            "advertisers",
            "offers",
            "affiliates",
            "custom",
            "conversions",
            "postbacks",
            "rejections",
            "deliveries",
        ):
            async with session.get(_stats_url(stack, name), headers=stack.api_headers) as response:
                assert response.status == 200, (name, await response.text())
                body = await response.json()
                assert body["slice"] == name and body["tz"] == "UTC"
                assert all(set(row) == set(body["columns"]) for row in body["rows"])
        async with session.get(
            _stats_url(stack, "daily"), headers=stack.api_headers, params={"tz": "UTC"}
        ) as response:
            rows = (await response.json())["rows"]
        assert sum(row["impressions"] for row in rows) == total
        for params, status, says in (
            ({"tz": "Mars/Olympus"}, 400, "IANA"),
            ({"group_by": "colour"}, 400, "cannot group by 'colour'"),
            ({"sort": "nonsense"}, 400, "cannot sort by 'nonsense'"),
            ({"limit": "many"}, 400, "not a whole number"),
            ({"offer": "1,x"}, 400, "comma-separated"),
            ({"status": "lost"}, 400, "unknown conversion status"),
            ({"format": "xml"}, 400, "format 'xml'"),
            ({"bogus": "1"}, 400, "unknown parameter 'bogus'"),
        ):
            async with session.get(
                _stats_url(stack, "daily"), headers=stack.api_headers, params=params
            ) as response:
                assert response.status == status, params
                assert says in (await response.json())["error"], params
        async with session.get(_stats_url(stack, "weekly"), headers=stack.api_headers) as response:
            assert response.status == 404
            assert "unknown slice 'weekly'" in (await response.json())["error"]


async def test_custom_slice_by_offer_and_sub1_through_api_and_cli(stack: RunningStack) -> None:
    """A Custom slice narrowed to one offer (41, used by no other test), grouped by
    date and sub1, agrees between the API (JSON, CSV, Parquet) and `imptrack report`
    (CSV, Parquet file)."""
    before = stack.exported_impressions()
    run = await send_pixels(stack, pixel_params(300, offer_id=41, prefix="custom"))
    stack.wait_exported(before + len(run.accepted))
    params = {"offer": "41", "group_by": "date,sub1", "sort": "impressions:desc", "limit": "5"}
    async with aiohttp.ClientSession(headers=stack.api_headers) as session:
        async with session.get(_stats_url(stack, "custom"), params=params) as response:
            body = await response.json()
        async with session.get(
            _stats_url(stack, "custom"), params={**params, "format": "parquet"}
        ) as response:
            parquet = pq.read_table(io.BytesIO(await response.read()))
        async with session.get(
            _stats_url(stack, "custom"), params={**params, "format": "csv"}
        ) as response:
            csv_text = await response.text()
    rows = body["rows"]
    assert body["columns"][:3] == ["date", "sub1", "currency"]
    assert 1 <= len(rows) <= 5
    assert [r["impressions"] for r in rows] == sorted(
        (r["impressions"] for r in rows), reverse=True
    )
    assert parquet.column("impressions").to_pylist() == [r["impressions"] for r in rows]
    assert str(parquet.schema.field("revenue").type).startswith("decimal128(18, 4)")
    assert csv_text.splitlines()[0].startswith("date,sub1,currency,impressions")

    cli = await asyncio.to_thread(
        stack.imptrack,
        "report", "custom", "--offer", "41", "--group-by", "date,sub1",
        "--sort", "impressions:desc", "--limit", "5", "--format", "csv",
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == csv_text.strip()
    out = stack.settings.home / "custom.parquet"
    cli = await asyncio.to_thread(
        stack.imptrack,
        "report", "custom", "--offer", "41", "--group-by", "date,sub1",
        "--sort", "impressions:desc", "--limit", "5", "--format", "parquet", "-o", str(out),
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert pq.read_table(out).equals(parquet)
    bad = await asyncio.to_thread(stack.imptrack, "report", "daily", "--group-by", "offer")
    assert bad.returncode != 0 and "--group-by is for the custom slice only" in bad.stderr
    # The analysts' snapshot through `imptrack sql` (no DuckDB CLI needed): offer 41's
    # impressions, as the report gives them, once the snapshot has caught up.
    daily = await asyncio.to_thread(
        stack.imptrack, "report", "daily", "--offer", "41", "--format", "json"
    )
    reported = sum(row["impressions"] for row in json.loads(daily.stdout))
    deadline = time.monotonic() + 30
    while True:
        sql = await asyncio.to_thread(
            stack.imptrack,
            "sql",
            "select sum(impressions) as impressions from custom_base where offer_id = 41",
            "--format", "json",
        )  # fmt: skip
        assert sql.returncode == 0, sql.stderr
        (row,) = json.loads(sql.stdout)
        # A DuckDB sum is a HUGEINT, written as decimal text like money.
        if int(row["impressions"]) == reported or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert int(row["impressions"]) == reported
    refused = await asyncio.to_thread(stack.imptrack, "sql", "delete from impressions")
    assert refused.returncode == 2 and "read-only" in refused.stderr


async def test_analysts_query_the_snapshot_while_the_exporter_writes(stack: RunningStack) -> None:
    """The published DuckDB file opens (read-only and read-write) and answers the
    documented views while traffic is exported; the exporter never stalls."""
    path = stack.settings.duckdb_path
    run = PixelRun()
    before = stack.exported_impressions()
    sending = asyncio.create_task(
        send_pixels(stack, pixel_params(3000, offer_id=41, prefix="snap"), run=run)
    )
    seen: list[int] = []
    exported: list[int] = []
    while not sending.done():
        con = duckdb.connect(str(path), read_only=True)
        try:
            (total,) = con.execute("SELECT sum(impressions) FROM daily").fetchone() or (0,)
            for view in ("offers", "affiliates", "advertisers", "custom_base", "conversions"):
                con.execute(f"SELECT count(*) FROM {view}").fetchone()
        finally:
            con.close()
        seen.append(int(total or 0))
        exported.append(stack.exported_impressions())
        await asyncio.sleep(0.3)
    await sending
    assert run.refused == 0
    assert stack.wait_exported(before + len(run.accepted)) == before + len(run.accepted)
    # The exporter went on while the snapshot was read (its count kept growing) and
    # the snapshot followed it.
    assert exported[-1] > exported[0], f"exported counts while reading: {exported}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        con = duckdb.connect(str(path))  # read-write, as `duckdb FILE` opens it
        try:
            (total,) = con.execute("SELECT sum(impressions) FROM daily").fetchone() or (0,)
        finally:
            con.close()
        if total == before + len(run.accepted):
            break
        await asyncio.sleep(1)
    snapshot = stack.exported_status()["snapshot"]
    assert total == before + len(run.accepted), f"snapshot {total}; exporter's: {snapshot}"
    assert seen == sorted(seen), f"the snapshot went back in time: {seen}"
