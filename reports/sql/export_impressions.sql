-- Stored: an aimp_id already stored as an impression or as a rejection. An
-- impression stored as rejected stays rejected: a replay judged against a changed
-- catalog must not count it twice (the first verdict stored wins).
SELECT aimp_id FROM impressions WHERE aimp_id >= $min_id
UNION ALL
SELECT aimp_id FROM rejections WHERE aimp_id >= $min_id;

INSERT INTO impressions BY NAME SELECT * FROM fresh_impressions;

-- The batch's counts, appended to the rollup (migration 006 says why appended).
INSERT INTO stats_hourly BY NAME
SELECT
    time_bucket(INTERVAL 1 HOUR, ts, 'UTC') AS hour, offer_id, pid,
    coalesce(advertiser_id, 0) AS advertiser_id, currency,
    coalesce(sub1, '') AS sub1, coalesce(sub2, '') AS sub2, coalesce(sub3, '') AS sub3,
    coalesce(sub4, '') AS sub4, coalesce(sub5, '') AS sub5, coalesce(sub6, '') AS sub6,
    coalesce(sub7, '') AS sub7, coalesce(sub8, '') AS sub8,
    count(*) AS impressions, sum(revenue) AS cpm_revenue, sum(payout) AS cpm_payout
FROM fresh_impressions
GROUP BY ALL;
