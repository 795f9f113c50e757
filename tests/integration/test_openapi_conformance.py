"""The admin and stats APIs against their OpenAPI documents (issue 24 point 6):
schemathesis generates requests from each document a running stack serves at
/api/v1/openapi.json, valid and not, for every operation, with the API key, and
checks each answer: no 5xx, and its status, content type and body as documented;
a method a path does not take gets 405 naming those it does.

A stack of its own: schemathesis creates, changes and deletes catalog entities at
random, which would upset every test sharing the stack. A little traffic first, so
the stats slices have rows to answer with. `make faults` runs it; its figures
(operations, test cases, failures) are printed per API. ``OPENAPI_MAX_EXAMPLES``
sets the test cases per operation and phase (100, schemathesis's default);
``OPENAPI_SEED`` replays a run.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from tests.integration.conftest import RunningStack, started_stack

pytestmark = [pytest.mark.integration, pytest.mark.faults_only]

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    # A method a path does not take: 405 with the Allow header.
    "unsupported_method",
)
MAX_EXAMPLES = int(os.environ.get("OPENAPI_MAX_EXAMPLES") or 100)
SEED = os.environ.get("OPENAPI_SEED")

# IDs no other test uses.
ADVERTISER, AFFILIATE, OFFER = 12001, 12002, 12003
CATALOG = f"""
advertisers: [{{id: {ADVERTISER}, name: OpenAPI advertiser}}]
affiliates: [{{id: {AFFILIATE}, name: OpenAPI affiliate}}]
offers:
  - id: {OFFER}
    title: OpenAPI offer
    advertiser_id: {ADVERTISER}
    allow_impressions: true
    impressions_url: "https://advertiser.example/imp?aimp_id={{aimp_id}}"
    tracking_url: "https://advertiser.example/click?clickid={{clickid}}"
    payments: [{{type: CPM, revenue: "2.00", payout: "1.00"}}]
"""
PIXELS = 20


def _get(base: str, path: str, **params: str) -> http.client.HTTPResponse:
    """One GET, redirects not followed (a click's answer is its 302)."""
    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    connection.request("GET", f"{path}?{urlencode(params)}")
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def _traffic(stack: RunningStack) -> None:
    """Impressions, a click and a view-through conversion, for every slice to have rows."""
    ids = {"offer_id": str(OFFER), "pid": str(AFFILIATE)}
    aimp_ids = []
    for n in range(PIXELS):
        answer = _get(stack.edge_url, "/imp", **ids, imp_id=f"openapi-{n}", sub1="s")
        assert answer.status == 200
    # The impression's aimp_id reaches the advertiser only: for a postback, one from
    # the pixel's answer to the network's own key.
    address = urlsplit(stack.edge_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    connection.request("GET", f"/imp?{urlencode(ids)}", headers=stack.api_headers)
    aimp_ids.append(connection.getresponse().getheader("X-Aimp-Id"))
    connection.close()
    assert _get(stack.edge_url, "/click", **ids).status == 302
    postback = _get(stack.edge_url, "/postback", aimp_id=aimp_ids[0] or "", action_id="a1")
    assert postback.status == 200
    stack.wait_exported(PIXELS + 1)


def _schemathesis(document_url: str, api_key: str, report: Path) -> dict[str, Any]:
    """``schemathesis run`` as an operator types it, in the report's folder (where it
    keeps its cache of failures to replay, not in the checkout); its JSON report."""
    argv = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        document_url,
        "--checks",
        ",".join(CHECKS),
        "--header",
        f"API-Key: {api_key}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--no-color",
    ]
    if SEED:
        argv += ["--seed", SEED]
    started = time.monotonic()
    subprocess.run(argv, cwd=report.parent, timeout=1800, check=False)
    figures: dict[str, Any] = json.loads(report.read_text())
    figures["wall_seconds"] = time.monotonic() - started
    return figures


def _summary(api: str, figures: dict[str, Any]) -> str:
    operations, cases = figures["operations"], figures["test_cases"]
    failures = sum(group["count"] for group in figures["failures"])
    return (
        f"schemathesis, {api}: {operations['tested']} of {operations['total']} operations, "
        f"{cases['generated']} test cases, {failures} failures, "
        f"{len(figures['errors'])} errors, {figures['wall_seconds']:.0f} s (seed {figures['seed']})"
    )


def test_the_admin_and_stats_apis_answer_as_their_documents_say(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Every operation of both documents, valid and invalid requests: no 5xx, and
    every answer's status, content type and body as documented."""
    home = tmp_path_factory.mktemp("openapi")
    catalog = home / "catalog.yaml"
    catalog.write_text(CATALOG)
    with started_stack(home, catalog, EXPORT_BATCH_SECONDS="0.2") as stack:
        _traffic(stack)
        api_key = stack.api_headers["API-Key"]
        results = {
            api: _schemathesis(f"{base}/api/v1/openapi.json", api_key, home / f"{api}.json")
            for api, base in (
                ("admin API", stack.edge_url),
                ("stats API", stack.settings.exporter_url),
            )
        }
    summaries = [_summary(api, figures) for api, figures in results.items()]
    print("\n" + "\n".join(summaries))
    for api, figures in results.items():
        assert figures["operations"]["tested"] == figures["operations"]["total"], api
        assert figures["failures"] == [] and figures["errors"] == [], (api, figures)
        assert figures["exit_code"] == 0, (api, figures["exit_code"])
