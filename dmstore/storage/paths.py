"""Where things live inside a store directory.

    STORE/dmstore.json                       manifest (format version, d, created_at, …)
    STORE/_log/<version>.json                the commit log: what is live (see `log`)
    STORE/examples.parquet                   written once by `init`
    STORE/batches/<batch>/models.parquet     one ingested batch of models …
    STORE/batches/<batch>/margins.parquet    … and its margins (live in the same commit)
    STORE/fits/<fit>/{fit_runs,fits,weights,eval_predictions}.parquet
    STORE/fits/<fit>-by-train…/weights_by_train.parquet   a fit's train-major copy (optional)
    STORE/analyses/<unit>/{counterfactuals,support,…}.parquet
    STORE/_runs/<name>.json                  sharded fit runs (fit id, pinned version, settings)
    STORE/_fit_ids/<id>                      fit ids reserved by writers
    STORE/_leases/<token>.json               writers' leases (see `lease`)
    STORE/_retrain/<key>.npy                 cache: retrained chunks of counterfactual/support runs
                                             not yet committed (a rerun after Ctrl-C reuses them)
    STORE/_attribution/models-<key>.pt       cache: full-data models of `dmstore attribute`
    STORE/.tmp/<unit>/                       private: files being written
    STORE/.lock                              private: writer lock (fcntl), for id reservation
    STORE/.next_model_id                     private: the next model id no writer has reserved
"""
MANIFEST = "dmstore.json"
EXAMPLES = "examples.parquet"
LOG = "_log"
BATCHES = "batches"
FITS = "fits"
ANALYSES = "analyses"
UNIT_PREFIXES = (BATCHES, FITS, ANALYSES)
RUNS = "_runs"
FIT_IDS = "_fit_ids"
LEASES = "_leases"
RETRAIN = "_retrain"         # caches: deterministic to rebuild; `vacuum --caches` deletes them
ATTRIBUTION = "_attribution"
CACHES = (RETRAIN, ATTRIBUTION)
PRIVATE_DIRS = (FIT_IDS, LEASES)   # made with the store, so a writer that fails leaves no new folder
TMP = ".tmp"
LOCK = ".lock"
NEXT_ID = ".next_model_id"   # model ids reserved by writers (never reused)
EMPTY = "0-empty"            # zero-row files that pin column types and keep file lists non-empty
