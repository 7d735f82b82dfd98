-- forgetwatch DuckDB schema, version 2. Documented in docs/schema.md.
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
    tags            MAP(VARCHAR, VARCHAR), -- every MLflow tag
    parent_run_id   VARCHAR,               -- mlflow.parentRunId: the sweep/parent run, if nested
    deleted         BOOLEAN DEFAULT false, -- gone from MLflow's active view at the last full sweep
    synced_at       TIMESTAMP              -- when this row was last written
);

-- Full metric histories, one row per logged point.
CREATE TABLE IF NOT EXISTS run_metrics (
    run_id    VARCHAR NOT NULL,
    key       VARCHAR NOT NULL,
    step      BIGINT  NOT NULL,
    ts        TIMESTAMP,
    value     DOUBLE
);

-- The latest point of each (run, key) as MLflow's search reports it: a history is
-- refetched only when this changes.
CREATE TABLE IF NOT EXISTS run_metric_latest (
    run_id VARCHAR NOT NULL,
    key    VARCHAR NOT NULL,
    step   BIGINT,
    ts     TIMESTAMP,
    value  DOUBLE,
    PRIMARY KEY (run_id, key)
);

-- MLflow 3 LoggedModels (the HF Trainer logs checkpoints as `checkpoint-N`, step 0).
CREATE TABLE IF NOT EXISTS logged_models (
    logged_model_id VARCHAR PRIMARY KEY,  -- MLflow's m-... id
    run_id          VARCHAR,              -- source run
    experiment_id   VARCHAR,
    name            VARCHAR,
    step            BIGINT,               -- N of checkpoint-N, else MLflow's step
    artifact_uri    VARCHAR,
    status          VARCHAR,
    created_at      TIMESTAMP,
    model_id        VARCHAR,              -- the models row it became
    params          MAP(VARCHAR, VARCHAR),
    tags            MAP(VARCHAR, VARCHAR)
);

