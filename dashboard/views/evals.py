"""Evals: pick a model and a suite, run it as a background job, watch it, cancel it.

Jobs are detached processes (``forgetwatch.evals.jobs``), so this page only submits and
reads: the jobs panel is a fragment that re-reads the jobs table and each
job's progress file every 2 s, and a reload (or a new browser) finds running
jobs again. Finished jobs' results are ingested by the job itself, so Runs and
Compare show them on their next render.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from forgetwatch import settings
from forgetwatch.dashboard import auth, components
from forgetwatch.errors import BadInputError, ForgetwatchError
from forgetwatch.evals import jobs, partials, targets
from forgetwatch.evals.targets import DEVICES, DTYPES
from forgetwatch.exports.escaping import escape_markdown
from forgetwatch.review import partial as review_partial
from forgetwatch.suite import Suite, load_suite

SOURCES = (
    "Base model",
    "Run's final model",
    "Checkpoint of a run",
    "Registered MLflow model",
    "Local folder or hub id",
    "LoRA adapter over a base",
)
KIND_OF_SOURCE = {SOURCES[0]: "base", SOURCES[1]: "final", SOURCES[2]: "checkpoint"}
SUITES: tuple[str, ...] = (
    "Bundled offline suite",
    "Standard benchmarks (needs the hub)",
    "Suite YAML file",
)
SUITES += ("Paste suite YAML",)


@st.cache_data(ttl=60, show_spinner=False)
def hub_reachable() -> bool:
    """Checked at most once a minute: the check may take its full 3 s timeout."""
    return targets.hub_reachable()


def pick_model(models: pd.DataFrame) -> tuple[str, str | None, str] | None:
    """The chosen (model, adapter, label); registered models resolve only when Run is clicked."""
    source = st.radio("What to evaluate", SOURCES, horizontal=True, key="source")
    if source in KIND_OF_SOURCE:
        rows = models[models["kind"] == KIND_OF_SOURCE[source]]
        if rows.empty:
            st.info("The database has no such models yet: sync MLflow runs first.")
            return None
        labels = dict(zip(rows["model_id"], rows["label"], strict=True))
        # Keyed by model_id: labels (run names, path tails) can repeat.
        chosen = st.selectbox("Model", list(labels), format_func=labels.get, key="model-pick")
        row = rows[rows["model_id"] == chosen].iloc[0]
        adapter = row["adapter_path"] if isinstance(row["adapter_path"], str) else None
        return str(row["path"]), adapter, str(labels[chosen])
    if source == "Registered MLflow model":
        left, right = st.columns([3, 1])
        name = left.text_input("Registered model name", key="reg-name")
        version = right.text_input("Version", value="1", key="reg-version")
        return f"models:/{name}/{version}", None, f"{name} v{version}"
    if source == "Local folder or hub id":
        ref = st.text_input(
            "Model folder or hub id", placeholder="/path/to/model or org/name", key="local-ref"
        )
        return ref, None, ref.rstrip("/").rsplit("/", 1)[-1]
    base = st.text_input("Base model folder or hub id", key="lora-base")
    adapter = st.text_input("Adapter folder (with adapter_config.json)", key="lora-adapter")
    return base, adapter, f"{adapter.rstrip('/').rsplit('/', 1)[-1]} (LoRA)"


def pick_suite() -> Suite | None:
    """The chosen suite, validated now so YAML mistakes show before anything runs."""
    choice = st.radio("Suite", SUITES, horizontal=True, key="suite-choice")
    try:
        if choice == SUITES[0]:
            return load_suite("offline")
        if choice == SUITES[1]:
            suite = load_suite("standard")
            if not hub_reachable():
                st.warning(
                    "**The Hugging Face hub is unreachable** (HF_HUB_OFFLINE=1, or no answer "
                    f"within 3 s): {', '.join(suite.task_names)} cannot be downloaded here. "
                    "Use the bundled offline suite, or run where the hub is reachable.",
                    icon=":material/cloud_off:",
                )
            return suite
        if choice == SUITES[2]:
            path = st.text_input("Suite YAML path", key="suite-path")
            return load_suite(path) if path.strip() else None
        text = st.text_area("Suite YAML", key="suite-text", height=160)
        if not text.strip():
            return None
        folder = jobs.jobs_root() / "suites"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"pasted-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
        path.write_text(text, encoding="utf-8")
        return load_suite(str(path))
    except BadInputError as exc:
        components.show_error(exc)
        return None


KINDS = ("Full suite", "Quick check", "Evaluate the base twice")
KIND_HELP = (
    "Quick check: runs a chosen share of each task's items in looks and stops once the "
    "budget's verdict is settled (needs the base's full eval). Evaluate the base twice: "
    "re-runs a base with another batch size and seed and stores base-vs-base flips as the "
    "harness's noise floor; no change inside it is called significant."
)


def pick_kind(source: str | None) -> str:
    """The job's mode: full, quick or repeat-base (the base twice: base models only)."""
    kinds = KINDS if source in (None, SOURCES[0]) else KINDS[:2]
    kind = st.radio("Kind of eval", kinds, horizontal=True, key="eval-kind", help=KIND_HELP)
    return {KINDS[0]: "full", KINDS[1]: "quick", KINDS[2]: "repeat-base"}[kind]


