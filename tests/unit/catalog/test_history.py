"""Judging an event by the catalog in force when it was accepted."""

from __future__ import annotations

from app.catalog.changes import access_change, entity_change
from app.catalog.history import CatalogHistory
from app.catalog.model import Advertiser, Offer

NOW = 1_800_000_000_000


def test_a_lagging_event_is_judged_by_the_catalog_of_its_time() -> None:
    """An impression accepted before a pause sees the active offer, one after it the
    paused offer; both are read after the pause."""
    history = CatalogHistory()
    history.apply(entity_change(Advertiser(1, "A")), NOW - 5000, NOW)
    history.apply(entity_change(Offer(10, "O", 1)), NOW - 4000, NOW)
    history.apply(entity_change(Offer(10, "O", 1, status="paused")), NOW - 1000, NOW)
    assert history.at(NOW - 1500).offers[10].status == "active"
    assert history.at(NOW - 1000).offers[10].status == "paused"
    assert history.at(NOW).offers[10].status == "paused"
    assert 10 not in history.at(NOW - 4500).offers, "the offer did not exist yet"
    assert history.current.offers[10].status == "paused", "the past is a copy"


def test_rules_are_undone_too() -> None:
    """Access rules set after the moment are not in force at it."""
    history = CatalogHistory()
    history.apply(access_change(10, 7, "disabled"), NOW - 3000, NOW)
    history.apply(access_change(10, 7, "enabled"), NOW - 2000, NOW)
    history.apply(access_change(10, 7, None), NOW - 1000, NOW)
    assert (10, 7) in history.at(NOW - 2500).disabled
    assert (10, 7) in history.at(NOW - 1500).enabled
    assert (10, 7) not in history.at(NOW - 1500).disabled
    assert (10, 7) not in history.at(NOW).enabled | history.at(NOW).disabled


def test_changes_older_than_the_horizon_are_forgotten() -> None:
    """Past the horizon an event is judged as of the oldest change kept."""
    history = CatalogHistory(horizon_ms=10_000)
    history.apply(entity_change(Advertiser(1, "Old")), NOW - 60_000, NOW)
    history.apply(entity_change(Advertiser(1, "New")), NOW - 5_000, NOW)
    assert history.at(NOW - 30_000).advertisers[1].name == "Old"
    history.apply(entity_change(Advertiser(2, "Later")), NOW + 20_000, NOW + 20_000)
    assert history.at(NOW - 30_000).advertisers[1].name == "New"
    assert 2 not in history.at(NOW - 30_000).advertisers
