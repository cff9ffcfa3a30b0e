"""Behaviour tasks with known ground truth, used by the zoo, every method and the tests.
Each task generates its prompts and owns its metric.

* `ioi` — indirect-object identification, clean/corrupt pairs; `ioi.ioi_scores` (accuracy,
  logit difference).
* `refusal` — harmful / benign / jailbreak-wrapped chat requests; `refusal.refusal_rate`
  (the refusal judge on greedy replies: exact for the zoo).
* `chat` — the refusal task's prompt format and judge for one model: `chat.chat_format(model)`
  uses its tokenizer's chat template when it has one, the zoo's "User: ...\nAssistant:" otherwise.
* `prose` — held-out prose paragraphs; `prose.prose_ce` (next-token cross-entropy).
* `topics` — colour, animal and number words in prose, labelled.
* `tokens` — which task words a tokenizer keeps as one token: IOI and topics take
  `tokenizer=model` and draw only from those (the zoo's tokenizer keeps them all).
"""

from interp.tasks import chat, ioi, prose, refusal, tokens, topics
from interp.tasks.base import SPLITS
from interp.tasks.chat import ChatFormat, chat_format

__all__ = ["chat", "ioi", "prose", "refusal", "tokens", "topics", "SPLITS", "ChatFormat", "chat_format"]
