-- query: serve_examples
-- Labels and splits of a list of examples (for captions under images).
-- Parameters: $ids INTEGER[].
SELECT example_id, split, label FROM examples WHERE list_contains($ids, example_id)
