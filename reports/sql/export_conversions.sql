-- Conversions of one batch, each as of its highest revision in the batch, where
-- that is newer than the stored row: a replay of an older revision (or of the same
-- one) changes nothing, a status update replaces the row. The stored row's status
-- and money come along, so the rollup can take them away again.
CREATE OR REPLACE TEMP TABLE fresh_conversions AS
SELECT
    b.*,
    stored.status AS stored_status,
    stored.revenue AS stored_revenue,
    stored.payout AS stored_payout
FROM (
    SELECT * FROM batch_conversions
    QUALIFY row_number() OVER (PARTITION BY conversion_id ORDER BY revision DESC) = 1
) AS b
LEFT JOIN conversions AS stored ON stored.conversion_id = b.conversion_id
WHERE stored.conversion_id IS NULL OR stored.revision < b.revision;

INSERT OR REPLACE INTO conversions BY NAME
SELECT * EXCLUDE (stored_status, stored_revenue, stored_payout) FROM fresh_conversions;

-- A new conversion counts once under its status; an updated one moves from its
-- stored status to the new one. CPA money counts while a conversion is approved.
INSERT INTO stats_hourly BY NAME
SELECT
    time_bucket(INTERVAL 1 HOUR, ts, 'UTC') AS hour, offer_id, pid, advertiser_id, currency,
    goal, attribution,
    coalesce(sub1, '') AS sub1, coalesce(sub2, '') AS sub2, coalesce(sub3, '') AS sub3,
    coalesce(sub4, '') AS sub4, coalesce(sub5, '') AS sub5, coalesce(sub6, '') AS sub6,
    coalesce(sub7, '') AS sub7, coalesce(sub8, '') AS sub8,
    count(*) FILTER (stored_status IS NULL) AS conversions,
    sum((status = 1)::INTEGER - coalesce((stored_status = 1)::INTEGER, 0)) AS approved,
    sum((status = 2)::INTEGER - coalesce((stored_status = 2)::INTEGER, 0)) AS pending,
    sum((status = 3)::INTEGER - coalesce((stored_status = 3)::INTEGER, 0)) AS declined,
    sum((status = 5)::INTEGER - coalesce((stored_status = 5)::INTEGER, 0)) AS hold,
    sum(CASE WHEN status = 1 THEN revenue ELSE 0 END
        - CASE WHEN stored_status = 1 THEN stored_revenue ELSE 0 END) AS cpa_revenue,
    sum(CASE WHEN status = 1 THEN payout ELSE 0 END
        - CASE WHEN stored_status = 1 THEN stored_payout ELSE 0 END) AS cpa_payout
FROM fresh_conversions
GROUP BY ALL;
