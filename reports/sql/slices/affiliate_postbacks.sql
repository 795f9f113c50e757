-- Affiliate postbacks slice: each conversion status posted back to an affiliate
-- postback URL in the period (by when the conversion got that status), as it
-- stands: its latest attempt's answer and outcome, and how many attempts it took.
SELECT
    strftime(timezone($tz, any_value(status_ts)), '%Y-%m-%d %H:%M:%S') AS status_at,
    offer_id,
    pid,
    conversion_id,
    revision,
    any_value(action_id)                                AS action_id,
    any_value(goal)                                     AS goal,
    CASE any_value(conversion_status) WHEN 1 THEN 'approved' WHEN 2 THEN 'pending'
        WHEN 3 THEN 'declined' WHEN 5 THEN 'hold' END   AS conversion_status,
    any_value(payout)::DECIMAL(18, 4)                   AS payout,
    any_value(currency)                                 AS currency,
    arg_max(url, attempt)                               AS url,
    arg_max_null(status, attempt)                       AS http_status,
    arg_max(outcome, attempt)                           AS outcome,
    count(*)                                            AS attempts,
    coalesce(arg_max_null(error, attempt), '')          AS error,
    strftime(timezone($tz, max(ts)), '%Y-%m-%d %H:%M:%S') AS last_attempt_at
FROM affiliate_postbacks
WHERE status_ts >= $start AND status_ts < $end
  AND (len($offers) = 0 OR list_contains($offers, offer_id))
  AND (len($affiliates) = 0 OR list_contains($affiliates, pid))
  AND (len($advertisers) = 0 OR list_contains($advertisers, advertiser_id))
  AND (len($statuses) = 0 OR list_contains($statuses, conversion_status))
GROUP BY conversion_id, revision, destination, offer_id, pid
