-- New clicks of one batch: not yet stored, each clickid once.
CREATE OR REPLACE TEMP TABLE fresh_clicks AS
SELECT *
FROM (
    SELECT * FROM batch_clicks
    QUALIFY row_number() OVER (PARTITION BY clickid) = 1
) AS b
ANTI JOIN (
    SELECT clickid FROM clicks WHERE clickid >= $min_id
) AS stored USING (clickid);

INSERT INTO clicks BY NAME SELECT * FROM fresh_clicks;

INSERT INTO clicks_hourly
SELECT time_bucket(INTERVAL 1 HOUR, ts, 'UTC') AS hour, offer_id, pid, currency, count(*) AS clicks
FROM fresh_clicks
GROUP BY ALL
ON CONFLICT (hour, offer_id, pid, currency)
DO UPDATE SET clicks = clicks_hourly.clicks + excluded.clicks;
