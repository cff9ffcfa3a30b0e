"""MoE expert analysis: routing statistics, behaviour experts (fTRI), and exact expert
ablation / forcing with explicit renormalisation policies (spec: methods.md §3, MoTE).

```python
import interp
from interp import moe

model = interp.load_model("zoo-moe")
cap = moe.capture_routing(model, prompts)                 # router probs + routed weights, per prompt
moe.expert_table(cap, labels)                              # counts / router weights per class, layer, expert
scores = moe.score_experts(cap, moe.refused(model, prompts))
top = moe.top_experts(scores, 2)
with moe.ablate(model, top, policy="renormalize"):         # or "refill", "zero_output"
    ...
with moe.force(model, top):
    ...
moe.random_control(model, n=2, seeds=(0, 1, 2), exclude=top)
```
"""

from interp.moe.capture import RoutingCapture, capture_routing
from interp.moe.experts import STATISTICS, prompt_rates, refused, replies, score_experts, score_matrix, top_experts
from interp.moe.interventions import POLICIES, ablate, force, random_control
from interp.moe.routing import ROUTED_WEIGHTS, ROUTER_LOGITS, NotMoEError, check_experts, routed, shape
from interp.moe.stats import coactivation, expert_table, layer_table, token_table

__all__ = ["POLICIES", "ROUTED_WEIGHTS", "ROUTER_LOGITS", "STATISTICS", "NotMoEError", "RoutingCapture",
           "ablate", "capture_routing", "check_experts", "coactivation", "expert_table", "force", "layer_table",
           "prompt_rates", "random_control", "refused", "replies", "routed", "score_experts", "score_matrix", "shape",
           "token_table", "top_experts"]
