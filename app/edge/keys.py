"""Typed keys of the edge's aiohttp application."""

from __future__ import annotations

from aiohttp import web

from app.edge.producer import EventProducer
from app.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
PRODUCER = web.AppKey("producer", EventProducer)
