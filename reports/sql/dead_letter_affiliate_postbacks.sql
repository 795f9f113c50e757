-- The dead-lettered affiliate postbacks `imptrack deliveries replay` sends again, as
-- reports/sql/dead_letter_deliveries.sql picks impressions: one delivery is a
-- conversion's revision told to one destination.
SELECT
    dead.conversion_id, dead.revision, dead.postback_id, dead.offer_id, dead.pid,
    dead.advertiser_id, dead.conversion_status, CAST(dead.payout AS VARCHAR) AS payout, dead.currency,
    dead.goal, dead.destination, dead.url, dead.action_id, dead.attempt
FROM affiliate_postbacks AS dead
WHERE dead.outcome = 'dead_letter'
  AND dead.ts >= $from_ts AND dead.ts < $to_ts
  AND ($offer_id IS NULL OR dead.offer_id = $offer_id)
  AND ($destination IS NULL OR dead.destination = $destination
       OR starts_with(dead.url, $destination))
  AND NOT EXISTS (
      SELECT 1 FROM affiliate_postbacks AS later
      WHERE later.conversion_id = dead.conversion_id AND later.revision = dead.revision
        AND later.destination = dead.destination AND later.attempt > dead.attempt
  )
ORDER BY dead.ts, dead.conversion_id;