-- Registered model versions (MLflow's model registry).
CREATE TABLE IF NOT EXISTS registered_versions (
    name            VARCHAR NOT NULL,
    version         VARCHAR NOT NULL,
    run_id          VARCHAR,
    source          VARCHAR,              -- runs:/..., models:/m-..., or a storage URI
    logged_model_id VARCHAR,
    status          VARCHAR,
    aliases         VARCHAR[],
    created_at      TIMESTAMP,
    model_id        VARCHAR,              -- the models row it points at, when known
    PRIMARY KEY (name, version)
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
    display_name  VARCHAR,
    base_source   VARCHAR,              -- which rule recorded base_model_id (docs/schema.md)
    files_mtime   TIMESTAMP,            -- when its files were written, if readable at ingest
    link_note     VARCHAR               -- why the run link is uncertain, when it is
);

-- Bases a user paired by hand (`forgetwatch pair`, `ingest --base`, the base picker).
-- Kept apart from models so that relinking never overwrites them; they win over every
-- inferred base.
CREATE TABLE IF NOT EXISTS model_bases (
    model_id      VARCHAR PRIMARY KEY,
    base_model_id VARCHAR NOT NULL,
    set_at        TIMESTAMP,
    set_by        VARCHAR               -- the OS user or dashboard user who paired them
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
    ingested_at       TIMESTAMP,
    run_id            VARCHAR,              -- MLflow run it was logged to or tagged with, if any
    source_kind       VARCHAR,              -- file / artifact
    base_hint         VARCHAR,              -- the base the eval's own files name, if any
    base_hint_source  VARCHAR               -- adapter_config.json / config.json / metadata
);

-- Aggregated scores: one row per (eval, task, metric, filter).
CREATE TABLE IF NOT EXISTS scores (
    eval_id          VARCHAR NOT NULL,
    task             VARCHAR NOT NULL,
    metric           VARCHAR NOT NULL,
    filter           VARCHAR NOT NULL,
    value            DOUBLE,
    stderr           DOUBLE,             -- NULL when lm-eval reported "N/A"
    n_samples        BIGINT,             -- documents scored (n-samples effective; a group: summed)
    higher_is_better BOOLEAN,            -- as the results file says (0.3 files: the task's own)
    is_group         BOOLEAN,
    n_original       BIGINT,             -- documents in the task (n-samples original); > n_samples
                                         -- when --limit cut the task
    PRIMARY KEY (eval_id, task, metric, filter)
);

-- lm-eval's own group structure (`group_subtasks`): one row per (eval, group, subtask)
-- for every subtask under the group, nested ones included (mmlu -> mmlu_stem ->
-- mmlu_anatomy is a depth-2 row of mmlu), so readers find a group's tasks without recursion.
CREATE TABLE IF NOT EXISTS task_groups (
    eval_id    VARCHAR NOT NULL,
    group_task VARCHAR NOT NULL,
    subtask    VARCHAR NOT NULL,
    depth      BIGINT  NOT NULL,  -- 1: listed under the group itself in group_subtasks
    position   BIGINT,            -- reading order under the group (lm-eval's, depth first)
    PRIMARY KEY (eval_id, group_task, subtask)
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
    target_hash VARCHAR,
    prompt      VARCHAR                 -- the first request's context, for the flip explorer
);

-- Multiple-choice samples: one row per (eval, task, doc, filter), read at ingest from the
-- samples file's requests (the question stays once per doc in samples.prompt).
CREATE TABLE IF NOT EXISTS sample_choices (
    eval_id        VARCHAR NOT NULL,
    task           VARCHAR NOT NULL,
    doc_id         BIGINT  NOT NULL,
    filter         VARCHAR NOT NULL,
    choices        VARCHAR[],           -- each choice's text, without the task's target_delimiter
    loglikelihoods DOUBLE[],            -- the model's loglikelihood of each choice, same order
    gold           INTEGER              -- 0-based index of the correct choice; NULL if unknown
);

-- Evals whose samples were read for choices. An eval stored before choices were read
-- has no row here, so `forgetwatch ingest DIR` re-reads its samples to fill them in.
CREATE TABLE IF NOT EXISTS sample_choice_evals (
    eval_id VARCHAR PRIMARY KEY,
    read_at TIMESTAMP
);

-- Which capability each task measures, and its primary metric (from a suite file).
CREATE TABLE IF NOT EXISTS suite_tasks (
    task       VARCHAR PRIMARY KEY,
    suite      VARCHAR NOT NULL,
    capability VARCHAR NOT NULL,  -- target / knowledge / code / instructions / hallucination
    metric     VARCHAR NOT NULL,
    filter     VARCHAR NOT NULL
);

-- A suite's per-task direction (`higher_is_better:` in the suite file). A task without
-- a row takes the results file's higher_is_better, else higher is better.
CREATE TABLE IF NOT EXISTS suite_directions (
    task             VARCHAR PRIMARY KEY,
    higher_is_better BOOLEAN NOT NULL
);

-- When each source was last synced, and what it brought (for status and support).
CREATE TABLE IF NOT EXISTS sync_state (
    source    VARCHAR PRIMARY KEY,
    synced_at TIMESTAMP,
    detail    VARCHAR,
    max_start_time  TIMESTAMP,  -- watermarks for incremental MLflow sync
    max_end_time    TIMESTAMP,
    last_full_sweep TIMESTAMP,
    store_digest    VARCHAR     -- a sqlite MLflow store's digest as that sync began reading it
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

-- Stored analysis (forgetwatch.analysis): the paired tests of every evaluated model
-- against its base, computed when data arrives so that no page render reads samples.
-- What each model's rows were computed from; a changed inputs_key means redo them.
CREATE TABLE IF NOT EXISTS analysis_state (
    model_id      VARCHAR PRIMARY KEY,
    base_model_id VARCHAR,              -- the base the rows below were paired with
    inputs_key    VARCHAR NOT NULL,     -- digest of the evals chosen, the suite, stats settings
    stats_key     VARCHAR NOT NULL,     -- the statistics settings, readable
    n_tasks       BIGINT,
    analysed_at   TIMESTAMP
);

-- One row per (model, base, task, metric, filter): the delta and its test, p uncorrected
-- (the correction and alpha come from the reader's budget).
CREATE TABLE IF NOT EXISTS task_tests (
    model_id        VARCHAR NOT NULL,
    base_model_id   VARCHAR,
    task            VARCHAR NOT NULL,
    parent          VARCHAR,            -- the suite task; differs for a group's subtasks
    capability      VARCHAR,
    metric          VARCHAR NOT NULL,
    filter          VARCHAR NOT NULL,
    is_group        BOOLEAN,
    position        BIGINT,             -- reading order within the model
    base_value      DOUBLE,
    value           DOUBLE,
    delta           DOUBLE,
    n_pairs         BIGINT,
    right_to_wrong  BIGINT,             -- 0/1 metrics only
    wrong_to_right  BIGINT,
    hash_mismatches BIGINT,
    test            VARCHAR,            -- mcnemar-exact / paired-bootstrap / stderr-z
    evidence        VARCHAR,            -- paired / stderr / none
    p_value         DOUBLE,
    ci_low          DOUBLE,
    ci_high         DOUBLE
);

-- One row per (model, base, capability): the mean task delta and its stratified test.
CREATE TABLE IF NOT EXISTS capability_tests (
    model_id       VARCHAR NOT NULL,
    base_model_id  VARCHAR,
    capability     VARCHAR NOT NULL,
    metric         VARCHAR,             -- the tasks' metrics, joined
    filter         VARCHAR,
    is_group       BOOLEAN,
    position       BIGINT,
    base_value     DOUBLE,
    value          DOUBLE,
    delta          DOUBLE,
    n_pairs        BIGINT,
    right_to_wrong BIGINT,
    wrong_to_right BIGINT,
    test           VARCHAR,
    evidence       VARCHAR,
    p_value        DOUBLE,
    ci_low         DOUBLE,
    ci_high        DOUBLE
);

-- One row per (model, task, setting) whose eval ran differently from the base's eval.
CREATE TABLE IF NOT EXISTS settings_mismatches (
    model_id      VARCHAR NOT NULL,
    base_model_id VARCHAR NOT NULL,
    task          VARCHAR NOT NULL,
    setting       VARCHAR NOT NULL,   -- n-shot / limit / samples / lm-eval / task hash / ...
    value         VARCHAR,            -- the model's eval
    base_value    VARCHAR,            -- the base's eval
    position      BIGINT
);

-- Upgrades from schema version 1: CREATE TABLE IF NOT EXISTS leaves old tables as
-- they were, so new columns are added here (no-ops on a fresh file).
ALTER TABLE runs ADD COLUMN IF NOT EXISTS parent_run_id VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS deleted BOOLEAN DEFAULT false;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS synced_at TIMESTAMP;
ALTER TABLE samples ADD COLUMN IF NOT EXISTS prompt VARCHAR;
ALTER TABLE evals ADD COLUMN IF NOT EXISTS run_id VARCHAR;
ALTER TABLE evals ADD COLUMN IF NOT EXISTS source_kind VARCHAR;
ALTER TABLE sync_state ADD COLUMN IF NOT EXISTS max_start_time TIMESTAMP;
ALTER TABLE sync_state ADD COLUMN IF NOT EXISTS max_end_time TIMESTAMP;
ALTER TABLE sync_state ADD COLUMN IF NOT EXISTS last_full_sweep TIMESTAMP;
ALTER TABLE sync_state ADD COLUMN IF NOT EXISTS store_digest VARCHAR;
ALTER TABLE models ADD COLUMN IF NOT EXISTS base_source VARCHAR;
ALTER TABLE models ADD COLUMN IF NOT EXISTS files_mtime TIMESTAMP;
ALTER TABLE models ADD COLUMN IF NOT EXISTS link_note VARCHAR;
ALTER TABLE evals ADD COLUMN IF NOT EXISTS base_hint VARCHAR;
ALTER TABLE evals ADD COLUMN IF NOT EXISTS base_hint_source VARCHAR;
ALTER TABLE scores ADD COLUMN IF NOT EXISTS n_original BIGINT;
-- The standard error each minimum detectable effect is read from (analysis version 3).
ALTER TABLE task_tests ADD COLUMN IF NOT EXISTS se_difference DOUBLE;
ALTER TABLE capability_tests ADD COLUMN IF NOT EXISTS se_difference DOUBLE;
-- Tasks where model and base both score 0 (or both 100): no item can flip, so the task
-- is left out of its capability's mean, which counts them (analysis version 4).
ALTER TABLE task_tests ADD COLUMN IF NOT EXISTS uninformative BOOLEAN;
ALTER TABLE capability_tests ADD COLUMN IF NOT EXISTS n_uninformative BIGINT;

-- Partial evals: lm-eval results files that ran only some items of each task (a quick
-- check), or re-ran the base to measure the harness's own noise. Written by the eval job
-- before it ingests the file, keyed by its source_file, so no delta, pairing or
-- settings comparison ever takes one for a full eval (queries.deltas.scores_cte).
CREATE TABLE IF NOT EXISTS partial_evals (
    source_file VARCHAR PRIMARY KEY,  -- evals.source_file of the results file
    kind        VARCHAR NOT NULL,     -- quick / repeat-base
    items       VARCHAR,              -- JSON: task -> doc ids run (NULL: every item)
    job_id      VARCHAR,
    created_at  TIMESTAMP
);

-- The harness's own noise: the base evaluated twice (another batch size and seed),
-- per task the share of paired items whose outcome differed. 0 flips is a measurement.
CREATE TABLE IF NOT EXISTS noise_floor (
    model_id     VARCHAR NOT NULL,    -- the base model
    task         VARCHAR NOT NULL,
    metric       VARCHAR NOT NULL,
    filter       VARCHAR NOT NULL,
    n_pairs      BIGINT,
    flips        BIGINT,              -- items whose 0/1 outcome changed (continuous: |diff| > 1e-9)
    flip_rate    DOUBLE,              -- flips / n_pairs
    mean_abs_diff DOUBLE,             -- mean |repeat - reference| per item
    reference_source VARCHAR,         -- the base's full eval (source_file)
    repeat_source    VARCHAR,         -- the repeat's results file
    settings     VARCHAR,             -- what differed: batch size and seed
    measured_at  TIMESTAMP,
    PRIMARY KEY (model_id, task, metric, filter)
);

-- Quick checks: one row per (job, capability), the sequential test's outcome.
CREATE TABLE IF NOT EXISTS quick_checks (
    job_id        VARCHAR NOT NULL,
    model_id      VARCHAR,
    base_model_id VARCHAR,
    capability    VARCHAR NOT NULL,
    outcome       VARCHAR,            -- met / fail / full (decided on every item) / unruled
    look          BIGINT,             -- the look that decided it (0-based)
    delta         DOUBLE,             -- Horvitz-Thompson estimate (fraction, + = better)
    ci_low        DOUBLE,
    ci_high       DOUBLE,
    n_used        BIGINT,
    n_items       BIGINT,
    source_file   VARCHAR,
    checked_at    TIMESTAMP,
    PRIMARY KEY (job_id, capability)
);

-- Job backends (local, ray) and who launched each job. Older rows are local.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS backend VARCHAR DEFAULT 'local';  -- local / ray
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS launched_by VARCHAR;  -- signed-in user, or "user (cli)"
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS backend_address VARCHAR;  -- the Ray cluster's address

-- Saved Compare selections: a link to many runs carries ?sel=<sel_id> instead of every id.
-- sel_id is a digest of the sorted picks (review.comparison.selection_key), so saving the
-- same selection again changes nothing. Written by exports.selections, read by queries.compare.
CREATE TABLE IF NOT EXISTS compare_selections (
    sel_id     VARCHAR PRIMARY KEY,
    run_ids    VARCHAR[] NOT NULL,
    model_ids  VARCHAR[] NOT NULL,
    created_at TIMESTAMP DEFAULT current_timestamp
);
