"""``dpas sweep``: a TOML grid of run settings, expanded, run on a pool or a dask cluster,
and written as a resumable Parquet dataset."""
