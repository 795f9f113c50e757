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

INSERT INTO impressions_hourly
SELECT
    time_bucket(INTERVAL 1 HOUR, ts, 'UTC') AS hour,
    offer_id,
    pid,
    currency,
    count(*)     AS impressions,
    sum(revenue) AS revenue,
    sum(payout)  AS payout
FROM fresh_impressions
GROUP BY ALL
ON CONFLICT (hour, offer_id, pid, currency)
DO UPDATE SET
    impressions = impressions_hourly.impressions + excluded.impressions,
    revenue = impressions_hourly.revenue + excluded.revenue,
    payout = impressions_hourly.payout + excluded.payout;
