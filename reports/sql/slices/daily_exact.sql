-- Daily slice from the rows themselves, for timezones whose offset is not a whole
-- number of hours (an hourly bucket would straddle their midnight).
SELECT
    CAST(timezone($tz, ts) AS DATE) AS day,
    count(*)::BIGINT                 AS impressions
FROM impressions
WHERE ts >= $start AND ts < $end
GROUP BY day
ORDER BY day;
