-- Daily slice from the UTC hourly rollup; $tz names the reporting timezone.
SELECT
    CAST(timezone($tz, hour) AS DATE) AS day,
    sum(impressions)::BIGINT           AS impressions
FROM impressions_hourly
WHERE hour >= $start AND hour < $end
GROUP BY day
ORDER BY day;
