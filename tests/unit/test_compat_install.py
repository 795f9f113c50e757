"""``app.compat.install()``: the one seam between a process and the library patches."""

from __future__ import annotations

from pathlib import Path

import faust.stores
import pytest

from app.cli import main
from app.compat import install, installed, patches, rocksdb_store
from app.compat.patches import PATCHES, check_versions
from app.compat.rocksdb_store import BoundedStore
from app.exceptions import ImptrackError, LibraryMismatch
from app.settings import Settings
from reports import exporter_server

ROOT = Path(__file__).resolve().parents[2]
BOOKKEEPING = {
    "__init__",
    "patches",
    "installed",
    "contiguous_offsets",
    "processed_offsets",
    "unacked_heads",
}


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings of a process that has not installed its patches yet."""
    monkeypatch.setattr(installed, "_kept", None)
    return Settings.from_env({"IMPTRACK_HOME": str(tmp_path)})


@pytest.fixture
def faust_upgraded(monkeypatch: pytest.MonkeyPatch) -> None:
    """faust-streaming 0.16.0 installed; every other library as the patches expect."""
    real = patches.installed_version
    monkeypatch.setattr(
        patches,
        "installed_version",
        lambda library: "0.16.0" if library == patches.FAUST else real(library),
    )


@pytest.mark.usefixtures("faust_upgraded")
def test_a_patched_library_at_another_version_is_refused_saying_what_to_do(
    settings: Settings,
) -> None:
    with pytest.raises(LibraryMismatch) as refused:
        install(settings)
    message = str(refused.value)
    for module, test in (
        ("app.compat.faust_consumer", "tests/unit/test_faust_transport.py"),
        ("app.compat.table_writes", "tests/integration/test_pixel_to_duckdb.py"),
        ("app.compat.rocksdb_store", "tests/unit/test_table_storage.py"),
    ):
        line = next(line for line in message.splitlines() if line.startswith(f"- {module} "))
        assert "written for faust-streaming 0.15.3" in line
        assert "faust-streaming 0.16.0 is installed" in line
        assert f"run {test}" in line or f", {test}" in line
        assert "raise its written_for in app/compat/patches.py" in line
    assert "aiokafka" not in message, "only the patches of the upgraded library are named"
    with pytest.raises(RuntimeError, match="was not called"):
        installed.installed_settings()


@pytest.mark.usefixtures("faust_upgraded")
def test_a_process_refused_by_the_check_prints_one_error_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`imptrack exporter` stops before it starts anything, with the message and no traceback."""

    def started(settings: Settings) -> None:
        raise AssertionError("the exporter started")

    monkeypatch.setattr(exporter_server, "create_exporter_app", started)
    assert main(["exporter"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imptrack: a library patched by app/compat/ is not the version")
    assert "Traceback" not in err


def test_a_library_that_is_not_installed_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patches, "installed_version", lambda library: None)
    with pytest.raises(ImptrackError, match="rocksdict is not installed: install rocksdict=="):
        check_versions(PATCHES)


def test_install_keeps_the_settings_once_and_registers_the_store(settings: Settings) -> None:
    install(settings)
    install(settings)  # harmless: the same settings
    assert installed.installed_settings().table_memory_mb == settings.worker_table_memory_mb
    assert faust.stores.by_url(rocksdb_store.store_url()) is BoundedStore
    other = Settings.from_env({"IMPTRACK_HOME": str(settings.home), "WORKER_FETCH_WAIT_MS": "7"})
    with pytest.raises(RuntimeError, match="already called with other settings"):
        install(other)


def test_the_store_is_refused_before_install(settings: Settings) -> None:
    """A process that forgot install() is told so, not run on defaults."""
    with pytest.raises(RuntimeError, match=r"install\(settings\) was not called"):
        rocksdb_store.store_url()
    with pytest.raises(RuntimeError, match=r"install\(settings\) was not called"):
        rocksdb_store.table_memory.__wrapped__()


def test_the_installed_libraries_are_those_the_patches_were_written_for() -> None:
    """When this fails, pyproject.toml moved a pin without the patches being checked."""
    check_versions(PATCHES)


def test_every_patch_names_its_test_and_an_https_upstream_issue_if_any() -> None:
    for patch in PATCHES:
        assert (ROOT / patch.test).is_file(), patch
        assert patch.test.startswith("tests/") and patch.test.endswith(".py"), patch
        assert patch.upstream is None or patch.upstream.startswith("https://"), patch
        assert patch.reason and "\n" not in patch.reason, patch


def test_every_module_of_app_compat_that_patches_a_library_is_declared() -> None:
    """Pure bookkeeping aside, a module in app/compat/ without a declaration would
    escape the version check."""
    modules = {path.stem for path in (ROOT / "app" / "compat").glob("*.py")} - BOOKKEEPING
    assert {f"app.compat.{name}" for name in modules} == {patch.module for patch in PATCHES}
