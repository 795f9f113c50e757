-- Daily slice from the rows themselves, for timezones whose offset is not a whole
-- number of hours (an hourly bucket would straddle their midnight).
WITH counts AS (
    SELECT ts, 1 AS impressions, 0 AS clicks FROM impressions WHERE ts >= $start AND ts < $end
    UNION ALL
    SELECT ts, 0, 1 FROM clicks WHERE ts >= $start AND ts < $end
)
SELECT
    CAST(timezone($tz, ts) AS DATE)                              AS day,
    sum(impressions)::BIGINT                                     AS impressions,
    sum(clicks)::BIGINT                                          AS clicks,
    round(100.0 * sum(clicks) / nullif(sum(impressions), 0), 2) AS ctr_pct
FROM counts
GROUP BY day
ORDER BY day;
