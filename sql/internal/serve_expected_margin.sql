-- query: serve_expected_margin
-- Target $t's expected margin for each fit of $fits: its mean margin over the fit and val models
-- of the fit's experiment and alpha (as data_support computes it).
-- Parameters: $fits BIGINT[], $t INTEGER.
WITH e AS (
    SELECT m.experiment, m.alpha, avg(y.margin)::DOUBLE AS expected_margin
    FROM margins AS y JOIN models AS m USING (model_id)
    WHERE m.role IN ('fit', 'val') AND y.example_id = $t
    GROUP BY ALL
)
SELECT r.fit_id, e.expected_margin
FROM fit_runs AS r JOIN e ON e.experiment = r.experiment AND e.alpha = r.alpha
WHERE list_contains($fits, r.fit_id)
