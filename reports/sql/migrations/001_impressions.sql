-- Recorded impressions, one row per aimp_id (the exporter deduplicates replays).
CREATE TABLE impressions (
    aimp_id   VARCHAR     NOT NULL,
    ts        TIMESTAMPTZ NOT NULL,
    offer_id  INTEGER     NOT NULL,
    pid       INTEGER     NOT NULL,
    imp_id    VARCHAR,
    sub1      VARCHAR,
    sub2      VARCHAR,
    sub3      VARCHAR,
    sub4      VARCHAR,
    sub5      VARCHAR,
    sub6      VARCHAR,
    sub7      VARCHAR,
    sub8      VARCHAR,
    ua        VARCHAR,
    ip        VARCHAR
);

-- Hourly rollup (hour is the UTC hour start), maintained in the same transaction
-- as the rows it counts.
CREATE TABLE impressions_hourly (
    hour        TIMESTAMPTZ NOT NULL,
    offer_id    INTEGER     NOT NULL,
    pid         INTEGER     NOT NULL,
    impressions BIGINT      NOT NULL,
    PRIMARY KEY (hour, offer_id, pid)
);

-- Where the exporter resumes. Keyed by the broker's cluster id: offsets of one
-- cluster mean nothing on another (the embedded broker is new on every start).
CREATE TABLE export_offsets (
    cluster_id  VARCHAR NOT NULL,
    topic       VARCHAR NOT NULL,
    "partition" INTEGER NOT NULL,
    next_offset BIGINT  NOT NULL,
    PRIMARY KEY (cluster_id, topic, "partition")
);
