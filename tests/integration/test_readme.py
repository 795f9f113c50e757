"""The README's walkthrough, run as written: advertiser, affiliate, offer, links,
pixel, click, postbacks, report, against a stack of its own.

The block is taken from README.md as it stands (after the ``<!-- walkthrough -->``
marker); only the two things that differ on a test's stack are replaced: the edge's
address (free ports here) and the home holding the API key."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.ops.stack import isolated_stack
from tests.integration.conftest import RunningStack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- walkthrough -->"


def walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    assert MARKER in text, "README.md lost its walkthrough"
    block = re.search(r"```sh\n(.*?)```", text[text.index(MARKER) :], re.DOTALL)
    assert block is not None
    return block.group(1)


@pytest.fixture(scope="module")
def readme_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """As `make up` starts it: one edge process, nothing in the catalog."""
    stack = isolated_stack(tmp_path_factory.mktemp("readme"), REPORT_SNAPSHOT_SECONDS="1")
    try:
        stack.up()
        yield RunningStack(stack)
    finally:
        stack.down()


def test_the_walkthrough_works_as_written(readme_stack: RunningStack) -> None:
    stack = readme_stack
    script = walkthrough()
    for written in ("http://127.0.0.1:8080", "var/api-key"):
        assert written in script, f"the walkthrough no longer uses {written}"
    script = script.replace("http://127.0.0.1:8080", stack.edge_url)
    script = script.replace("var/api-key", str(stack.settings.api_key_file))
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=ROOT,
        env=stack.stack.env | {"IMPTRACK_HOME": str(stack.settings.home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout
    assert done.returncode == 0, f"{done.stderr}\n{out}"

    # 2. The links: the pixel for offer 1 and affiliate 7, at this edge.
    assert f"Impression pixel (URL):  {stack.edge_url}/imp?offer_id=1&pid=7" in out, out
    assert "\nwarning:" not in out, out  # the offer is guarded and the affiliate active
    # 3. A stranger gets the GIF; the key shows an ID this network issued.
    assert "200 image/gif" in out, out
    aimp_id = re.search(r"^aimp_id ([0-9a-f]{24})$", out, re.MULTILINE)
    clickid = re.search(r"^clickid ([0-9a-f]{24})$", out, re.MULTILINE)
    assert aimp_id and clickid, out
    assert stack.id_seal.issued(aimp_id.group(1)) and stack.id_seal.issued(clickid.group(1))
    # 5. Both postbacks accepted, the view-through one and the click's.
    verdicts = [json.loads(line) for line in out.splitlines() if line.startswith('{"status"')]
    assert [v["status"] for v in verdicts] == [1, 1], verdicts

    # 6. What the report printed is what DuckDB holds.
    stack.settle()
    rows = stack.query("SELECT attribution, imp_id, payout FROM conversions ORDER BY action_id")
    assert [(a, i, float(p)) for a, i, p in rows] == [
        ("view_through", "page-2", 20.0),
        ("click", "page-1", 20.0),
    ], rows
    for printed in ("order-1", "order-2", "page-1", "page-2"):
        assert printed in out, out
    daily = stack.query("SELECT sum(impressions), sum(clicks) FROM daily")
    assert [tuple(int(n) for n in row) for row in daily] == [(2, 1)]
