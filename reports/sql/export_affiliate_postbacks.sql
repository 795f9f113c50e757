-- Stored: the delivery log is published at least once, so an attempt (conversion
-- revision, destination, attempt number) may arrive again after a crash; the first
-- stored copy is kept.
SELECT conversion_id, revision, destination, attempt
FROM affiliate_postbacks WHERE conversion_id >= $min_id;

INSERT INTO affiliate_postbacks BY NAME SELECT * FROM fresh_affiliate_postbacks;
