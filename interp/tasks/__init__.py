"""Behaviour tasks with known ground truth, used by the zoo, every method and the tests.
Each task generates its prompts and owns its metric.

* `ioi` — indirect-object identification, clean/corrupt pairs; `ioi.ioi_scores` (accuracy,
  logit difference).
* `refusal` — harmful / benign / jailbreak-wrapped chat requests; `refusal.refusal_rate`
  (the exact refusal judge on greedy replies).
* `prose` — held-out prose paragraphs; `prose.prose_ce` (next-token cross-entropy).
* `topics` — colour, animal and number words in prose, labelled.
"""

from interp.tasks import ioi, prose, refusal, topics
from interp.tasks.base import SPLITS

__all__ = ["ioi", "prose", "refusal", "topics", "SPLITS"]
