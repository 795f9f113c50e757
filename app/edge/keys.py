"""Typed keys of the edge's aiohttp application (the admin API reads them too)."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web

from app.attribution.verdicts import VerdictWaiter
from app.catalog.follower import CatalogFollower
from app.catalog.service import CatalogService
from app.edge.api_keys import ApiKeyGate
from app.edge.envelope_writer import EnvelopeWriter
from app.edge.links import LinkFinder
from app.edge.placement import Placement
from app.edge.producer import EventProducer
from app.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
PRODUCER = web.AppKey("producer", EventProducer)
CATALOG = web.AppKey("catalog", CatalogFollower)
CATALOG_SERVICE = web.AppKey("catalog_service", CatalogService)
API_KEY_GATE = web.AppKey("api_key_gate", ApiKeyGate)
REDIS = web.AppKey("redis", aioredis.Redis)
VERDICTS = web.AppKey("verdicts", VerdictWaiter)
PLACEMENT = web.AppKey("placement", Placement)
IMPRESSIONS = web.AppKey("impressions", EnvelopeWriter)
LINKS = web.AppKey("links", LinkFinder)
