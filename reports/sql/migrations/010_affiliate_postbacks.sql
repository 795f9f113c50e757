-- Every attempt to post a conversion's status back to an affiliate postback URL
-- (issue 21), one row per attempt, as deliveries holds the impressions' (the
-- outcomes are app.forwarding.outcomes'). A conversion revision is one status told:
-- its creation, or a change of its status.
CREATE TABLE affiliate_postbacks (
    conversion_id     VARCHAR        NOT NULL,
    revision          INTEGER        NOT NULL,
    postback_id       VARCHAR        NOT NULL, -- the advertiser's postback that made it
    status_ts         TIMESTAMPTZ    NOT NULL, -- when that postback arrived
    ts                TIMESTAMPTZ    NOT NULL, -- when this attempt started
    offer_id          INTEGER        NOT NULL,
    pid               INTEGER        NOT NULL,
    advertiser_id     INTEGER        NOT NULL,
    action_id         VARCHAR,
    goal              VARCHAR        NOT NULL,
    conversion_status SMALLINT       NOT NULL, -- the status told: 1, 2, 3 or 5
    payout            DECIMAL(18, 8) NOT NULL, -- the payout told (0 when declined)
    currency          VARCHAR        NOT NULL,
    destination       VARCHAR        NOT NULL, -- the URL as configured, macros unfilled
    url               VARCHAR        NOT NULL, -- the URL as requested
    attempt           SMALLINT       NOT NULL,
    outcome           VARCHAR        NOT NULL,
    status            SMALLINT,                -- the HTTP status, when the URL answered
    error             VARCHAR,
    latency_ms        DOUBLE         NOT NULL
);
