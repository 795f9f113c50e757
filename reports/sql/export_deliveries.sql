-- New delivery attempts of one batch: the log is published at least once, so an
-- attempt (aimp_id, destination, attempt number) may arrive again after a crash;
-- the first stored copy is kept.
CREATE OR REPLACE TEMP TABLE fresh_deliveries AS
SELECT *
FROM (
    SELECT * FROM batch_deliveries
    QUALIFY row_number() OVER (PARTITION BY aimp_id, destination, attempt) = 1
) AS b
ANTI JOIN (
    SELECT aimp_id, destination, attempt FROM deliveries WHERE aimp_id >= $min_id
) AS stored USING (aimp_id, destination, attempt);

INSERT INTO deliveries BY NAME SELECT * FROM fresh_deliveries;
