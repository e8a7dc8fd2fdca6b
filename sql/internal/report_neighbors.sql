-- query: report_neighbors
-- Figure 9: the first 4 targets of fit $f with their 5 most positive and negative neighbours
-- and both sides' features.
-- Parameters: $f BIGINT.
SELECT * FROM neighbor_features($f, 5, 4)
