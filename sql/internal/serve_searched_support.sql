-- query: serve_searched_support
-- Target $t's guided-search support (support view) in the fits where the search ran.
-- Parameters: $t INTEGER.
SELECT fit_id, support AS searched_support, certified FROM support WHERE target_id = $t
