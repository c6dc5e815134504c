"""Storage: the metadata database, the parquet lake, the cache and the model registry."""
