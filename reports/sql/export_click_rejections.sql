-- Stored: a clickid already stored as rejected (the edge judged it; there is no
-- other verdict to look at).
SELECT clickid FROM click_rejections WHERE clickid >= $min_id;

INSERT INTO click_rejections BY NAME SELECT * FROM fresh_click_rejections;

-- An offer has one advertiser: it is not part of the key, the first batch's stays.
INSERT INTO click_rejections_hourly BY NAME
SELECT
    time_bucket(INTERVAL 1 HOUR, ts, 'UTC') AS hour, offer_id, pid, reason,
    count(*) AS rejections, coalesce(max(advertiser_id), 0) AS advertiser_id
FROM fresh_click_rejections
GROUP BY ALL
ON CONFLICT (hour, offer_id, pid, reason)
DO UPDATE SET rejections = click_rejections_hourly.rejections + excluded.rejections;
