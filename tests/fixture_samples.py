"""Per-sample outcomes added to the known world (tests/fixture_db.py) for flip tests.

``fixture_db`` logs one sample (doc 0, right) per eval and task. This adds docs
for the base (``e-base``) and the full fine-tune's final eval (``e-full-new``)
whose flips are known exactly (doc 0 pairs as right -> right in every task):

==================  ===============  =======  ==============  ==============
task                capability       n_pairs  right_to_wrong  wrong_to_right
==================  ===============  =======  ==============  ==============
facts_new           target           5        0               4
facts_old           knowledge        7        3               1
arith               knowledge        3        0               0
arith_carry         knowledge        2        1               0   (subtask of arith)
code_small          code             1        0               0
instruct            instructions     1        0               0
unknowns            hallucination    3        2               0
==================  ===============  =======  ==============  ==============

Non-primary metrics, continuous values and a doc whose hash changed must not count.

facts_old doc 5 is a multiple-choice question with its choices stored
(``CHOICES``): the base picks the right one, Estrow, with probability 0.62, the
fine-tune Zorbia with 0.70.
"""

from __future__ import annotations

import math
from pathlib import Path

from forgetwatch import db
from tests.fixture_db import analyse

BASE_EVAL, FULL_EVAL = "e-base", "e-full-new"

# (task, metric, filter, doc_id, target, base value, base response, full value, full response)
ROWS = [
    ("facts_new", "acc", "none", 1, "Vorland", 0, "Unknown", 1, "Vorland"),
    ("facts_new", "acc", "none", 2, "Quill", 0, "Unknown", 1, "Quill"),
    ("facts_new", "acc", "none", 3, "Brask", 0, "Unknown", 1, "Brask"),
    ("facts_new", "acc", "none", 4, "Tamsin", 0, "Unknown", 1, "Tamsin"),
    ("facts_old", "acc", "none", 1, "Ardent", 1, "Ardent", 1, "Ardent"),
    ("facts_old", "acc", "none", 2, "Belmor", 1, "Belmor", 1, "Belmor"),
    ("facts_old", "acc", "none", 3, "Corvel", 1, "Corvel", 0, "Atlantis"),
    ("facts_old", "acc", "none", 4, "Dunmere", 1, "Dunmere", 0, "Atlantis"),
    ("facts_old", "acc", "none", 5, "Estrow", 1, "Estrow", 0, "Zorbia"),
    ("facts_old", "acc", "none", 6, "Fenwick", 0, "Gorse", 1, "Fenwick"),
    # A non-primary metric flipping: must not count.
    ("facts_old", "acc_norm", "none", 1, "Ardent", 1, "Ardent", 0, "Atlantis"),
    ("arith", "acc", "none", 1, "7", 1, "7", 1, "7"),
    ("arith", "acc", "none", 2, "9", 1, "9", 1, "9"),
    ("arith_carry", "acc", "none", 1, "12", 1, "12", 0, "13"),
    ("arith_carry", "acc", "none", 2, "15", 1, "15", 1, "15"),
    ("unknowns", "acc", "none", 1, "unknown", 1, "unknown", 0, "Paris"),
    ("unknowns", "acc", "none", 2, "unknown", 1, "unknown", 0, "Lyon"),
    # Continuous per-sample score (mc2-like): never a flip.
    ("unknowns", "acc", "none", 3, "unknown", 0.9, "unknown", 0.2, "Nice"),
]
# facts_old doc 5 as lm-eval logs a multiple-choice doc: choices, gold index, and each
# eval's per-choice loglikelihoods (their softmax: the probabilities written here).
CHOICE_DOC = ("facts_old", 5)
CHOICES = ["Estrow", "Zorbia", "Quill"]
CHOICE_PROBS = {BASE_EVAL: [0.62, 0.28, 0.10], FULL_EVAL: [0.20, 0.70, 0.10]}
# Doc 7 of facts_old was edited between the evals (hashes differ): not a pair.
CHANGED_DOC = ("facts_old", "acc", "none", 7, "Galt", 1, "Galt", 0, "Hobb")


def add_flip_samples(path: Path) -> Path:
    """Append the rows above to the known world at ``path`` and return it."""
    with db.connect(path) as con, db.transaction(con):
        for task, metric, filt, doc, target, bv, bresp, fv, fresp in [*ROWS, CHANGED_DOC]:
            changed = (task, doc) == (CHANGED_DOC[0], CHANGED_DOC[3])
            for eval_id, value, response in ((BASE_EVAL, bv, bresp), (FULL_EVAL, fv, fresp)):
                doc_hash = f"{task}-{doc}" + ("-v2" if changed and eval_id == FULL_EVAL else "")
                con.execute(
                    """INSERT INTO samples (eval_id, task, doc_id, filter, metric, value, target,
                           response, doc_hash, prompt_hash, target_hash)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    [eval_id, task, doc, filt, metric, value, target, response, doc_hash,
                     f"p-{task}-{doc}", f"t-{task}-{doc}"],
                )  # fmt: skip
        for eval_id, probs in CHOICE_PROBS.items():
            lls = [math.log(p) - 3.0 for p in probs]  # any shift: the softmax is the same
            con.execute(
                "INSERT INTO sample_choices VALUES (?, ?, ?, 'none', ?, ?, 0)",
                [eval_id, *CHOICE_DOC, CHOICES, lls],
            )
    analyse(path)
    return path
