-- Stored: the delivery log is published at least once, so an attempt (aimp_id,
-- destination, attempt number) may arrive again after a crash; the first stored
-- copy is kept.
SELECT aimp_id, destination, attempt FROM deliveries WHERE aimp_id >= $min_id;

INSERT INTO deliveries BY NAME SELECT * FROM fresh_deliveries;
