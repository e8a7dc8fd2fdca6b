-- query: label_agreement
-- The share of fit $f's top-$k positive neighbours that share their target's label.
-- Parameters: $f BIGINT, $k INTEGER.
SELECT pairs FROM neighbor_label_agreement($f, $k)
