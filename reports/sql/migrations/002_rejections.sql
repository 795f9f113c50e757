-- Impressions that were not tracked, with the rule each broke (one row per aimp_id).
CREATE TABLE rejections (
    aimp_id   VARCHAR     NOT NULL,
    ts        TIMESTAMPTZ NOT NULL,
    offer_id  INTEGER     NOT NULL,
    pid       INTEGER     NOT NULL,
    reason    VARCHAR     NOT NULL,
    imp_id    VARCHAR
);

CREATE TABLE rejections_hourly (
    hour       TIMESTAMPTZ NOT NULL,
    offer_id   INTEGER     NOT NULL,
    pid        INTEGER     NOT NULL,
    reason     VARCHAR     NOT NULL,
    rejections BIGINT      NOT NULL,
    PRIMARY KEY (hour, offer_id, pid, reason)
);
