-- Postback outcomes of one batch, each postback once (an outcome is published again
-- when its postback is read again after a crash; it is the same outcome).
CREATE OR REPLACE TEMP TABLE fresh_server_postbacks AS
SELECT *
FROM (
    SELECT * FROM batch_server_postbacks
    QUALIFY row_number() OVER (PARTITION BY postback_id) = 1
) AS b
ANTI JOIN (
    SELECT postback_id FROM server_postbacks WHERE postback_id >= $min_id
) AS stored USING (postback_id);

INSERT INTO server_postbacks BY NAME SELECT * FROM fresh_server_postbacks;
