-- Recorded clicks, one row per clickid, with the impression each was linked to.
CREATE TABLE clicks (
    clickid       VARCHAR     NOT NULL,
    ts            TIMESTAMPTZ NOT NULL,
    offer_id      INTEGER     NOT NULL,
    pid           INTEGER     NOT NULL,
    advertiser_id INTEGER     NOT NULL,
    link          VARCHAR     NOT NULL, -- aimp_id | imp_id | none | unavailable
    aimp_id       VARCHAR,              -- the impression the click followed, if found
    imp_id        VARCHAR,
    sub1          VARCHAR,
    sub2          VARCHAR,
    sub3          VARCHAR,
    sub4          VARCHAR,
    sub5          VARCHAR,
    sub6          VARCHAR,
    sub7          VARCHAR,
    sub8          VARCHAR,
    ua            VARCHAR,
    ip            VARCHAR
);

CREATE TABLE clicks_hourly (
    hour     TIMESTAMPTZ NOT NULL,
    offer_id INTEGER     NOT NULL,
    pid      INTEGER     NOT NULL,
    clicks   BIGINT      NOT NULL,
    PRIMARY KEY (hour, offer_id, pid)
);

-- Clicks that were not tracked, with the rule each broke.
CREATE TABLE click_rejections (
    clickid  VARCHAR     NOT NULL,
    ts       TIMESTAMPTZ NOT NULL,
    offer_id INTEGER     NOT NULL,
    pid      INTEGER     NOT NULL,
    reason   VARCHAR     NOT NULL,
    imp_id   VARCHAR
);

CREATE TABLE click_rejections_hourly (
    hour       TIMESTAMPTZ NOT NULL,
    offer_id   INTEGER     NOT NULL,
    pid        INTEGER     NOT NULL,
    reason     VARCHAR     NOT NULL,
    rejections BIGINT      NOT NULL,
    PRIMARY KEY (hour, offer_id, pid, reason)
);
