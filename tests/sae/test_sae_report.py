import pandas as pd

from interp.sae.report import claims


def _metrics(dead_mc, kl_g, afa_l0, afa_nmse):
    rows = []
    for k in (16, 64):
        rows += [dict(sae=f"topk-k{k}", variant="topk", k=k, mode="plain", l0=k, nmse=0.2, dead_fraction=0.1,
                      kl=0.1, ce_delta=0.2),
                 dict(sae=f"mc-k{k}", variant="mutual_choice", k=k, mode="plain", l0=k, nmse=0.2,
                      dead_fraction=dead_mc, kl=0.1, ce_delta=0.2),
                 dict(sae=f"g-k{k}[grad]", variant="gradient", k=k, mode="grad", l0=k, nmse=0.2, dead_fraction=0.1,
                      kl=kl_g, ce_delta=kl_g)]
    rows.append(dict(sae="afa", variant="top_afa", k=32, mode="plain", l0=afa_l0, nmse=afa_nmse, dead_fraction=0,
                     kl=0.1, ce_delta=0.2))
    return pd.DataFrame(rows).set_index("sae")


def test_claim_verdicts_follow_the_numbers():
    good = [v for _, v, _ in claims(_metrics(dead_mc=0.0, kl_g=0.05, afa_l0=60, afa_nmse=0.21))]
    assert good == ["reproduced", "reproduced", "reproduced"]
    bad = [v for _, v, _ in claims(_metrics(dead_mc=0.5, kl_g=0.5, afa_l0=62, afa_nmse=0.5))]
    assert bad == ["NOT reproduced"] * 3
    low = claims(_metrics(dead_mc=0.0, kl_g=0.05, afa_l0=15, afa_nmse=0.5))[2]
    assert low[1] == "not testable here" and "low level" in low[2]
