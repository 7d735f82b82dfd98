"""Models evaluated without an MLflow run: how their base is found, paired, and used.

The quick world's real lm-eval outputs (a base model, a full fine-tune with its
checkpoints, and a LoRA adapter) are ingested into a database that never saw
MLflow, as a team that trains with another tracker would. Then every face works
on them: the CLI (`pair`, `check --base`, `export --models`, `ingest --base`)
and the pages (Models and runs, the model page with its base picker, Compare,
Flips). A live lm-eval run of an adapter folder takes its base from
``adapter_config.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from forgetwatch import db, queries
from forgetwatch.cli import main
from forgetwatch.collectors import lm_eval_results
from forgetwatch.collectors.linking import relink_models
from forgetwatch.collectors.model_files import base_hint
from forgetwatch.demo.build import World
from forgetwatch.identity import model_id
from forgetwatch.review import run as run_review
from forgetwatch.review import runs as runs_review
from forgetwatch.suite import load_suite

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
FIXTURES = Path(__file__).parent / "fixtures" / "lm_eval" / "0.4.13" / "plain"


@pytest.fixture(scope="session")
def evals_only_db(tmp_path_factory: pytest.TempPathFactory, quick_world: World) -> Path:
    """The quick world's lm-eval outputs, ingested with no MLflow sync at all."""
    path = tmp_path_factory.mktemp("evals-only") / "forgetwatch.duckdb"
    report = lm_eval_results.ingest([quick_world.eval_dir], path, suite=load_suite("offline"))
    assert report.ok and report.inserted >= 3, report.summary()
    return path


@pytest.fixture
def fresh_db(evals_only_db: Path, tmp_path: Path) -> Path:
    """A copy each test may pair and unpair in."""
    path = tmp_path / "forgetwatch.duckdb"
    shutil.copy(evals_only_db, path)
    return path


def _world_models(world: World) -> dict[str, str]:
    """Model ids of the base, the full fine-tune's final model and the LoRA adapter."""
    base = str(world.base_model_dir)
    full = next(d for d in world.run_dirs if "full" in d.name)
    lora = next(d for d in world.run_dirs if "lora" in d.name)
    return {"base": model_id(base), "full": model_id(str(full)), "lora": model_id(base, str(lora))}


