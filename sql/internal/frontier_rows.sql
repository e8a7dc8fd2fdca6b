-- query: frontier_rows
-- The frontier of experiment $e at alpha $a with $r seconds per trained model.
-- Parameters: $e VARCHAR, $a DOUBLE, $r DOUBLE (or NULL).
SELECT * FROM frontier($e, $a, train_s_per_model := $r)
