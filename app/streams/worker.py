"""The worker process (``imptrack worker``): built from its settings.

Data passes through it in this order: the edge's ``impressions``, ``clicks`` and
``postbacks`` topics → the impressions agent (judge, record, emit, index for
clicks) and the clicks agent (record) → their tables → the postbacks agent (find
what a postback names, judge it) → the conversions agent (one conversion per
advertiser action) → the topics the exporter and the forwarder read.
"""

from __future__ import annotations

import faust

from agents.clicks import record_clicks
from agents.conversions import decide_conversions
from agents.impressions import record_impressions
from agents.impressions_expiry import expire_impressions
from agents.postbacks import Sources, match_postbacks
from agents.table_progress import TableInput
from app.attribution.replies import replying_through
from app.catalog.follower import CatalogFollower
from app.events import kinds
from app.events.topics import EventTopics
from app.ids import IdSeal
from app.installation_secrets import load_id_key
from app.metrics.state import GroupLag
from app.settings import Settings
from app.streams import worker_views
from app.streams.faust_app import Role, build_faust_app, redis_client
from app.streams.worker_links import serve_links
from tables import declare_tables


def build_worker(settings: Settings) -> faust.App:
    app = build_faust_app(
        settings,
        Role(
            kinds.WORKER_APP_ID,
            settings.worker_data_dir,
            settings.instance_port(settings.worker_web_port),
            settings.processing_guarantee,
        ),
    )
    topics = EventTopics(app)
    tables = declare_tables(app)
    impressions_input = TableInput(app, kinds.IMPRESSIONS)
    clicks_input = TableInput(app, kinds.CLICKS)
    # A short fetch wait: each batch of impressions and postbacks waits for proof that
    # its catalog is current, which takes up to two fetch waits.
    catalog = CatalogFollower(settings.broker, fetch_wait_ms=settings.worker_catalog_fetch_wait_ms)
    app.task(catalog.run)
    redis = redis_client(settings)
    reply = replying_through(redis)

    record_impressions(app, topics, tables.impressions, impressions_input, catalog)
    expire_impressions(app, tables.impressions, catalog)
    record_clicks(app, topics, tables.clicks, clicks_input)
    seal = IdSeal(load_id_key(settings))
    sources = Sources(tables.clicks, clicks_input, tables.impressions, impressions_input, seal)
    match_postbacks(app, topics, sources, catalog, seal, reply, settings.topic_partitions)
    decide_conversions(app, topics, tables.conversions, catalog, reply)
    serve_links(app, tables.impressions, seal, settings, redis)
    worker_views.serve(app, catalog, GroupLag(settings.broker, kinds.WORKER_APP_ID))
    return app
