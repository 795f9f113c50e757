"""``imptrack catalog apply`` and ``export`` against the running stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.integration.admin import catalog_records
from tests.integration.conftest import RunningStack

pytestmark = pytest.mark.integration


async def test_a_file_with_errors_is_refused_whole(
    running_stack: RunningStack, tmp_path: Path
) -> None:
    """Every error is printed with its place; the good entries are not written either."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "advertisers": [{"id": 601, "name": "Would be fine"}],
                "offers": [
                    {"id": 601, "title": "T", "advertiser_id": 601, "impressions_url": "ftp://x/"},
                    {
                        "id": 602,
                        "title": "T",
                        "advertiser_id": 601,
                        "tracking_url": "https://a/{x}",
                    },
                ],
            }
        )
    )
    before = await catalog_records(running_stack.settings.broker)
    result = running_stack.imptrack("catalog", "apply", str(bad))
    assert result.returncode == 2
    assert "offers[0].impressions_url: must be an http or https URL" in result.stderr
    assert "offers[1].tracking_url: unknown macro {x}" in result.stderr
    assert "nothing was applied (2 errors)" in result.stderr
    assert await catalog_records(running_stack.settings.broker) == before

    missing = running_stack.imptrack("catalog", "apply", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2 and "cannot be read" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"offers": [')
    result = running_stack.imptrack("catalog", "apply", str(broken))
    assert result.returncode == 2 and "broken.json: is not valid JSON" in result.stderr


async def test_export_applies_back_unchanged(running_stack: RunningStack, tmp_path: Path) -> None:
    """An exported catalog (YAML or JSON) applied again writes no change."""
    for fmt in ("yaml", "json"):
        out = tmp_path / f"catalog.{fmt}"
        exported = running_stack.imptrack("catalog", "export", "--format", fmt, "-o", str(out))
        assert exported.returncode == 0, exported.stderr
        document = json.loads(out.read_text()) if fmt == "json" else yaml.safe_load(out.read_text())
        assert {o["id"] for o in document["offers"]} >= {1, 11, 12}
        before = await catalog_records(running_stack.settings.broker)
        applied = running_stack.imptrack("catalog", "apply", str(out))
        assert applied.returncode == 0, applied.stderr
        assert "0 catalog changes" in applied.stdout
        assert await catalog_records(running_stack.settings.broker) == before
