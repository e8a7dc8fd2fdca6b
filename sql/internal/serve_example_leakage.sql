-- query: serve_example_leakage
-- Where training example $i is the top leakage candidate of a test target of fit $f: the
-- target and its leakage rank (leakage).
-- Parameters: $f BIGINT, $i INTEGER.
SELECT target_id, leakage_rank, weight FROM leakage($f, 1) WHERE train_id = $i ORDER BY leakage_rank
