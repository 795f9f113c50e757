-- Conversions by attribution (issue 21): CR is click-attributed conversions over
-- clicks, and view-through conversions are counted in columns of their own (an
-- offer's CR reached 150 % when they were counted against clicks). The rollup gets
-- the attribution as one more dimension: 'click' or 'view_through' on the rows of
-- conversions, '' on those of impressions and clicks.
ALTER TABLE stats_hourly ADD COLUMN attribution VARCHAR DEFAULT '';

-- The rows of conversions (the only ones without impressions or clicks) are made
-- again from the conversions as they stand, now split by attribution.
DELETE FROM stats_hourly WHERE impressions = 0 AND clicks = 0;
INSERT INTO stats_hourly BY NAME
SELECT
    time_bucket(INTERVAL 1 HOUR, ts, 'UTC') AS hour, offer_id, pid, advertiser_id, currency,
    goal, attribution,
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

CREATE OR REPLACE VIEW custom_base AS
SELECT
    hour,
    CAST(hour AS DATE) AS date,
    offer_id,
    pid,
    nullif(advertiser_id, 0) AS advertiser_id,
    currency,
    nullif(goal, '') AS goal,
    nullif(attribution, '') AS attribution,
    nullif(sub1, '') AS sub1, nullif(sub2, '') AS sub2, nullif(sub3, '') AS sub3,
    nullif(sub4, '') AS sub4, nullif(sub5, '') AS sub5, nullif(sub6, '') AS sub6,
    nullif(sub7, '') AS sub7, nullif(sub8, '') AS sub8,
    impressions, clicks, conversions, approved, pending, declined, hold,
    cpm_revenue + cpa_revenue AS revenue,
    cpm_payout + cpa_payout AS payout
FROM stats_hourly;
