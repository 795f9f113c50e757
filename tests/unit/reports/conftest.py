"""The exporter's HTTP app over an empty reporting database, for the stats API's and
the dashboard's tests (no broker: no export loop)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.settings import Settings
from reports import db
from reports.exporter import Exporter
from reports.exporter_server import create_stats_app

API_KEY = "test-key"


@pytest.fixture
async def stats_client(tmp_path: Path) -> AsyncIterator[TestClient]:
    settings = Settings.from_env({"IMPTRACK_HOME": str(tmp_path)})
    exporter = Exporter(settings)
    exporter.con = db.open_writer(settings.exporter_db_path)
    async with TestClient(TestServer(create_stats_app(exporter, API_KEY))) as client:
        yield client
    await exporter.stop()
