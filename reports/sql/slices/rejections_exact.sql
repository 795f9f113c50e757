-- Rejections slice from the rows themselves, for timezones whose offset is not a
-- whole number of hours.
SELECT
    reason,
    count(*)::BIGINT                                      AS rejections,
    round(100.0 * count(*) / sum(count(*)) OVER (), 1)    AS share_pct,
    count(DISTINCT offer_id)::BIGINT                      AS offers,
    count(DISTINCT pid)::BIGINT                           AS affiliates
FROM rejections
WHERE ts >= $start AND ts < $end
GROUP BY reason
ORDER BY rejections DESC, reason;
