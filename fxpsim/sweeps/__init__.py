"""Design-space sweeps: points, engine (Dask), store (Parquet), search (Optuna), reports."""
