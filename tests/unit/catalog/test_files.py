"""Catalog files: planning changes, collecting every error, and round trips."""

from __future__ import annotations

from typing import Any

import pytest

from app.catalog.changes import apply_change
from app.catalog.files import parse_text, plan_document, to_document
from app.catalog.model import Catalog
from app.exceptions import CatalogError

DOCUMENT: dict[str, Any] = {
    "advertisers": [{"id": 1, "name": "Adv"}],
    "affiliates": [
        {"id": 7, "name": "Aff"},
        {"id": 8, "name": "Blocked", "blocked_advertisers": [1]},
    ],
    "offers": [
        {
            "id": 10,
            "title": "Private",
            "advertiser_id": 1,
            "access": "approval",
            "enabled_affiliates": [7],
            "disabled_affiliates": [8],
        }
    ],
}


def catalog_from(document: Any, catalog: Catalog | None = None) -> Catalog:
    catalog = catalog or Catalog()
    changes, errors = plan_document(catalog, document)
    assert errors == []
    for change in changes:
        apply_change(catalog, change)
    return catalog


def test_a_document_builds_entities_and_rules() -> None:
    """Entities, approvals, disables and advertiser blocks all come from one file."""
    catalog = catalog_from(DOCUMENT)
    assert catalog.offers[10].access == "approval"
    assert catalog.enabled == {(10, 7)} and catalog.disabled == {(10, 8)}
    assert catalog.advertiser_blocks == {(1, 8)}


def test_export_then_apply_changes_nothing() -> None:
    """An exported catalog applied again plans no change at all."""
    catalog = catalog_from(DOCUMENT)
    changes, errors = plan_document(catalog, to_document(catalog))
    assert (changes, errors) == ([], [])


def test_a_given_rule_list_replaces_the_rules_of_its_kind() -> None:
    """enabled_affiliates: [] lifts approvals; disabled rules, not listed, stay."""
    catalog = catalog_from(DOCUMENT)
    catalog_from({"offers": [{"id": 10, "enabled_affiliates": []}]}, catalog)
    assert catalog.enabled == set() and catalog.disabled == {(10, 8)}
    catalog_from({"affiliates": [{"id": 8, "blocked_advertisers": []}]}, catalog)
    assert catalog.advertiser_blocks == set()


def test_every_error_is_reported_with_its_place_and_nothing_is_planned() -> None:
    """Errors name section, index and field; one bad entry plans no change at all."""
    document = {
        "advertisers": [{"id": 1, "name": "Adv"}, {"id": 1, "name": "Again"}],
        "offers": [
            {"id": 10, "title": "Fine", "advertiser_id": 1},
            {"id": 11, "title": "Bad", "advertiser_id": 1, "impressions_url": "ftp://x/"},
            {"id": 12, "title": "Orphan", "advertiser_id": 5},
            {"id": 13, "title": "R", "advertiser_id": 1, "enabled_affiliates": [99]},
        ],
        "campaigns": [],
    }
    changes, errors = plan_document(Catalog(), document)
    assert changes == []
    fields = [e.field for e in errors]
    assert fields == [
        "campaigns",
        "advertisers[1].id",
        "offers[1].impressions_url",
        "offers[2].advertiser_id",
        "offers[3].pid",
    ]


def test_items_without_an_id_are_each_a_new_entity() -> None:
    """Two advertisers without an id get the next free ids (schemathesis found the
    second one answered 500: it was taken for a repeat of the first's missing id)."""
    catalog = catalog_from({"advertisers": [{"id": 3, "name": "A"}, {"name": "B"}, {"name": "C"}]})
    assert {a.id: a.name for a in catalog.advertisers.values()} == {3: "A", 4: "B", 5: "C"}


@pytest.mark.parametrize(("text", "name"), [("{", "c.json"), ("a: [", "c.yaml")])
def test_unreadable_text_names_the_file(text: str, name: str) -> None:
    with pytest.raises(CatalogError, match=rf"^{name}: is not valid"):
        parse_text(text, name)


def test_an_id_of_true_is_not_taken_for_entity_1() -> None:
    """YAML's and JSON's true equals 1 in Python: a file saying ``id: true`` must be
    refused, not update advertiser 1."""
    catalog = catalog_from(DOCUMENT)
    changes, errors = plan_document(catalog, {"advertisers": [{"id": True, "name": "Renamed"}]})
    assert changes == []
    assert [(e.field, e.problem) for e in errors] == [
        ("advertisers[0].id", "must be a whole number from 1 to 2147483647, not True")
    ]
    assert catalog.advertisers[1].name == "Adv"


def test_a_name_with_control_characters_is_refused() -> None:
    changes, errors = plan_document(Catalog(), {"affiliates": [{"id": 7, "name": "Aff\x1b[31m"}]})
    assert changes == []
    assert [e.field for e in errors] == ["affiliates[0].name"]
    assert "control characters" in errors[0].problem


def test_a_personal_payout_read_back_from_the_topic_changes_nothing() -> None:
    """The catalog topic's JSON gives lists; a personal payment's affiliates come back
    as the tuple validation made, so exporting and applying again writes nothing."""
    document = {
        **DOCUMENT,
        "offers": [
            {
                "id": 20,
                "title": "Personal",
                "advertiser_id": 1,
                "payments": [{"type": "CPA", "revenue": "9", "payout": "7", "affiliates": [7]}],
            }
        ],
    }
    catalog = catalog_from(document)
    assert catalog.offers[20].payments[0].affiliates == (7,)
    changes, errors = plan_document(catalog, to_document(catalog))
    assert (changes, errors) == ([], [])


def test_postback_security_required_refuses_each_open_offer_the_file_names() -> None:
    """Under POSTBACK_SECURITY_REQUIRED every offer named must be protected, even one
    the file leaves as it was; an open offer the file does not name is no error."""
    catalog = catalog_from(
        {
            "advertisers": [{"id": 1, "name": "Adv"}],
            "offers": [
                {"id": 30, "title": "Open", "advertiser_id": 1, "allow_impressions": True},
                {"id": 31, "title": "Kept", "advertiser_id": 1, "allow_impressions": True},
            ],
        }
    )
    document = {
        "offers": [
            {"id": 30, "title": "Open", "advertiser_id": 1, "allow_impressions": True},
            {"id": 32, "title": "New", "advertiser_id": 1, "allow_impressions": True},
            {"id": 33, "title": "Signed", "advertiser_id": 1, "postback_token": "t"},
        ]
    }
    changes, errors = plan_document(catalog, document, postback_security_required=True)
    assert changes == []
    assert [e.field for e in errors] == ["offers[0].postback_token", "offers[1].postback_token"]
    assert errors[1].problem.startswith("offer 32 takes view-through conversions")
    signed = {"offers": [{**document["offers"][1], "postback_ip_whitelist": ["198.51.100.7"]}]}
    changes, errors = plan_document(catalog, signed, postback_security_required=True)
    assert errors == [] and len(changes) == 1
