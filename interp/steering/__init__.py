"""Activation steering: directions, a `steer` context manager that patches the residual
stream during plain forward passes and generation and records where it did, learned
controllers ("Guiding Giants", arXiv 2505.20309), and an evaluation harness.

    from interp.steering import Direction, Steering, steer
    d = Direction.from_sae_latent(sae, latent_index)      # unit decoder row, provenance recorded
    d = Direction.mean_difference(model, prompts_a, prompts_b, layer=2, position="last")
    spec = Steering(direction=d, layers=[2], coefficients=4.0, positions="all")   # or one coefficient per layer
    with steer(model, spec) as trace:        # hooks always removed on exit, even on exceptions
        replies = interp.generation.greedy(model, prompts, max_new_tokens=8)
    trace.to_frame()                         # DataFrame: forward, layer, position, role, delta_norm_mean, ...

    config = ControllerConfig.for_zoo(model.cfg.d_model, model.cfg.n_layers)   # alpha 2, "max", cap 4
    result = train_controller(model, d, harmful_prompts, benign_prompts, config)      # plain harmful vs benign
    with steer(model, ControllerSteering(result.controller, mode="paper")) as trace:
        replies = interp.generation.greedy(model, prompts, max_new_tokens=8)
    trace.last_output.scale                  # the controller's s for the last batch
    evaluate_steering(model, {"controller": ControllerSteering(result.controller)})   # refusal / perplexity / IOI table
    sweep(model, d, [[2], [3]], [4.0, 8.0], {"controller": ControllerSteering(result.controller)})

`Steering` and `ControllerSteering` are steering plans: immutable values (one can steer
nested contexts or several models at once) that declare their layers, positions and
read-outs and compute their coefficients from those read-outs; each `steer` context keeps
its own state (`interp.steering.apply` says how, and how to write another plan).

Layer l means the residual stream at `blocks.{l}.hook_{site}` (site "resid_post" by
default: the output of block l, as a Hugging Face hidden state). Positions: "last_prompt",
"prompt", "generated" (every position that predicts a generated token, so the first
generated token is steered), "last", "all", or explicit token positions.
"""

from interp.steering.apply import (POSITIONS, Coefficients, ReadInfo, ReadOuts, Steering, SteeringPlan, SteeringTrace,
                                   steer)
from interp.steering.controller import ControllerConfig, ControllerOutput, ControllerSteering, SteeringController
from interp.steering.directions import Direction
from interp.steering.evaluate import (EvalConfig, auroc, controller_auroc, evaluate_steering, pareto_figure,
                                     score_summary, sweep)
from interp.steering.train import (ControllerTrainConfig, ControllerTrainResult, RefusalRecipe, train_controller,
                                   train_from_recipe)

__all__ = ["Direction", "Steering", "SteeringTrace", "steer", "POSITIONS", "SteeringPlan", "ReadOuts", "ReadInfo",
           "Coefficients", "ControllerConfig", "ControllerOutput", "ControllerSteering", "SteeringController",
           "ControllerTrainConfig", "ControllerTrainResult", "RefusalRecipe", "train_controller", "train_from_recipe",
           "EvalConfig", "evaluate_steering", "sweep", "pareto_figure", "auroc", "controller_auroc", "score_summary"]
