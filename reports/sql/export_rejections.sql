-- New rejections of one batch, each aimp_id once; runs after the batch's
-- impressions, so an aimp_id stored as an impression (now or before) is not also
-- counted as rejected.
CREATE OR REPLACE TEMP TABLE fresh_rejections AS
SELECT *
FROM (
    SELECT * FROM batch_rejections
    QUALIFY row_number() OVER (PARTITION BY aimp_id) = 1
) AS b
ANTI JOIN (
    SELECT aimp_id FROM rejections WHERE aimp_id >= $min_id
    UNION ALL
    SELECT aimp_id FROM impressions WHERE aimp_id >= $min_id
) AS stored USING (aimp_id);

INSERT INTO rejections BY NAME SELECT * FROM fresh_rejections;

INSERT INTO rejections_hourly
SELECT
    time_bucket(INTERVAL 1 HOUR, ts, 'UTC') AS hour, offer_id, pid, reason, count(*) AS rejections
FROM fresh_rejections
GROUP BY ALL
ON CONFLICT (hour, offer_id, pid, reason)
DO UPDATE SET rejections = rejections_hourly.rejections + excluded.rejections;