def options(suite: Suite | None, mode: str = "full") -> dict:
    """lm-eval options; code execution and remote code stay off unless ticked."""
    cols = st.columns(5)
    opts = {
        "num_fewshot": cols[0].number_input("n-shot", min_value=0, value=None, key="nshot"),
        "limit": None
        if mode == "quick"
        else cols[1].number_input("Limit per task", min_value=1, value=20, key="limit"),
        "batch_size": cols[2].number_input("Batch size", min_value=1, value=16, key="batch"),
        "device": cols[3].selectbox("Device", DEVICES, key="device"),
        "dtype": cols[4].selectbox("dtype", DTYPES, key="dtype"),
    }
    code = targets.code_tasks(suite) if suite else []
    opts["allow_code_exec"] = st.checkbox(
        "Allow code execution (runs model-written code in the sandbox)",
        value=False,
        key="allow-code",
        help="Needed for " + ", ".join(code) if code else "This suite executes no code.",
    )
    if code and not opts["allow_code_exec"]:
        st.caption(f"This suite's {', '.join(code)} execute model-written code: tick to run it.")
    opts["trust_remote_code"] = st.checkbox(
        "Trust remote code (lets the model's own Python run)", value=False, key="trust-remote"
    )
    opts["mode"] = mode
    if mode == "repeat-base":
        opts |= partials.repeat_settings(int(opts["batch_size"]))
        st.caption(
            f"The base runs again with batch size {opts['batch_size']} and seed "
            f"{opts['seed']}; its flips against the base's full eval become the noise floor."
        )
    return opts


def partial_results() -> None:
    """The noise floors measured so far and the latest quick checks' outcomes."""
    if not settings.db_path().exists():
        return
    data = components.page_data()
    bases = candidates.loc[candidates["kind"] == "base", "model_id"].tolist()
    try:
        floors = data.load_or_raise(review_partial.noise_floor_view, bases)
        checks = data.load_or_raise(review_partial.quick_check_view)
    except ForgetwatchError as exc:
        components.show_error(exc)
        return
    st.subheader("Noise floor and quick checks")
    if floors.empty:
        st.caption("No noise floor yet: choose **Evaluate the base twice** on a base model.")
    else:
        st.dataframe(floors, hide_index=True, key="noise-floor")
    if not checks.empty:
        st.dataframe(checks, hide_index=True, key="quick-checks")


