-- Stored: a clickid already stored.
SELECT clickid FROM clicks WHERE clickid >= $min_id;

INSERT INTO clicks BY NAME SELECT * FROM fresh_clicks;

INSERT INTO stats_hourly BY NAME
SELECT
    time_bucket(INTERVAL 1 HOUR, ts, 'UTC') AS hour, offer_id, pid, advertiser_id, currency,
    coalesce(sub1, '') AS sub1, coalesce(sub2, '') AS sub2, coalesce(sub3, '') AS sub3,
    coalesce(sub4, '') AS sub4, coalesce(sub5, '') AS sub5, coalesce(sub6, '') AS sub6,
    coalesce(sub7, '') AS sub7, coalesce(sub8, '') AS sub8,
    count(*) AS clicks
FROM fresh_clicks
GROUP BY ALL;
