-- Rejections slice: why impressions were not tracked, per reason code, from the
-- UTC hourly rollup (exact for timezones with whole-hour offsets).
SELECT
    reason,
    sum(rejections)::BIGINT                                     AS rejections,
    round(100.0 * sum(rejections) / sum(sum(rejections)) OVER (), 1) AS share_pct,
    count(DISTINCT offer_id)::BIGINT                            AS offers,
    count(DISTINCT pid)::BIGINT                                 AS affiliates
FROM rejections_hourly
WHERE hour >= $start AND hour < $end
GROUP BY reason
ORDER BY rejections DESC, reason;