def _rows(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with db.connect(path, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _base(path: Path, model: str) -> tuple:
    return _rows(path, "SELECT base_model_id, base_source FROM models WHERE model_id = ?", [model])[
        0
    ]


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- the rules, on real files ---------------------------------------------------------


def test_base_rules_read_the_files_transformers_and_peft_write(tmp_path: Path) -> None:
    from peft import LoraConfig
    from transformers import GPT2Config

    adapter = tmp_path / "adapter"
    LoraConfig(base_model_name_or_path="/models/base", r=4).save_pretrained(str(adapter))
    found = base_hint(str(adapter), None, "/models/other")
    assert found is not None and (found.base_model_id, found.source) == (
        "/models/base",
        "adapter_config.json",
    )
    # Older transformers versions wrote the from_pretrained argument as _name_or_path.
    finetune = tmp_path / "finetune"
    finetune.mkdir()
    config = GPT2Config(n_layer=1).to_dict() | {"_name_or_path": "gpt2"}
    (finetune / "config.json").write_text(json.dumps(config))
    found = base_hint(str(finetune), None, "/models/other")
    assert found is not None and (found.base_model_id, found.source) == ("gpt2", "config.json")
    # A config naming the model itself says nothing; the --metadata tag applies then.
    (finetune / "config.json").write_text(json.dumps(config | {"_name_or_path": str(finetune)}))
    found = base_hint(str(finetune), None, "/models/other")
    assert found is not None and (found.base_model_id, found.source) == (
        "/models/other",
        "metadata",
    )
    assert base_hint(str(finetune), None, None) is None
    # peft= beside pretrained=: the linking step records pretrained= itself.
    assert base_hint("/models/base", str(adapter), "/models/other") is None


# --- without MLflow -------------------------------------------------------------------


def test_without_mlflow_models_are_rows_and_an_adapter_takes_its_peft_base(
    evals_only_db: Path, quick_world: World
) -> None:
    ids = _world_models(quick_world)
    assert _rows(evals_only_db, "SELECT count(*) FROM runs") == [(0,)]
    assert _base(evals_only_db, ids["lora"]) == (ids["base"], "peft")
    # transformers 5 writes no _name_or_path, and nothing else names the full fine-tune's base.
    assert _base(evals_only_db, ids["full"]) == (None, None)
    with db.connect(evals_only_db, read_only=True) as con:
        overview = runs_review.runs_overview(con, page_size=None)
    frame = overview.view.frame
    assert frame["run_id"].isna().all()
    assert set(overview.row_models) >= {ids["full"], ids["lora"]}
    assert ids["base"] not in overview.row_models  # a base shows as the rows' base
    lora_row = overview.row_models.index(ids["lora"])
    assert frame.iloc[lora_row]["base_model"] == ids["base"]
    assert frame.iloc[lora_row]["target_gain"] == frame.iloc[lora_row]["target_gain"]  # not NaN


def test_cli_pairs_checks_and_exports_models_without_runs(
    capsys: pytest.CaptureFixture[str], fresh_db: Path, quick_world: World, tmp_path: Path
) -> None:
    ids = _world_models(quick_world)
    db_arg = ("--db", str(fresh_db))
    code, _, err = _cli(capsys, "check", ids["full"], *db_arg)
    assert code == 2 and "No base model is recorded" in err and "--base" in err
    code, out, err = _cli(capsys, "check", ids["full"], "--base", str(quick_world.base_model_dir),
                          *db_arg)  # fmt: skip
    assert code in (0, 1), err
    assert out.startswith("### forgetwatch check:") and "target" in out
    assert f"paired 1 model(s) with base {ids['base']}" in err
    assert _base(fresh_db, ids["full"]) == (ids["base"], "user")
    analysed = _rows(fresh_db, "SELECT count(*) FROM task_tests WHERE model_id = ?", [ids["full"]])
    assert analysed[0][0] > 0
    report = tmp_path / "review.md"
    code, out, err = _cli(
        capsys, "export", "--models", ids["full"], ids["lora"], "--base", ids["base"],
        "--out", str(report), *db_arg,
    )  # fmt: skip
    assert code == 0, err
    text = report.read_text()
    for name in (Path(ids["full"]).name, Path(ids["lora"].split("+peft=")[1]).name):
        assert name in text
    code, out, _ = _cli(capsys, "pair", ids["full"], "--clear", *db_arg)
    assert code == 0 and "cleared" in out
    assert _base(fresh_db, ids["full"]) == (None, None)


def test_a_hand_pairing_wins_over_the_peft_base_and_clearing_restores_it(
    capsys: pytest.CaptureFixture[str], fresh_db: Path, quick_world: World
) -> None:
    ids = _world_models(quick_world)
    code, _, err = _cli(capsys, "pair", ids["lora"], "--base", ids["full"], "--db", str(fresh_db))
    assert code == 0, err
    assert _base(fresh_db, ids["lora"]) == (ids["full"], "user")
    assert _rows(fresh_db, "SELECT base_model_id FROM analysis_state WHERE model_id = ?",
                 [ids["lora"]]) == [(ids["full"],)]  # fmt: skip
    _cli(capsys, "pair", ids["lora"], "--clear", "--db", str(fresh_db))
    assert _base(fresh_db, ids["lora"]) == (ids["base"], "peft")


def test_ingest_base_pairs_every_model_of_the_folders(
    capsys: pytest.CaptureFixture[str], quick_world: World, tmp_path: Path
) -> None:
    ids = _world_models(quick_world)
    path = tmp_path / "fw.duckdb"
    code, out, err = _cli(capsys, "ingest", str(quick_world.eval_dir), "--base",
                          str(quick_world.base_model_dir), "--db", str(path))  # fmt: skip
    assert code == 0, err
    assert "paired" in out
    sources = dict(_rows(path, "SELECT model_id, base_source FROM models WHERE base_model_id = ?",
                         [ids["base"]]))  # fmt: skip
    assert sources[ids["full"]] == "user" and sources[ids["lora"]] == "user"
    assert ids["base"] not in sources


def test_ingest_with_an_unknown_base_stores_the_evals_and_says_how_to_pair(
    capsys: pytest.CaptureFixture[str], quick_world: World, tmp_path: Path
) -> None:
    path = tmp_path / "fw.duckdb"
    code, _, err = _cli(capsys, "ingest", str(quick_world.eval_dir), "--base", "/no/such/base",
                        "--db", str(path))  # fmt: skip
    assert code == 2 and "Traceback" not in err
    assert "No run or model named '/no/such/base'" in err and "forgetwatch pair" in err
    assert _rows(path, "SELECT count(*) > 0 FROM evals") == [(True,)]


@pytest.mark.parametrize(
    "args, message",
    [
        (("pair", "{full}", "--base", "{full}"), "Cannot pair"),
        (("pair", "{full}", "--base", "/no/such/model"), "No run or model named"),
        (("pair", "/no/such/model", "--base", "{base}"), "No run or model named"),
        (("pair", "{base}", "--base", "{lora}"), "already has"),
        (("check", "{full}"), "No base model is recorded"),
        (("export", "--models", "nothing-like-it", "--out", "x.md"), "No run or model named"),
        (("pair", "{full}"), "one of the arguments --base --clear is required"),
    ],
)
def test_models_without_a_base_never_crash(
    capsys: pytest.CaptureFixture[str], fresh_db: Path, quick_world: World, tmp_path: Path,
    args: tuple[str, ...], message: str,
) -> None:  # fmt: skip
    ids = _world_models(quick_world)
    argv = [a.format(**ids) for a in args]
    os.chdir(tmp_path)
    try:
        code = main([*argv, "--db", str(fresh_db)])
    except SystemExit as exc:  # argparse's own usage error
        code = int(exc.code or 0)
    _, err = capsys.readouterr()
    assert code == 2 and message in err and "Traceback" not in err


def test_flips_count_questions_not_metrics_without_a_suite(tmp_path: Path) -> None:
    """A task scored on two filters (or metrics) counts each question once, not twice."""
    from forgetwatch.queries import flips

    base_dir = tmp_path / "base"
    path = tmp_path / "fw.duckdb"
    report = lm_eval_results.ingest([FIXTURES, _eval_of(base_dir, tmp_path)], path)  # no suite
    assert report.ok, report.summary()
    model = model_id(next(iter(json.loads(next(FIXTURES.glob("*/results_*.json")).read_text())
                                ["config"]["model_args"].values())))  # fmt: skip
    with db.connect(path, read_only=True) as con:
        counts = flips.flip_counts(con, model, model_id(str(base_dir)))
        kinds = dict(con.execute(
            """SELECT s.task, count(DISTINCT (s.metric, s.filter)) FROM samples s
               JOIN evals e USING (eval_id) WHERE e.model_id = ? GROUP BY 1""", [model],
        ).fetchall())  # fmt: skip
        docs = dict(con.execute(
            """SELECT s.task, count(DISTINCT s.doc_id) FROM samples s JOIN evals e USING (eval_id)
               WHERE e.model_id = ? AND s.value IN (0, 1) GROUP BY 1""", [model],
        ).fetchall())  # fmt: skip
    assert kinds["fx_gen"] == 2  # exact_match under two filters
    assert counts["task"].is_unique
    assert dict(zip(counts["task"], counts["n_pairs"], strict=True)) == docs


# --- pages ----------------------------------------------------------------------------


def _page(monkeypatch: pytest.MonkeyPatch, path: Path, page: str, **query: str | list[str]):
    monkeypatch.setenv("FORGETWATCH_DB", str(path))
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params.update(query)
    if page != "views/runs.py":
        at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    parts = [*at.markdown, *at.info, *at.caption, *at.success, *at.subheader, *at.warning]
    return "\n".join(str(p.value) for p in parts)


def test_pages_list_pair_and_compare_models_without_runs(
    monkeypatch: pytest.MonkeyPatch, fresh_db: Path, quick_world: World
) -> None:
    ids = _world_models(quick_world)
    runs = _page(monkeypatch, fresh_db, "views/runs.py")
    assert [t.value for t in runs.title] == ["Models and runs"]
    names = set(runs.dataframe[0].value["run_name"])
    assert {Path(ids["full"]).name} <= {n.split("/")[-1] for n in names}

    page = _page(monkeypatch, fresh_db, "views/run.py", model=ids["full"])
    assert "No base model is recorded for this model" in _texts(page)
    page.selectbox(key="model-base-base").set_value(ids["base"]).run()
    page.button(key="model-base-save").click().run()
    assert not page.exception, [e.value for e in page.exception]
    shown = _texts(page)
    assert "Saved: paired 1 model(s)" in shown and "paired by hand" in shown
    assert [m.label for m in page.metric][:1] == ["Target gain"]
    # The pick is stored: a new session (another user, a reload) sees it.
    again = _page(monkeypatch, fresh_db, "views/run.py", model=ids["full"])
    assert "paired by hand" in _texts(again) and again.metric

    compare = _page(monkeypatch, fresh_db, "views/compare.py", models=[ids["full"], ids["lora"]])
    table = compare.dataframe[0].value
    assert set(table["model_id"]) == {ids["full"], ids["lora"]}
    flips = _page(monkeypatch, fresh_db, "views/flips.py", model=ids["full"])
    assert "No base to compare" not in "\n".join(str(i.value) for i in flips.info)


# --- a live eval of an adapter folder ---------------------------------------------------


def test_a_lora_adapter_eval_takes_its_base_from_adapter_config(
    quick_world: World, tmp_path: Path
) -> None:
    """pretrained=<folder with an embedded adapter>: the adapter's config names the base.

    lm-eval's hf backend reads the folder's config.json first (AutoConfig rejects a bare
    adapter folder), so the folder holds the base's config and weights next to the
    adapter: transformers' "local model with an embedded adapter" layout, which it
    loads as the base plus the adapter.
    """
    from forgetwatch.evals.runner import ModelSpec, run_suite

    lora = next(d for d in quick_world.run_dirs if "lora" in d.name)
    adapter = tmp_path / "adapter"
    shutil.copytree(lora, adapter, ignore=shutil.ignore_patterns("checkpoint-*"))
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"]
    for name in ("config.json", "model.safetensors"):
        shutil.copy(quick_world.base_model_dir / name, adapter / name)
    suite = load_suite("offline")
    quick = replace(suite, tasks=[t for t in suite.tasks if t.capability == "target"][:1])
    out = run_suite([ModelSpec(str(adapter))], quick, tmp_path / "out", limit=4)
    path = tmp_path / "fw.duckdb"
    report = lm_eval_results.ingest([quick_world.eval_dir, *out], path, suite=suite)
    assert report.ok, report.summary()
    expected = model_id(config["base_model_name_or_path"])
    assert _base(path, model_id(str(adapter))) == (expected, "adapter_config.json")
    assert expected == model_id(str(quick_world.base_model_dir))
    # The folder was evaluated as the fine-tune, not as the bare base: its answers are the
    # LoRA eval's (pretrained=base, peft=adapter) on the same documents.
    answers = """SELECT s.doc_id, s.value FROM samples s JOIN evals e USING (eval_id)
                 WHERE e.model_id = ? AND s.task = ? AND s.metric = 'acc' AND s.doc_id < 4
                 ORDER BY 1"""
    task = quick.tasks[0].task
    ids = _world_models(quick_world)
    assert _rows(path, answers, [model_id(str(adapter)), task]) == _rows(
        path, answers, [ids["lora"], task]
    )


# --- two runs, one output folder ----------------------------------------------------------


def _eval_of(folder: Path, tmp_path: Path) -> Path:
    """A real lm-eval output folder whose model_args name ``folder``."""
    source = next(FIXTURES.iterdir())
    copy = tmp_path / "evals" / folder.name
    shutil.copytree(source, copy)
    results = next(copy.glob("results_*.json"))
    data = json.loads(results.read_text())
    data["config"]["model_args"]["pretrained"] = str(folder)
    data["model_name"] = str(folder)
    results.write_text(json.dumps(data))
    return copy


def _add_run(path: Path, run_id: str, output_dir: Path, start: str, end: str) -> None:
    with db.connect(path) as con, db.transaction(con):
        con.execute(
            "INSERT INTO runs (run_id, run_name, base_model, output_dir, method, start_time, "
            "end_time) VALUES (?, ?, '/models/base', ?, 'full', ?, ?)",
            [run_id, run_id, str(output_dir), start, end],
        )
        relink_models(con)


@pytest.mark.parametrize(
    "saved, linked, why",
    [("2026-01-01 12:00", "run-first", "the one running"), ("2026-03-01", "run-rerun", "newest")],
)
def test_two_runs_sharing_an_output_dir_link_by_the_model_files_time(
    tmp_path: Path, saved: str, linked: str, why: str
) -> None:
    output = tmp_path / "out"
    output.mkdir()
    weights = output / "model.safetensors"
    weights.write_bytes(b"")  # only its modification time is read
    stamp = datetime.fromisoformat(saved).replace(tzinfo=UTC).timestamp()  # runs' times are UTC
    os.utime(weights, (stamp, stamp))
    path = tmp_path / "fw.duckdb"
    assert lm_eval_results.ingest([_eval_of(output, tmp_path)], path).ok
    _add_run(path, "run-first", output, "2026-01-01 10:00", "2026-01-01 14:00")
    _add_run(path, "run-rerun", output, "2026-02-01 10:00", "2026-02-01 14:00")
    assert _rows(path, "SELECT run_id, link_note FROM models WHERE model_id = ?",
                 [model_id(str(output))])[0][0] == linked  # fmt: skip
    other = "run-rerun" if linked == "run-first" else "run-first"
    with db.connect(path, read_only=True) as con:
        notes = run_review.link_notes(con, linked)
        assert queries.run_link_notes(con, other) == []
    assert len(notes) == 1 and "2 runs share the output folder" in notes[0] and why in notes[0]