def submit(choice: tuple[str, str | None, str], suite: Suite, opts: dict) -> None:
    model, adapter, label = choice
    try:
        auth.require_operator("launch evals")  # in the server: a crafted click is refused too
        if model.startswith("models:/"):
            name, version = model.removeprefix("models:/").rsplit("/", 1)
            model = targets.resolve_registered(name, version)
        spec = targets.prepare(
            model, suite, adapter=adapter, label=label, hub_ok=hub_reachable(), **opts
        )
        job_id = jobs.submit(spec, launched_by=auth.launcher())
    except ForgetwatchError as exc:
        components.show_error(exc)
        return
    st.success(
        f"Job `{job_id}` submitted: {escape_markdown(label)} on {escape_markdown(suite.name)}.",
        icon=":material/send:",
    )


def _elapsed(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


@st.fragment(run_every="2s")
def jobs_panel() -> None:
    """Re-read jobs every 2 s: progress of active ones, a table of all, the chosen log tail."""
    st.subheader("Jobs")
    try:
        all_jobs = jobs.list_jobs()
    except ForgetwatchError as exc:
        components.show_error(exc)
        return
    if not all_jobs:
        st.caption("No jobs yet. Results of finished jobs appear on the Runs and Compare pages.")
        return
    for job in (j for j in all_jobs if j.status in jobs.ACTIVE):
        bar, button = st.columns([6, 1], vertical_alignment="bottom")
        bar.progress(
            min(max(job.progress, 0.0), 1.0),
            text=f"**{escape_markdown(job.spec.label)}** · {job.status}: {job.stage} · "
            f"{_elapsed(job.elapsed_s)}",
        )
        # A callback runs before the next render, so that render already lists it as cancelled.
        if auth.can_operate():
            button.button(
                "Cancel",
                key=f"cancel-{job.job_id}",
                icon=":material/cancel:",
                on_click=auth.operator_callback("cancel evals", jobs.cancel),
                args=(job.job_id,),
            )
    table = pd.DataFrame(
        {
            "Job": [j.job_id for j in all_jobs],
            "Model": [j.spec.label for j in all_jobs],
            "Suite": [j.spec.suite.rsplit("/", 1)[-1] for j in all_jobs],
            "Status": [j.status for j in all_jobs],
            "Progress": [j.progress for j in all_jobs],
            "Elapsed": [_elapsed(j.elapsed_s) for j in all_jobs],
            "Error": [(j.error or "").split("\n", 1)[0] for j in all_jobs],
            "Launched by": [j.launched_by or "" for j in all_jobs],
            "Backend": [j.backend for j in all_jobs],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        key="jobs-table",
        column_config={"Progress": st.column_config.ProgressColumn(min_value=0, max_value=1)},
    )
    if any(j.status == "succeeded" for j in all_jobs):
        st.page_link("views/compare.py", label="See results on Compare", icon=":material/link:")
    shown = st.selectbox("Log of job", [j.job_id for j in all_jobs], key="log-job")
    job = next(j for j in all_jobs if j.job_id == shown)
    if job.error:
        st.error(job.error.split("\n\nLog tail:", 1)[0], icon=":material/error:")
    st.code(job.log_tail() or "(no output yet)", language=None)


st.title("Evals")
st.caption(
    "Evaluate a model on a suite in a background job. It keeps running if you leave or "
    f"reload this page; results are ingested into `{settings.db_path()}` when it succeeds."
)
if settings.get("job_backend").strip().lower() == "ray":
    where = settings.get("ray_address") or "RAY_ADDRESS (unset)"
    st.caption(f"Jobs run on the Ray cluster at `{where}` (FORGETWATCH_JOB_BACKEND=ray).")
try:
    candidates = targets.candidates()
except ForgetwatchError as exc:
    components.show_error(exc)
    st.stop()
if not auth.can_operate():  # viewers see jobs and results, never the launch form
    auth.viewer_note("launch or cancel evals")
else:
    choice = pick_model(candidates)
    chosen_suite = pick_suite()
    chosen_opts = options(chosen_suite, pick_kind(st.session_state.get("source")))
    ready = choice is not None and chosen_suite is not None
    icon = ":material/play_arrow:"
    if st.button("Run", type="primary", icon=icon, disabled=not ready, key="run"):
        assert choice is not None and chosen_suite is not None
        submit(choice, chosen_suite, chosen_opts)
jobs_panel()
partial_results()
