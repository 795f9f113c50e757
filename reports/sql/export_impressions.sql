-- New impressions of one batch: not yet stored, each aimp_id once. aimp_ids are
-- time-ordered, so only stored rows at or after the batch's smallest id can match,
-- which keeps the anti-joins on recent row groups. An impression already stored as
-- rejected stays rejected: a replay judged against a changed catalog must not
-- count it twice (the first verdict stored wins).
CREATE OR REPLACE TEMP TABLE fresh_impressions AS
SELECT *
FROM (
    SELECT * FROM batch_impressions
    QUALIFY row_number() OVER (PARTITION BY aimp_id) = 1
) AS b
ANTI JOIN (
    SELECT aimp_id FROM impressions WHERE aimp_id >= $min_id
    UNION ALL
    SELECT aimp_id FROM rejections WHERE aimp_id >= $min_id
) AS stored USING (aimp_id);

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
