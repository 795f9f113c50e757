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


def open_offer_warning(offer_id: int) -> str:
    return (
        f"imptrack: warning: offer {offer_id} takes view-through conversions with neither a "
        "postback token nor an IP whitelist: anyone who learns an aimp_id can post a "
        "conversion for it; set postback_token (postbacks must then carry secure) or "
        "postback_ip_whitelist"
    )


def _offers_file(path: Path, offers: list[dict[str, object]]) -> Path:
    advertiser = {"id": 610, "name": "Postback security"}
    path.write_text(yaml.safe_dump({"advertisers": [advertiser], "offers": offers}))
    return path


def _offer(offer_id: int, **fields: object) -> dict[str, object]:
    return {"id": offer_id, "title": f"T{offer_id}", "advertiser_id": 610, **fields}


async def test_apply_warns_of_each_offer_anyone_can_post_view_through_conversions_to(
    running_stack: RunningStack, tmp_path: Path
) -> None:
    """One line per such offer; offers with a token, a whitelist or no impressions get none."""
    catalog = _offers_file(
        tmp_path / "offers.yaml",
        [
            _offer(611, allow_impressions=True),
            _offer(612, allow_impressions=True, postback_token="t0ken"),
            _offer(613, allow_impressions=True, postback_ip_whitelist=["198.51.100.0/24"]),
            _offer(614),
        ],
    )
    result = running_stack.imptrack("catalog", "apply", str(catalog))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines.count(open_offer_warning(611)) == 1
    assert not [line for line in lines if any(f"offer {n} " in line for n in (612, 613, 614))]
    assert "catalog changes" in result.stdout


async def test_postback_security_required_refuses_the_file_and_lists_older_offers(
    running_stack: RunningStack, tmp_path: Path
) -> None:
    """With POSTBACK_SECURITY_REQUIRED=1 a file naming such an offer is refused whole
    (exit 2, nothing written); once fixed it applies, and an offer saved before the
    setting is listed as kept."""
    strict = {"POSTBACK_SECURITY_REQUIRED": "1"}
    older = _offers_file(tmp_path / "older.yaml", [_offer(620, allow_impressions=True)])
    assert running_stack.imptrack("catalog", "apply", str(older)).returncode == 0

    catalog = _offers_file(
        tmp_path / "strict.yaml",
        [_offer(621, allow_impressions=True), _offer(622, allow_impressions=False)],
    )
    before = await catalog_records(running_stack.settings.broker)
    result = running_stack.imptrack("catalog", "apply", str(catalog), env=strict)
    assert result.returncode == 2, result.stdout
    assert (
        f"imptrack: {catalog}: offers[0].postback_token: offer 621 takes view-through "
        "conversions, and this network requires a postback_token or a "
        "postback_ip_whitelist for them (POSTBACK_SECURITY_REQUIRED)"
    ) in result.stderr
    assert "imptrack: nothing was applied (1 error)" in result.stderr
    assert await catalog_records(running_stack.settings.broker) == before

    fixed = _offers_file(
        tmp_path / "fixed.yaml",
        [_offer(621, allow_impressions=True, postback_token="t0ken"), _offer(622)],
    )
    result = running_stack.imptrack("catalog", "apply", str(fixed), env=strict)
    assert result.returncode == 0, result.stderr
    assert (
        open_offer_warning(620) + "; saved where POSTBACK_SECURITY_REQUIRED was not in force, "
        "it still takes them, but any change that leaves it so is refused"
    ) in result.stderr.splitlines()
    assert "offer 621 " not in result.stderr
