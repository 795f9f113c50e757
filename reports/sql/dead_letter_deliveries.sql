-- The dead-lettered impression deliveries `imptrack deliveries replay` sends again:
-- dead-lettered in [$from_ts, $to_ts), of the offer and destination asked for (NULL:
-- any; a destination is the URL as configured, or the start of the URL requested),
-- each the last attempt at its delivery: one attempted since (a replay under way or
-- done) is not sent again.
SELECT
    dead.aimp_id, dead.offer_id, dead.pid, dead.advertiser_id, dead.destination, dead.url,
    dead.attempt
FROM deliveries AS dead
WHERE dead.outcome = 'dead_letter'
  AND dead.ts >= $from_ts AND dead.ts < $to_ts
  AND ($offer_id IS NULL OR dead.offer_id = $offer_id)
  AND ($destination IS NULL OR dead.destination = $destination
       OR starts_with(dead.url, $destination))
  AND NOT EXISTS (
      SELECT 1 FROM deliveries AS later
      WHERE later.aimp_id = dead.aimp_id AND later.destination = dead.destination
        AND later.attempt > dead.attempt
  )
ORDER BY dead.ts, dead.aimp_id;
