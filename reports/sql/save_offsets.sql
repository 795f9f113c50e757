INSERT INTO export_offsets
SELECT $cluster_id, topic, "partition", next_offset FROM batch_offsets
ON CONFLICT (cluster_id, topic, "partition")
DO UPDATE SET next_offset = excluded.next_offset;
