"""Behaviour tasks with known ground truth, used by the zoo, every method and the tests.

* `ioi` — indirect-object identification, clean/corrupt pairs and a logit-difference metric.
* `refusal` — harmful / benign / jailbreak-wrapped chat requests and the exact refusal judge.
* `topics` — colour, animal and number words in prose, labelled.
"""

from interp.tasks import ioi, refusal, topics
from interp.tasks.base import SPLITS

__all__ = ["ioi", "refusal", "topics", "SPLITS"]
