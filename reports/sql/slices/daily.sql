-- Daily slice from the UTC hourly rollups; $tz names the reporting timezone.
WITH counts AS (
    SELECT hour, impressions, 0::BIGINT AS clicks
    FROM impressions_hourly
    WHERE hour >= $start AND hour < $end
    UNION ALL
    SELECT hour, 0::BIGINT, clicks
    FROM clicks_hourly
    WHERE hour >= $start AND hour < $end
)
SELECT
    CAST(timezone($tz, hour) AS DATE)                           AS day,
    sum(impressions)::BIGINT                                     AS impressions,
    sum(clicks)::BIGINT                                          AS clicks,
    round(100.0 * sum(clicks) / nullif(sum(impressions), 0), 2) AS ctr_pct
FROM counts
GROUP BY day
ORDER BY day;
