"""Clicks: the tracking link, linking a click to the impression it followed."""
