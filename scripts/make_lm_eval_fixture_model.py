"""Build the untrained tiny GPT-2 that the committed lm-eval fixtures were produced with.

The fixtures only need real lm-eval output structure, so the model is never
trained: a BPE tokenizer fitted on the fixture data, random weights, and a
small chat template so ``--apply_chat_template`` works.

    python scripts/make_lm_eval_fixture_model.py OUT_DIR DATA_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from forgetwatch.demo.tinymodel import ModelShape, new_model, train_tokenizer  # noqa: E402

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def main(out_dir: Path, data_dir: Path) -> None:
    texts = [line for f in sorted(data_dir.glob("*.jsonl")) for line in f.read_text().splitlines()]
    texts += [json.dumps(json.loads(t)) for t in texts]
    tokenizer = train_tokenizer(texts, 512)
    tokenizer.chat_template = CHAT_TEMPLATE
    model = new_model(tokenizer, ModelShape(vocab_size=512, n_embd=32, n_layer=1, n_head=2), 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    # Loadable by transformers 4.x too (lm-eval 0.4.5): it reads the chat template only
    # from tokenizer_config.json and knows no TokenizersBackend class.
    config_file = out_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["chat_template"] = CHAT_TEMPLATE
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_file.write_text(json.dumps(config, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
