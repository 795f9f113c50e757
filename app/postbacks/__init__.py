"""Postbacks: conversions the advertiser reports, matched to a click or impression."""
