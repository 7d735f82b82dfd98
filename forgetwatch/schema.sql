-- forgetwatch DuckDB schema, version 1. Documented in docs/schema.md.
-- Statements are idempotent; forgetwatch.db applies this file on every write-open.

CREATE TABLE IF NOT EXISTS schema_info (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);

-- One row per MLflow run.
CREATE TABLE IF NOT EXISTS runs (
    run_id          VARCHAR PRIMARY KEY,   -- MLflow run id
    tracking_uri    VARCHAR,               -- where it was synced from
    experiment_id   VARCHAR,
    experiment_name VARCHAR,
    run_name        VARCHAR,
    status          VARCHAR,               -- RUNNING / FINISHED / FAILED / KILLED
    start_time      TIMESTAMP,
    end_time        TIMESTAMP,
    base_model      VARCHAR,               -- path or hub id of the model this run fine-tunes
    method          VARCHAR,               -- full / lora / qlora / unknown
    output_dir      VARCHAR,               -- where the trainer wrote checkpoints and the final model
    params          MAP(VARCHAR, VARCHAR), -- every MLflow param
    tags            MAP(VARCHAR, VARCHAR)  -- every MLflow tag
);

-- Full metric histories, one row per logged point.
CREATE TABLE IF NOT EXISTS run_metrics (
    run_id    VARCHAR NOT NULL,
    key       VARCHAR NOT NULL,
    step      BIGINT  NOT NULL,
    ts        TIMESTAMP,
    value     DOUBLE
);

-- Anything that gets evaluated: a base model, a run's final model, a checkpoint, an adapter.
CREATE TABLE IF NOT EXISTS models (
    model_id      VARCHAR PRIMARY KEY,  -- normalised path or hub id (plus "+adapter" for peft)
    kind          VARCHAR NOT NULL,     -- base / final / checkpoint / adapter / external
    path          VARCHAR,              -- pretrained= path or hub id
    adapter_path  VARCHAR,              -- peft= path, if any
    run_id        VARCHAR,              -- MLflow run that produced it, if known
    step          BIGINT,               -- checkpoint step, if a checkpoint
    base_model_id VARCHAR,              -- the model it was fine-tuned from, if known
    display_name  VARCHAR
);

-- One lm-eval invocation (one results_*.json file).
CREATE TABLE IF NOT EXISTS evals (
    eval_id           VARCHAR PRIMARY KEY,  -- sha256 of the results file's content
    model_id          VARCHAR NOT NULL,
    model_args        VARCHAR,
    lm_eval_version   VARCHAR,
    n_shot            MAP(VARCHAR, VARCHAR),
    eval_limit        DOUBLE,               -- --limit, NULL when unlimited
    task_hashes       MAP(VARCHAR, VARCHAR),
    chat_template_sha VARCHAR,
    evaluated_at      TIMESTAMP,            -- from the results file's `date`
    source_file       VARCHAR,
    ingested_at       TIMESTAMP
);

-- Aggregated scores: one row per (eval, task, metric, filter).
CREATE TABLE IF NOT EXISTS scores (
    eval_id          VARCHAR NOT NULL,
    task             VARCHAR NOT NULL,
    metric           VARCHAR NOT NULL,
    filter           VARCHAR NOT NULL,
    value            DOUBLE,
    stderr           DOUBLE,             -- NULL when lm-eval reported "N/A"
    n_samples        BIGINT,
    higher_is_better BOOLEAN,
    is_group         BOOLEAN,
    PRIMARY KEY (eval_id, task, metric, filter)
);

-- Per-sample outcomes: one row per (eval, task, doc, filter, metric).
CREATE TABLE IF NOT EXISTS samples (
    eval_id     VARCHAR NOT NULL,
    task        VARCHAR NOT NULL,
    doc_id      BIGINT  NOT NULL,
    filter      VARCHAR NOT NULL,
    metric      VARCHAR NOT NULL,
    value       DOUBLE,                 -- 0/1, continuous, or the mean of a list-valued metric
    target      VARCHAR,
    response    VARCHAR,                -- first filtered response
    doc_hash    VARCHAR,
    prompt_hash VARCHAR,
    target_hash VARCHAR
);

-- Which capability each task measures, and its primary metric (from a suite file).
CREATE TABLE IF NOT EXISTS suite_tasks (
    task       VARCHAR PRIMARY KEY,
    suite      VARCHAR NOT NULL,
    capability VARCHAR NOT NULL,  -- target / knowledge / code / instructions / hallucination
    metric     VARCHAR NOT NULL,
    filter     VARCHAR NOT NULL
);

-- When each source was last synced, and what it brought (for status and support).
CREATE TABLE IF NOT EXISTS sync_state (
    source    VARCHAR PRIMARY KEY,
    synced_at TIMESTAMP,
    detail    VARCHAR
);

-- Eval jobs started from the dashboard or `forgetwatch eval`.
CREATE TABLE IF NOT EXISTS jobs (
    job_id      VARCHAR PRIMARY KEY,
    spec        JSON NOT NULL,        -- what to evaluate: model, suite, options
    status      VARCHAR NOT NULL,     -- queued / running / succeeded / failed / cancelled
    pid         BIGINT,               -- process group leader while running
    progress    DOUBLE,               -- 0..1, last value reported
    log_path    VARCHAR,
    output_dir  VARCHAR,
    error       VARCHAR,
    created_at  TIMESTAMP NOT NULL,
    started_at  TIMESTAMP,
    finished_at TIMESTAMP
);
