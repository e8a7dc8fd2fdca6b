-- query: serve_example
-- One example's row (id, split, label, group_key), or none.
-- Parameters: $i INTEGER.
SELECT example_id, split, label, group_key FROM examples WHERE example_id = $i
