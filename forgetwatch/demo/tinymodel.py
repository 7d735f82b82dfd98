"""Build and pretrain the demo's base model: a tiny GPT-2 with its own BPE tokenizer.

The result is a plain Hugging Face folder (``AutoModelForCausalLM`` +
``AutoTokenizer``), so ``lm_eval --model hf --model_args pretrained=DIR`` works
on it like on any hub model. Pretraining uses a small hand-written loop (not the
``Trainer``) because it is not one of the tracked runs and the loop is faster.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

EOS = "<|endoftext|>"
PAD = "<|pad|>"  # not EOS: a collator that masks pad would otherwise never teach EOS


@dataclass(frozen=True)
class ModelShape:
    """Sizes of the tiny GPT-2; n_positions must hold context + lm-eval's max_gen_toks."""

    vocab_size: int = 1024
    n_embd: int = 128
    n_layer: int = 2
    n_head: int = 4
    n_positions: int = 256


@dataclass(frozen=True)
class PretrainPlan:
    steps: int
    batch_size: int
    lr: float = 3e-3
    warmup: int = 50
    seed: int = 0


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on ``texts`` only, wrapped as a HF fast tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,  # its progress bar writes to stdout and panics on a closed pipe
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=PAD, unk_token=None
    )


def new_model(tokenizer: PreTrainedTokenizerFast, shape: ModelShape, seed: int) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 whose special ids match the tokenizer (not 50256)."""
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=shape.n_embd,
        n_layer=shape.n_layer,
        n_head=shape.n_head,
        n_positions=shape.n_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def pretrain(
    model: GPT2LMHeadModel,
    tokenizer: PreTrainedTokenizerFast,
    docs_by_skill: dict[str, list[str]],
    plan: PretrainPlan,
    progress: Callable[[int, int], None],
) -> None:
    """Causal-LM training on documents sampled evenly across skills, each ending in EOS."""
    rng = random.Random(plan.seed)
    encoded = {
        skill: [tokenizer(d)["input_ids"] + [tokenizer.eos_token_id] for d in docs]
        for skill, docs in docs_by_skill.items()
    }
    skills = sorted(encoded)
    opt = torch.optim.AdamW(model.parameters(), lr=plan.lr, weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < plan.warmup:
            return (step + 1) / plan.warmup
        frac = (step - plan.warmup) / max(1, plan.steps - plan.warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    for step in range(plan.steps):
        batch = [rng.choice(encoded[rng.choice(skills)]) for _ in range(plan.batch_size)]
        width = max(len(x) for x in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, x in enumerate(batch):
            ids[i, : len(x)] = torch.tensor(x)
            mask[i, : len(x)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        progress(step + 1, plan.steps)
    model.eval()


def build_base_model(
    out_dir: Path,
    docs_by_skill: dict[str, list[str]],
    plan: PretrainPlan,
    progress: Callable[[int, int], None],
    shape: ModelShape | None = None,
) -> None:
    """Train tokenizer + model and save both into ``out_dir`` (a fresh folder)."""
    shape = shape or ModelShape()
    texts = [d for docs in docs_by_skill.values() for d in docs]
    tokenizer = train_tokenizer(texts, shape.vocab_size)
    model = new_model(tokenizer, shape, plan.seed)
    pretrain(model, tokenizer, docs_by_skill, plan, progress)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
