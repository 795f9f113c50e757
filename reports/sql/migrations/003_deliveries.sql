-- Every attempt to deliver a recorded impression to its destination URL, one row
-- per attempt (see app.forwarding.outcomes for the outcomes).
CREATE TABLE deliveries (
    aimp_id       VARCHAR     NOT NULL,
    impression_ts TIMESTAMPTZ NOT NULL, -- when the impression was accepted
    ts            TIMESTAMPTZ NOT NULL, -- when this attempt started
    offer_id      INTEGER     NOT NULL,
    pid           INTEGER     NOT NULL,
    advertiser_id INTEGER     NOT NULL,
    destination   VARCHAR     NOT NULL, -- the URL as configured, macros unfilled
    url           VARCHAR     NOT NULL, -- the URL as requested
    attempt       SMALLINT    NOT NULL,
    outcome       VARCHAR     NOT NULL,
    status        SMALLINT,             -- the HTTP status, when the destination answered
    error         VARCHAR,
    latency_ms    DOUBLE      NOT NULL
);
