"""Evals: pick a model and a suite, run it as a background job, watch it, cancel it.

Jobs are detached processes (``forgetwatch.evals.jobs``), so this page only submits and
reads: the jobs panel is a fragment that re-reads the jobs table and each
job's progress file every 2 s, and a reload (or a new browser) finds running
jobs again. Finished jobs' results are ingested by the job itself, so Runs and
Compare show them on their next render.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import streamlit as st

from forgetwatch import identity, settings
from forgetwatch.dashboard import auth, components
from forgetwatch.errors import BadInputError, ForgetwatchError
from forgetwatch.evals import job_log, jobs, partials, targets
from forgetwatch.evals.targets import DEVICES, DTYPES
from forgetwatch.exports.escaping import escape_markdown
from forgetwatch.review import eval_form
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


class Choice(NamedTuple):
    """What to evaluate, and the ``models`` key its earlier evals are found under."""

    model: str
    adapter: str | None
    label: str
    model_id: str | None = None  # None: not known before Run (a registered model, empty input)
    base_hint: str | None = None  # a hand-typed LoRA's base, whose evals it compares with


def pick_model(models: pd.DataFrame) -> Choice | None:
    """The chosen model; registered models resolve only when Run is clicked."""
    source = st.radio("What to evaluate", SOURCES, horizontal=True, key="source")
    if source in KIND_OF_SOURCE:
        rows = models[models["kind"] == KIND_OF_SOURCE[source]]
        if rows.empty:
            st.info("The database has no such models yet: sync MLflow runs first.")
            return None
        labels = dict(zip(rows["model_id"], rows["label"], strict=True))
        shown = labels
        if source == SOURCES[2]:  # checkpoints: say which already have an eval
            marks = dict(zip(rows["model_id"], rows["evaluated"].fillna(False), strict=True))
            shown = {m: eval_form.picker_label(str(t), bool(marks[m])) for m, t in labels.items()}
        # Keyed by model_id: labels (run names, path tails) can repeat.
        chosen = st.selectbox("Model", list(labels), format_func=shown.get, key="model-pick")
        row = rows[rows["model_id"] == chosen].iloc[0]
        adapter = row["adapter_path"] if isinstance(row["adapter_path"], str) else None
        return Choice(str(row["path"]), adapter, str(labels[chosen]), str(chosen))
    if source == "Registered MLflow model":
        left, right = st.columns([3, 1])
        name = left.text_input("Registered model name", key="reg-name")
        version = right.text_input("Version", value="1", key="reg-version")
        return Choice(f"models:/{name}/{version}", None, f"{name} v{version}")
    if source == "Local folder or hub id":
        ref = st.text_input(
            "Model folder or hub id", placeholder="/path/to/model or org/name", key="local-ref"
        )
        known = identity.model_id(ref) if ref.strip() else None
        return Choice(ref, None, ref.rstrip("/").rsplit("/", 1)[-1], known)
    base = st.text_input("Base model folder or hub id", key="lora-base")
    adapter = st.text_input("Adapter folder (with adapter_config.json)", key="lora-adapter")
    label = f"{adapter.rstrip('/').rsplit('/', 1)[-1]} (LoRA)"
    if not (base.strip() and adapter.strip()):
        return Choice(base, adapter, label)
    return Choice(base, adapter, label, identity.model_id(base, adapter), identity.model_id(base))


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


def past_settings(choice: Choice | None, suite: Suite | None) -> eval_form.PastSettings | None:
    """How the chosen model's base (else the model) was evaluated on this suite's tasks."""
    if choice is None or suite is None or not choice.model_id or not settings.db_path().exists():
        return None
    try:
        return components.page_data().load_or_raise(
            eval_form.past_settings, choice.model_id, tuple(suite.task_names), choice.base_hint
        )
    except ForgetwatchError as exc:
        components.show_error(exc)
        return None


def seed_defaults(suite: Suite | None, start: eval_form.FormDefaults) -> None:
    """Put the comparable limit / n-shot into the form when they change with the model or suite.

    Written to session state before the widgets exist (their key alone is their
    identity, so a new ``value=`` would be ignored). A value the user typed stays
    while the defaults stay the same (another checkpoint of the same base), and
    when there are none (no earlier evals).
    """
    key = (str(suite.path) if suite else None, start.limit, start.num_fewshot, start.note)
    changed = st.session_state.get("form-defaults-for") != key
    st.session_state["form-defaults-for"] = key
    for widget, value in (("limit", start.limit), ("nshot", start.num_fewshot)):
        # A widget not drawn in the last run (the quick check hides the limit) lost its state.
        if widget not in st.session_state or (changed and start.note):
            st.session_state[widget] = value


def options(suite: Suite | None, mode: str = "full") -> dict:
    """lm-eval options; code execution and remote code stay off unless ticked (or allowed)."""
    cols = st.columns(5)
    opts = {
        "num_fewshot": cols[0].number_input(
            "n-shot", min_value=0, value=None, key="nshot", placeholder="task's own"
        ),
        "limit": None
        if mode == "quick"
        else cols[1].number_input(
            "Limit per task", min_value=1, value=None, key="limit", placeholder="all items"
        ),
        "batch_size": cols[2].number_input("Batch size", min_value=1, value=16, key="batch"),
        "device": cols[3].selectbox("Device", DEVICES, key="device"),
        "dtype": cols[4].selectbox("dtype", DTYPES, key="dtype"),
    }
    code = targets.code_tasks(suite) if suite else []
    opts["allow_code_exec"] = st.checkbox(
        "Allow code execution (runs model-written code in the sandbox)",
        value=settings.code_exec_allowed(),  # FORGETWATCH_ALLOW_CODE_EXEC=1: allowed here
        key="allow-code",
        help="Needed for " + ", ".join(code) if code else "This suite executes no code.",
    )
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


def launch_form(models: pd.DataFrame) -> None:
    """Model, suite, kind and options; Run stays off, with the reason, until it can launch."""
    choice = pick_model(models)
    suite = pick_suite()
    mode = pick_kind(st.session_state.get("source"))
    past = past_settings(choice, suite)
    limits = targets.suite_limits(suite) if suite else {}
    shots = targets.task_fewshot_defaults(suite) if suite else {}
    start = eval_form.defaults(past, limits, shots)
    seed_defaults(suite, start)
    opts = options(suite, mode)
    if start.note:
        st.caption(start.note)
    mismatch = eval_form.mismatch_warning(
        past, limits, shots, limit=opts["limit"], num_fewshot=opts["num_fewshot"],
        check_limit=mode != "quick",
    )  # fmt: skip
    if mismatch:
        st.warning(mismatch, icon=":material/compare_arrows:")
    blocked = eval_form.code_blocked(targets.code_tasks(suite) if suite else [],
                                     bool(opts["allow_code_exec"]))  # fmt: skip
    if blocked:
        st.warning(blocked, icon=":material/lock:")
    ready = choice is not None and suite is not None and not blocked
    icon = ":material/play_arrow:"
    if st.button("Run", type="primary", icon=icon, disabled=not ready, key="run"):
        assert choice is not None and suite is not None
        submit(choice, suite, opts)


def submit(choice: Choice, suite: Suite, opts: dict) -> None:
    model, adapter, label = choice.model, choice.adapter, choice.label
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
    show_log(job)


def _whole_log(path: Path) -> bytes:
    """The full log file, read only when the download is clicked."""
    try:
        return path.read_bytes()
    except OSError:
        return b""


def show_log(job: jobs.Job) -> None:
    """The log without lm-eval's noise; the raw tail and the whole file one click away."""
    log = job_log.quiet_tail(job.log_path, jobs.LOG_TAIL_CHARS)
    raw = job.log_tail()
    note = eval_form.log_note(log.hidden, log.collapsed)
    if note:
        st.caption(note)
    shown = log.text or ("(nothing but notices so far)" if raw else "(no output yet)")
    st.code(shown, language=None, wrap_lines=True)  # short now: every line readable whole
    if not raw:
        return
    with st.expander("Raw log", icon=":material/notes:"):
        st.code(raw, language=None)
        st.download_button(
            "Download the full log",
            data=functools.partial(_whole_log, job.log_path),
            file_name=f"{job.job_id}.log",
            mime="text/plain",
            on_click="ignore",
            icon=":material/download:",
            key=f"log-download-{job.job_id}",
        )


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
    launch_form(candidates)
jobs_panel()
partial_results()
