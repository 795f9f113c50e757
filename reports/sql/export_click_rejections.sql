-- New click rejections of one batch, each clickid once (the edge judged it; there is
-- no other verdict to anti-join against).
CREATE OR REPLACE TEMP TABLE fresh_click_rejections AS
SELECT *
FROM (
    SELECT * FROM batch_click_rejections
    QUALIFY row_number() OVER (PARTITION BY clickid) = 1
) AS b
ANTI JOIN (
    SELECT clickid FROM click_rejections WHERE clickid >= $min_id
) AS stored USING (clickid);

INSERT INTO click_rejections BY NAME SELECT * FROM fresh_click_rejections;

INSERT INTO click_rejections_hourly
SELECT
    time_bucket(INTERVAL 1 HOUR, ts, 'UTC') AS hour, offer_id, pid, reason, count(*) AS rejections
FROM fresh_click_rejections
GROUP BY ALL
ON CONFLICT (hour, offer_id, pid, reason)
DO UPDATE SET rejections = click_rejections_hourly.rejections + excluded.rejections;
