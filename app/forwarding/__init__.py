"""Forwarding recorded impressions to the advertiser's impressions destination URLs."""
