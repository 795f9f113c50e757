-- Conversions slice: the conversions created in the period, as they stand now.
SELECT
    conversion_id,
    strftime(timezone($tz, ts), '%Y-%m-%d %H:%M:%S') AS created,
    offer_id,
    pid,
    attribution,
    aimp_id,
    clickid,
    action_id,
    goal,
    CASE status WHEN 1 THEN 'approved' WHEN 2 THEN 'pending' WHEN 3 THEN 'declined'
        WHEN 5 THEN 'hold' END                         AS status,
    revenue::DECIMAL(18, 4)                            AS revenue,
    payout::DECIMAL(18, 4)                             AS payout,
    currency,
    revision
FROM conversions
WHERE ts >= $start AND ts < $end
ORDER BY ts DESC, conversion_id DESC;
