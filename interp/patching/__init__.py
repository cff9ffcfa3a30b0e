"""Circuit discovery with one API: activation patching (exact), attribution patching (AtP),
relevance patching (RelP, LRP rules as hooks), integrated gradients; verification of any
approximate method against exact patching; faithfulness curves.

    from interp.patching import relevance_patching, verify
    scores = relevance_patching(model, clean_prompts, corrupt_prompts, metric)  # tidy DataFrame
    report = verify(scores, 20, model, clean_prompts, corrupt_prompts, metric)

Every method takes (model, clean, corrupt, metric, components, sae) and returns a DataFrame
with columns node, component, layer, position, head, unit, score, method.
"""

from interp.patching.attribution import attribution_patching, relevance_patching
from interp.patching.exact import activation_patching
from interp.patching.faithfulness import faithfulness, faithfulness_curve
from interp.patching.integrated_gradients import integrated_gradients
from interp.patching.maps import correlations, score_map
from interp.patching.metric import NormalisedLogitDiff, logit_diff
from interp.patching.nodes import COLUMNS, COMPONENTS, SAEHook, Site, parse_node, sites
from interp.patching.rules import Rules
from interp.patching.verify import Verification, verify

METHODS = {
    "ap": activation_patching,
    "atp": attribution_patching,
    "relp": relevance_patching,
    "ig": integrated_gradients,
}
"""Method name -> function; all share the signature (model, clean, corrupt, metric, components, sae)."""

__all__ = ["activation_patching", "attribution_patching", "relevance_patching", "integrated_gradients", "verify",
           "Verification", "faithfulness", "faithfulness_curve", "score_map", "correlations", "Rules", "SAEHook",
           "Site", "sites", "parse_node", "NormalisedLogitDiff", "logit_diff", "COLUMNS", "COMPONENTS", "METHODS"]
