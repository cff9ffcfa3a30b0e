"""One module per SAE variant; `interp.sae.registry` maps their names to them."""
