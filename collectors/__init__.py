"""Collectors: one module per source, each writing into the forgetwatch DuckDB file.

``mlflow_runs.sync`` reads MLflow runs; ``lm_eval_results.ingest`` reads lm-eval
output folders. Both return a ``SyncReport`` that the CLI, the dashboard and the
tests read the same way.
"""
