-- Stored: an aimp_id already stored as a rejection or as an impression. Runs after
-- the batch's impressions, so an aimp_id stored as an impression (now or before) is
-- not also counted as rejected.
SELECT aimp_id FROM rejections WHERE aimp_id >= $min_id
UNION ALL
SELECT aimp_id FROM impressions WHERE aimp_id >= $min_id;

INSERT INTO rejections BY NAME SELECT * FROM fresh_rejections;

-- An offer has one advertiser: it is not part of the key, the first batch's stays.
INSERT INTO rejections_hourly BY NAME
SELECT
    time_bucket(INTERVAL 1 HOUR, ts, 'UTC') AS hour, offer_id, pid, reason,
    count(*) AS rejections, coalesce(max(advertiser_id), 0) AS advertiser_id
FROM fresh_rejections
GROUP BY ALL
ON CONFLICT (hour, offer_id, pid, reason)
DO UPDATE SET rejections = rejections_hourly.rejections + excluded.rejections;
