"""Build profiles: how much pretraining, which fine-tunes, how many eval docs.

``full`` is the README demo (a few minutes on 2 CPU cores) and reproduces the
trade-offs measured in NOTES: a gentle run that learns little and forgets
little, stronger full fine-tunes that learn the new facts and forget more, LoRA
in between, and one run that gains and keeps: data replay plus abstention
examples, the standard remedies, pass the demo's budget. ``quick`` is the test
suite's world: smaller, but still real training with a full and a LoRA run that
both change the scores. Each profile evaluates the checkpoints of one full
fine-tune (3 in ``full``, 2 in ``quick``).
"""

from __future__ import annotations

from dataclasses import dataclass

from forgetwatch.demo.tinymodel import PretrainPlan
from forgetwatch.demo.training import FinetunePlan
from forgetwatch.errors import BadInputError


@dataclass(frozen=True)
class Profile:
    name: str
    pretrain: PretrainPlan
    finetunes: list[FinetunePlan]
    eval_limit: int | None  # docs per task (None: all; the suite may cap a task further)
    # The fine-tune whose checkpoint-N folders are evaluated too, so the Run page has
    # checkpoint curves (each checkpoint costs one eval, so only one run's).
    checkpoint_run: str | None = None


PROFILES: dict[str, Profile] = {
    "full": Profile(
        "full",
        PretrainPlan(steps=1200, batch_size=48),
        [
            FinetunePlan("ft-full-lr1e-4-e2", "full", lr=1e-4, epochs=2, save_steps=5),
            FinetunePlan("ft-full-lr1e-3-e60", "full", lr=1e-3, epochs=60, save_steps=140),
            FinetunePlan("ft-full-lr3e-3-e50", "full", lr=3e-3, epochs=50, save_steps=100),
            FinetunePlan("ft-lora-r8-lr3e-3-e50", "lora", lr=3e-3, epochs=50, save_steps=100),
            # The one that passes: the same lr as the forgetful e60 run, but with data
            # replay (8 pretraining documents per target document, in the pretraining
            # mix) and abstentions on 60 fresh countries, so it learns the new facts
            # without unlearning the old skills or when to say "unknown.".
            FinetunePlan(
                "ft-full-replay-lr1e-3-e30",
                "full",
                lr=1e-3,
                epochs=30,
                save_steps=100_000,
                replay=8.0,
                abstain=60,
            ),  # fmt: skip
        ],
        eval_limit=None,
        checkpoint_run="ft-full-lr1e-3-e60",
    ),
    "quick": Profile(
        "quick",
        PretrainPlan(steps=400, batch_size=32),
        [
            FinetunePlan("ft-full-lr3e-3-e40", "full", lr=3e-3, epochs=40, save_steps=100),
            FinetunePlan("ft-lora-r8-lr3e-3-e20", "lora", lr=3e-3, epochs=20, save_steps=50),
        ],
        eval_limit=30,
        checkpoint_run="ft-full-lr3e-3-e40",
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise BadInputError(
            f"Unknown demo profile {name!r}", "use one of: " + ", ".join(PROFILES), where="profile"
        )
    return PROFILES[name]
