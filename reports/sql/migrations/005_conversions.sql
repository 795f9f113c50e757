-- Money: what each recorded impression earned at its offer's CPM price (price /
-- 1000), and the currency its offer counts in; clicks get the offer's currency.
-- Slices group by currency and never add different currencies together.
ALTER TABLE impressions ADD COLUMN revenue DECIMAL(18, 8) NOT NULL DEFAULT 0;
ALTER TABLE impressions ADD COLUMN payout DECIMAL(18, 8) NOT NULL DEFAULT 0;
ALTER TABLE impressions ADD COLUMN currency VARCHAR NOT NULL DEFAULT 'USD';
ALTER TABLE clicks ADD COLUMN currency VARCHAR NOT NULL DEFAULT 'USD';

-- The hourly rollups gain the currency in their key, and impressions their money.
CREATE TABLE impressions_hourly_005 (
    hour        TIMESTAMPTZ    NOT NULL,
    offer_id    INTEGER        NOT NULL,
    pid         INTEGER        NOT NULL,
    currency    VARCHAR        NOT NULL,
    impressions BIGINT         NOT NULL,
    revenue     DECIMAL(38, 8) NOT NULL,
    payout      DECIMAL(38, 8) NOT NULL,
    PRIMARY KEY (hour, offer_id, pid, currency)
);
INSERT INTO impressions_hourly_005
SELECT hour, offer_id, pid, 'USD', impressions, 0, 0 FROM impressions_hourly;
DROP TABLE impressions_hourly;
ALTER TABLE impressions_hourly_005 RENAME TO impressions_hourly;

CREATE TABLE clicks_hourly_005 (
    hour     TIMESTAMPTZ NOT NULL,
    offer_id INTEGER     NOT NULL,
    pid      INTEGER     NOT NULL,
    currency VARCHAR     NOT NULL,
    clicks   BIGINT      NOT NULL,
    PRIMARY KEY (hour, offer_id, pid, currency)
);
INSERT INTO clicks_hourly_005 SELECT hour, offer_id, pid, 'USD', clicks FROM clicks_hourly;
DROP TABLE clicks_hourly;
ALTER TABLE clicks_hourly_005 RENAME TO clicks_hourly;

-- One row per conversion, as of its latest revision (a repeated action_id with a
-- new status updates it). ts is when it was created (its first postback),
-- event_ts when its click or impression happened.
CREATE TABLE conversions (
    conversion_id VARCHAR        PRIMARY KEY,
    revision      INTEGER        NOT NULL,
    postback_id   VARCHAR        NOT NULL, -- the postback that made this revision
    ts            TIMESTAMPTZ    NOT NULL,
    updated_ts    TIMESTAMPTZ    NOT NULL,
    event_ts      TIMESTAMPTZ    NOT NULL,
    offer_id      INTEGER        NOT NULL,
    pid           INTEGER        NOT NULL,
    advertiser_id INTEGER        NOT NULL,
    attribution   VARCHAR        NOT NULL, -- click | view_through
    aimp_id       VARCHAR,
    clickid       VARCHAR,
    action_id     VARCHAR,
    goal          VARCHAR        NOT NULL,
    status        SMALLINT       NOT NULL, -- 1 approved, 2 pending, 3 declined, 5 hold
    sum           DECIMAL(18, 4),          -- the amount the advertiser reported
    revenue       DECIMAL(18, 8) NOT NULL,
    payout        DECIMAL(18, 8) NOT NULL,
    currency      VARCHAR        NOT NULL,
    sub1          VARCHAR,
    sub2          VARCHAR,
    sub3          VARCHAR,
    sub4          VARCHAR,
    sub5          VARCHAR,
    sub6          VARCHAR,
    sub7          VARCHAR,
    sub8          VARCHAR,
    custom_field1 VARCHAR,
    custom_field2 VARCHAR,
    custom_field3 VARCHAR,
    custom_field4 VARCHAR,
    custom_field5 VARCHAR,
    custom_field6 VARCHAR,
    custom_field7 VARCHAR
);

-- Every postback received, accepted or refused, with its parameters as sent.
CREATE TABLE server_postbacks (
    postback_id       VARCHAR     NOT NULL,
    ts                TIMESTAMPTZ NOT NULL,
    method            VARCHAR     NOT NULL,
    ip                VARCHAR,
    params            JSON        NOT NULL,
    clickid           VARCHAR,              -- as sent, for searching
    aimp_id           VARCHAR,
    action_id         VARCHAR,
    status            SMALLINT    NOT NULL, -- the answer's: 1 accepted, 2 refused
    outcome           VARCHAR     NOT NULL, -- created | updated | refused
    error             VARCHAR,
    conversion_id     VARCHAR,
    conversion_status SMALLINT,
    previous_status   SMALLINT,
    attribution       VARCHAR,
    offer_id          INTEGER,
    pid               INTEGER,
    goal              VARCHAR
);
