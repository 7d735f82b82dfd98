"""Fine-tune the demo base model on the target task with the HF ``Trainer``, logged to MLflow.

Each fine-tune is a real MLflow run made by the Trainer's own ``MLflowCallback``
(``report_to=["mlflow"]``), exactly as a user's training job would log it:
params include ``output_dir`` and ``_name_or_path`` (the base model), metrics
include ``loss`` per step, and ``checkpoint-N`` folders land in ``output_dir``.
We open the run ourselves only to set its name, experiment and the tags
``base_model`` and ``method`` the collectors read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from forgetwatch.settings import temporary_env

COMPLETE_MARKER = ".forgetwatch-complete"


@dataclass(frozen=True)
class FinetunePlan:
    """One fine-tune run; lr, epochs and full-vs-LoRA are what drive forgetting."""

    name: str
    method: str  # "full" or "lora"
    lr: float
    epochs: int
    save_steps: int
    lora_r: int = 8
    batch_size: int = 16
    seed: int = 0
    # Data replay: pretraining documents mixed into the fine-tune set, per target document
    # (0 = target data only). Rehearsing what the base knew is the standard remedy for
    # forgetting; the demo's passing run uses it.
    replay: float = 0.0
    # Refusal-aware tuning: abstentions ("unknown.") on this many fresh countries join the
    # fine-tune set, so learning new facts does not teach the model to answer everything.
    abstain: int = 0


class _StepProgress(TrainerCallback):
    def __init__(self, report: Callable[[int, int], None]) -> None:
        self.report = report

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self.report(state.global_step, state.max_steps)


def _model(base_dir: Path, plan: FinetunePlan):  # noqa: ANN202 - a GPT2 or a PeftModel
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    if plan.method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=plan.lora_r,
        lora_alpha=2 * plan.lora_r,
        target_modules=["c_attn", "c_proj", "c_fc"],
        fan_in_fan_out=True,  # GPT-2 uses Conv1D layers with transposed weights
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def finished_run_exists(tracking_uri: str, experiment: str, run_name: str) -> bool:
    """True if the store already has a FINISHED run of this name (so the stage can be reused)."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return False
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"attributes.run_name = '{run_name}' and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return bool(runs)


def delete_unfinished_runs(tracking_uri: str, experiment: str, run_name: str) -> None:
    """Remove runs of this name left RUNNING/FAILED by an interrupted build."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"attributes.run_name = '{run_name}' and attributes.status != 'FINISHED'",
    )
    for run in runs:
        client.delete_run(run.info.run_id)


def finetune(
    base_dir: Path,
    texts: list[str],
    plan: FinetunePlan,
    output_dir: Path,
    *,
    tracking_uri: str,
    experiment: str,
    progress: Callable[[int, int], None],
) -> None:
    """Train one run into ``output_dir`` (checkpoints + final model or adapter)."""
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    data = Dataset.from_dict(
        {"input_ids": [tokenizer(t)["input_ids"] + [tokenizer.eos_token_id] for t in texts]}
    )
    args = TrainingArguments(
        output_dir=str(output_dir),
        run_name=plan.name,
        learning_rate=plan.lr,
        num_train_epochs=plan.epochs,
        per_device_train_batch_size=plan.batch_size,
        save_steps=plan.save_steps,
        save_only_model=True,
        logging_steps=5,
        report_to=["mlflow"],
        use_cpu=True,
        seed=plan.seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    model = _model(base_dir, plan)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data,
        # pad != EOS (see tinymodel), so masking pad in the labels still teaches EOS
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        callbacks=[_StepProgress(progress)],
    )
    # disable_tqdm swaps in a callback that prints every log dict; our bar is enough.
    trainer.remove_callback(PrinterCallback)
    tags = {"base_model": str(base_dir.resolve()), "method": plan.method}
    if plan.replay:
        tags["data_replay"] = f"{plan.replay:g} pretraining docs per target doc"
    # The Trainer's MLflowCallback reads these: point it at our store for this run only.
    with temporary_env(MLFLOW_TRACKING_URI=tracking_uri, MLFLOW_EXPERIMENT_NAME=experiment):
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment(experiment)
        with mlflow.start_run(run_name=plan.name, tags=tags):
            trainer.train()
            trainer.save_model(str(output_dir))  # full model, or only the LoRA adapter
            tokenizer.save_pretrained(output_dir)
    (output_dir / COMPLETE_MARKER).write_text(plan.name, encoding="utf-8")
