-- The statistics rollup behind every aggregated slice (Daily, Advertisers, Offers,
-- Affiliates, Custom), and the views analysts query in the DuckDB file.

-- The advertiser of each recorded impression, as the worker judged it; older rows
-- learn it from any other event of the same offer.
ALTER TABLE impressions ADD COLUMN advertiser_id INTEGER;
UPDATE impressions SET advertiser_id = known.advertiser_id
FROM (
    SELECT offer_id, max(advertiser_id) AS advertiser_id
    FROM (
        SELECT offer_id, advertiser_id FROM clicks
        UNION ALL SELECT offer_id, advertiser_id FROM deliveries
        UNION ALL SELECT offer_id, advertiser_id FROM conversions
    )
    GROUP BY offer_id
) AS known
WHERE impressions.offer_id = known.offer_id;

-- One row per UTC hour and combination of dimensions *per export batch*: the
-- exporter appends each batch's counts (a conversion whose status changed adds a
-- row taking the old status away and giving the new one), and slices sum. No key
-- and no in-place update keeps the export an append. Empty text dimensions are '' rather than NULL so
-- that rows of one combination group together; the views turn them back to NULL.
-- goal is a conversion's goal ('' on impressions and clicks). Money per kind:
-- cpm_* is what impressions earned, cpa_* what *approved* conversions earned.
CREATE TABLE stats_hourly (
    hour          TIMESTAMPTZ    NOT NULL,
    offer_id      INTEGER        NOT NULL,
    pid           INTEGER        NOT NULL,
    advertiser_id INTEGER        NOT NULL, -- 0: not known (rows from before 006)
    currency      VARCHAR        NOT NULL,
    goal          VARCHAR        NOT NULL DEFAULT '',
    sub1          VARCHAR        NOT NULL DEFAULT '',
    sub2          VARCHAR        NOT NULL DEFAULT '',
    sub3          VARCHAR        NOT NULL DEFAULT '',
    sub4          VARCHAR        NOT NULL DEFAULT '',
    sub5          VARCHAR        NOT NULL DEFAULT '',
    sub6          VARCHAR        NOT NULL DEFAULT '',
    sub7          VARCHAR        NOT NULL DEFAULT '',
    sub8          VARCHAR        NOT NULL DEFAULT '',
    impressions   BIGINT         NOT NULL DEFAULT 0,
    clicks        BIGINT         NOT NULL DEFAULT 0,
    conversions   BIGINT         NOT NULL DEFAULT 0,
    approved      BIGINT         NOT NULL DEFAULT 0,
    pending       BIGINT         NOT NULL DEFAULT 0,
    declined      BIGINT         NOT NULL DEFAULT 0,
    hold          BIGINT         NOT NULL DEFAULT 0,
    cpm_revenue   DECIMAL(38, 8) NOT NULL DEFAULT 0,
    cpm_payout    DECIMAL(38, 8) NOT NULL DEFAULT 0,
    cpa_revenue   DECIMAL(38, 8) NOT NULL DEFAULT 0,
    cpa_payout    DECIMAL(38, 8) NOT NULL DEFAULT 0
);

INSERT INTO stats_hourly BY NAME
SELECT
    time_bucket(INTERVAL 1 HOUR, ts, 'UTC') AS hour, offer_id, pid,
    coalesce(advertiser_id, 0) AS advertiser_id, currency,
    coalesce(sub1, '') AS sub1, coalesce(sub2, '') AS sub2, coalesce(sub3, '') AS sub3,
    coalesce(sub4, '') AS sub4, coalesce(sub5, '') AS sub5, coalesce(sub6, '') AS sub6,
    coalesce(sub7, '') AS sub7, coalesce(sub8, '') AS sub8,
    count(*) AS impressions, sum(revenue) AS cpm_revenue, sum(payout) AS cpm_payout
FROM impressions
GROUP BY ALL;

INSERT INTO stats_hourly BY NAME
SELECT
    time_bucket(INTERVAL 1 HOUR, ts, 'UTC') AS hour, offer_id, pid, advertiser_id, currency,
    coalesce(sub1, '') AS sub1, coalesce(sub2, '') AS sub2, coalesce(sub3, '') AS sub3,
    coalesce(sub4, '') AS sub4, coalesce(sub5, '') AS sub5, coalesce(sub6, '') AS sub6,
    coalesce(sub7, '') AS sub7, coalesce(sub8, '') AS sub8,
    count(*) AS clicks
FROM clicks
GROUP BY ALL;

INSERT INTO stats_hourly BY NAME
SELECT
    time_bucket(INTERVAL 1 HOUR, ts, 'UTC') AS hour, offer_id, pid, advertiser_id, currency,
    goal,
    coalesce(sub1, '') AS sub1, coalesce(sub2, '') AS sub2, coalesce(sub3, '') AS sub3,
    coalesce(sub4, '') AS sub4, coalesce(sub5, '') AS sub5, coalesce(sub6, '') AS sub6,
    coalesce(sub7, '') AS sub7, coalesce(sub8, '') AS sub8,
    count(*) AS conversions,
    count(*) FILTER (status = 1) AS approved,
    count(*) FILTER (status = 2) AS pending,
    count(*) FILTER (status = 3) AS declined,
    count(*) FILTER (status = 5) AS hold,
    coalesce(sum(revenue) FILTER (status = 1), 0) AS cpa_revenue,
    coalesce(sum(payout) FILTER (status = 1), 0) AS cpa_payout
FROM conversions
GROUP BY ALL;

-- The narrower rollups of 001/004 are now views of this one.
DROP TABLE impressions_hourly;
DROP TABLE clicks_hourly;
CREATE VIEW impressions_hourly AS
SELECT hour, offer_id, pid, currency, sum(impressions)::BIGINT AS impressions,
    sum(cpm_revenue) AS revenue, sum(cpm_payout) AS payout
FROM stats_hourly
GROUP BY ALL
HAVING sum(impressions) <> 0;
CREATE VIEW clicks_hourly AS
SELECT hour, offer_id, pid, currency, sum(clicks)::BIGINT AS clicks
FROM stats_hourly
GROUP BY ALL
HAVING sum(clicks) <> 0;

-- For analysts (docs/REPORTING.md): days and hours are UTC here; `imptrack report`
-- and the stats API take any IANA timezone. The slice views (daily, offers, ...)
-- are made from the slices' own definitions when the exporter opens the file
-- (reports/views.py).
CREATE VIEW custom_base AS
SELECT
    hour,
    CAST(hour AS DATE) AS date,
    offer_id,
    pid,
    nullif(advertiser_id, 0) AS advertiser_id,
    currency,
    nullif(goal, '') AS goal,
    nullif(sub1, '') AS sub1, nullif(sub2, '') AS sub2, nullif(sub3, '') AS sub3,
    nullif(sub4, '') AS sub4, nullif(sub5, '') AS sub5, nullif(sub6, '') AS sub6,
    nullif(sub7, '') AS sub7, nullif(sub8, '') AS sub8,
    impressions, clicks, conversions, approved, pending, declined, hold,
    cpm_revenue + cpa_revenue AS revenue,
    cpm_payout + cpa_payout AS payout
FROM stats_hourly;
