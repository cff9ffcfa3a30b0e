"""`FeatureDashboard(sae, model, store)`: page through an SAE's latents inside a notebook.

For the chosen latent: its density and maximum, the top-activating store contexts with
per-token highlighting, contexts sampled from activation quantiles, the activation histogram,
the top +/- logit effects, its nearest latents by decoder cosine (buttons that open them) and
where its density sits in the density histogram of all the SAE's latents; `export_html` writes
that page as one standalone file. A text box shows which latents fire on each token of a text
the user types; a search box finds latents by a token or a text; a coefficient slider steers
greedy generation with the latent and shows the steered beside the unsteered continuation.

Everything shown comes from `interp.sae.features`, `interp.widgets.latent_page` (nearest
latents, the unit of steering, the export) and `interp.steering` for steering. The
store index is built once when the dashboard is made; each latent's view is computed on first
visit and cached, so paging back and forth never recomputes anything.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from interp.generation import greedy
from interp.sae import features
from interp.widgets import latent_page
from interp.widgets.tokens_html import highlight, reply_html, token_label, value_badge
from interp.widgets.work import LatestRequest, model_lock

DEFAULT_TEXT = "When Mary and John went to the store, John gave a drink to"
BUSY = "<span class='interp-busy'>\u23f3 generating\u2026</span>"
DEFAULT_PROMPT = "User: I need to clean the garden fence. How do I do it?\nAssistant:"


@dataclass(frozen=True)
class LatentView:
    """Everything the dashboard shows for one latent, as `interp.sae.features` returns it."""

    summary: pd.Series
    """The latent's row of `StoreIndex.summary()`: density, max_activation, mean_activation."""
    top: features.Contexts
    quantiles: list[features.QuantileSample]
    histogram: pd.DataFrame
    logits: pd.DataFrame
    nearest: pd.DataFrame
    """`features.nearest_latents`: latent, cosine of the decoder rows, most similar first."""
    unit: float
    """Residual-stream norm of one unit of activation (`features.residual_per_activation`)."""

    @property
    def steering_unit(self) -> float:
        """Residual-stream norm that a steering coefficient of 1 adds: the latent's decoder
        row at its maximum activation in the store (at activation 1 for a latent that never fired)."""
        return self.unit * (float(self.summary["max_activation"]) or 1.0)


class FeatureDashboard(widgets.VBox):
    """Explore the latents of `sae` (trained on `hook` of `model`) over an activation `store`.

    `hook`: the store hook the SAE reads (default: the store's only hook). `max_tokens`: index
    only the first tokens of the store. `latent`: shown first (default: the densest latent).
    `n_contexts`: top contexts shown; `n_quantiles` x `per_quantile`: quantile samples;
    `before`/`after`: tokens of context around each token; `n_nearest`: nearest latents shown;
    `max_new_tokens`: length of the steered continuation at most (it also ends at the
    end-of-text token). The steering slider spans +/- `coefficient_range` in units of the
    latent's maximum activation: coefficient c adds c times what the latent writes at its store
    maximum (its decoder row times that activation) at every position of the hook the SAE
    reads, through `interp.steering.steer`; for a transcoder (`target_hook`: the hook it
    predicts, e.g. blocks.2.hook_mlp_out; `hook`: the one it reads, which the store must
    hold) the row is added to that MLP output, i.e. to the residual stream after the block; on
    the zoo, 4-8 changes replies visibly and
    beyond ~10 they degrade. A continuation not yet generated shows a busy line at once and
    is generated on a worker thread (`background`, default: inside a Jupyter kernel), newest
    request first (`interp.widgets.work.LatestRequest`): moving the slider again while it runs
    never queues the older value, and an older result never replaces a newer one; `wait()`
    blocks until it is shown. Build the widget and make it the last expression of a cell.
    """

    def __init__(self, sae, model, store, *, hook: str | None = None, max_tokens: int | None = None,
                 latent: int | None = None, n_contexts: int = 8, n_quantiles: int = 4, per_quantile: int = 2,
                 before: int = 12, after: int = 3, text: str = DEFAULT_TEXT, prompt: str = DEFAULT_PROMPT,
                 max_new_tokens: int = 12, coefficient_range: float = 10.0, n_nearest: int = 8,
                 background: bool | None = None, target_hook: str | None = None):
        self.sae, self.model, self.store = sae, model, store
        self._model_lock = model_lock(model)  # one forward pass at a time, across every view of the model
        self.work = LatestRequest(background, self._model_lock)
        self.index = features.index_store(sae, store, hook=hook, max_tokens=max_tokens)
        self.hook = self.index.hook
        self.summary = self.index.summary()
        self.vocab = features.token_strings(model, range(model.cfg.d_vocab))
        self.options = dict(n_contexts=n_contexts, n_quantiles=n_quantiles, per_quantile=per_quantile,
                            before=before, after=after, n_nearest=n_nearest)
        self.max_new_tokens = max_new_tokens
        if sae.cfg.is_transcoder and target_hook is None:
            raise ValueError(f"a {sae.cfg.kind}'s latents write the hook it predicts: pass target_hook= (its "
                             "cfg.json's metadata.hook_name_out, e.g. blocks.2.hook_mlp_out)")
        self.target_hook = target_hook if sae.cfg.is_transcoder else None
        """A transcoder's predicted hook (its latents are read at `hook` and write here), else None."""
        self.steer_layer, self.steer_site = _residual_site(self.target_hook or self.hook)
        self._views: dict[int, LatentView] = {}
        self._text_cache: tuple[str, features.TextActivations] | None = None
        self._generated: dict[tuple[str, int, float, int], str] = {}
        n = self.index.n_latents
        if latent is None:
            latent = int(self.summary["density"].idxmax())

        # controls
        self.latent = widgets.BoundedIntText(value=latent, min=0, max=n - 1, description="latent",
                                             layout=widgets.Layout(width="180px"))
        self.previous = widgets.Button(description="\u25c0", layout=widgets.Layout(width="40px"),
                                       tooltip="previous latent")
        self.next = widgets.Button(description="\u25b6", layout=widgets.Layout(width="40px"), tooltip="next latent")
        self.search = widgets.Text(placeholder="search latents by a token or a text", continuous_update=False,
                                   layout=widgets.Layout(width="320px"))
        self.matches = widgets.Dropdown(options=[], description="matches", layout=widgets.Layout(width="300px"))
        self.search_note = widgets.HTML()
        self.match_links = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.text_links = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.eos = getattr(model.tokenizer, "eos_token", None)
        self.stats = widgets.HTML()
        self.contexts = widgets.HTML()
        self.quantiles = widgets.HTML()
        self.histogram = go.FigureWidget(
            data=[go.Bar(x=[], y=[], marker_color="darkorange", name="tokens",
                         hovertemplate="activation %{customdata[0]:.2f}\u2013%{customdata[1]:.2f}: "
                                       "%{y} tokens<extra></extra>")],
            layout=go.Layout(title=dict(text="activation histogram", **_TITLE), height=260, width=420, bargap=0.05,
                             margin=dict(l=40, r=40, t=40, b=30), modebar=_MODEBAR, xaxis_title="activation",
                             yaxis_title="tokens"))
        self.density = go.FigureWidget(latent_page.density_figure(self.summary, latent, self.index.n_tokens))
        self.nearest = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.logits = go.FigureWidget(
            data=[go.Bar(x=[], y=[], orientation="h", marker_color=colour, name=name, hovertemplate=_LOGIT_HOVER)
                  for colour, name in (("seagreen", "raises"), ("indianred", "lowers"))],
            layout=go.Layout(title=dict(text="logit effects (W_dec \u00b7 W_U)", **_TITLE), height=320, width=420,
                             showlegend=False, margin=dict(l=90, r=40, t=40, b=30), modebar=_MODEBAR,
                             xaxis_title="logit per unit activation"))
        self.text = widgets.Textarea(value=text, continuous_update=False, description="your text",
                                     layout=widgets.Layout(width="600px", height="60px"))
        self.text_view = widgets.HTML()
        self.prompt = widgets.Textarea(value=prompt, continuous_update=False, description="prompt",
                                       layout=widgets.Layout(width="600px", height="48px"))
        self.coefficient = widgets.FloatSlider(value=0.0, min=-coefficient_range, max=coefficient_range, step=0.5,
                                               description="× max act.", continuous_update=False,
                                               layout=widgets.Layout(width="500px"))
        self.coefficient_unit = widgets.HTML()
        self.steered = widgets.HTML()

        self.latent.observe(lambda change: self.show(change["new"]), names="value")
        self.previous.on_click(lambda _: self._step(-1))
        self.next.on_click(lambda _: self._step(+1))
        self.search.observe(lambda change: self.find(change["new"]), names="value")
        self.matches.observe(self._pick_match, names="value")
        self.text.observe(lambda _: self._render_text(), names="value")
        self.prompt.observe(lambda _: self._render_steering(), names="value")
        self.coefficient.observe(lambda _: self._render_steering(), names="value")

        def section(title: str) -> widgets.HTML:
            return widgets.HTML(f"<h4 style='margin: 8px 0 2px 0'>{title}</h4>")

        super().__init__([
            widgets.HBox([self.previous, self.latent, self.next, self.search, self.matches]),
            self.search_note, self.match_links,
            self.stats,
            widgets.HBox([section("nearest latents by decoder cosine:"), self.nearest]),
            widgets.HBox([widgets.VBox([section("top activations"), self.contexts,
                                        section("quantile samples"), self.quantiles],
                                       # the contexts take what the figures leave (their rows scroll
                                       # sideways): a fixed 60% beside 420 px figures overflowed a 1000 px output
                                       layout=widgets.Layout(flex="1 1 0%", min_width="0")),
                          widgets.VBox([self.histogram, self.logits, self.density],
                                       layout=widgets.Layout(flex="0 0 auto"))]),
            section("which latents fire on your text"), self.text, self.text_view, self.text_links,
            section("steer generation with this latent (greedy decoding: both runs are deterministic)"),
            self.prompt, self.coefficient, self.coefficient_unit, self.steered,
        ])
        self.add_class("interp-feature-dashboard")
        self.show(latent)

    # --- one latent ---------------------------------------------------------------------------
    def view(self, latent: int) -> LatentView:
        """Everything shown for `latent`, computed on its first visit and cached."""
        if latent not in self._views:
            o = self.options
            self._views[latent] = LatentView(
                summary=self.summary.loc[latent],
                top=features.top_contexts(self.index, self.store, latent, o["n_contexts"],
                                          before=o["before"], after=o["after"]),
                quantiles=features.quantile_contexts(self.index, self.store, latent, o["n_quantiles"],
                                                     o["per_quantile"], before=o["before"], after=o["after"]),
                histogram=features.activation_histogram(self.index, latent),
                logits=features.logit_effects(self.sae, self.model, latent, k=8),
                nearest=features.nearest_latents(self.sae, latent, o["n_nearest"]),
                unit=features.residual_per_activation(self.sae, latent),
            )
        return self._views[latent]

    def show(self, latent: int) -> None:
        """Display `latent` (also what setting `self.latent.value` does)."""
        if self.latent.value != latent:
            self.latent.value = latent  # re-enters show() through the observer
            return
        v = self.view(latent)
        s = v.summary
        self.stats.value = (f"<b>latent {latent}</b> &nbsp; density {s['density']:.3%} of "
                            f"{self.index.n_tokens:,} tokens &nbsp; max {s['max_activation']:.2f} &nbsp; "
                            f"mean when firing {s['mean_activation']:.2f}")
        top = v.top
        scale = float(s["max_activation"]) or 1.0
        self.contexts.value = self._contexts_html(top, scale) if len(top) else "<i>this latent never fired</i>"
        self.quantiles.value = "".join(
            f"<div style='color:#555'>activation {q.lower:.2f}\u2013{q.upper:.2f} ({q.fraction:.0%} of firings)</div>"
            + self._contexts_html(q.contexts, scale) for q in v.quantiles) or "<i>no samples</i>"
        with self.histogram.batch_update():
            _fill_histogram(self.histogram, v, latent)
        with self.logits.batch_update():
            _fill_logits(self.logits, v, latent)
        with self.density.batch_update():
            latent_page.mark_density(self.density, self.summary, latent)
        self.nearest.children = self._latent_links([int(x) for x in v.nearest["latent"]],
                                                   [f"decoder cosine {c:.2f}" for c in v.nearest["cosine"]])
        for button, cosine in zip(self.nearest.children, v.nearest["cosine"]):
            button.description = f"{button.description} ({cosine:.2f})"
        self.coefficient_unit.value = (
            f"<small>coefficient in units of latent {latent}'s maximum activation "
            f"({float(s['max_activation']):.2f}): 1 adds its decoder row at that activation, "
            f"{v.steering_unit:.2f} in residual-stream norm, at every position of "
            f"{html.escape(self.target_hook or self.hook)}</small>")
        self._render_text()
        self._render_steering()

    def export_html(self, path, latent: int | None = None):
        """Write `latent`'s page (default: the one shown) as a standalone HTML file at `path`
        (atomic; plotly inlined, so it opens offline): its statistics, nearest latents, top
        and quantile contexts, and its activation, logit-effect and density figures. Returns
        the path."""
        latent = int(self.latent.value if latent is None else latent)
        if not 0 <= latent < self.index.n_latents:
            raise ValueError(f"latent={latent} must be in [0, {self.index.n_latents}) for this SAE")
        v = self.view(latent)
        s = v.summary
        scale = float(s["max_activation"]) or 1.0
        hist, logits = go.Figure(self.histogram), go.Figure(self.logits)
        _fill_histogram(hist, v, latent)
        _fill_logits(logits, v, latent)
        density = latent_page.density_figure(self.summary, latent, self.index.n_tokens)
        nearest = ", ".join(f"{r.latent} (cosine {r.cosine:.2f})" for r in v.nearest.itertuples())
        stats = (f"density {s['density']:.3%} of {self.index.n_tokens:,} tokens of {html.escape(self.hook)}; "
                 f"max {s['max_activation']:.2f}; mean when firing {s['mean_activation']:.2f}")
        quantiles = "".join(
            f"<div style='color:#555'>activation {q.lower:.2f}\u2013{q.upper:.2f} ({q.fraction:.0%} of firings)</div>"
            + self._contexts_html(q.contexts, scale) for q in v.quantiles)
        page = latent_page.page_html(
            f"latent {latent}",
            [("statistics", f"<p>{stats}</p>"), ("nearest latents by decoder cosine", f"<p>{nearest}</p>"),
             ("top activations", self._contexts_html(v.top, scale) if len(v.top) else "<i>never fired</i>"),
             ("quantile samples", quantiles or "<i>no samples</i>")],
            [hist, logits, density])
        return latent_page.write_page(path, page)

    def _step(self, delta: int) -> None:
        self.latent.value = min(max(self.latent.value + delta, 0), self.index.n_latents - 1)

    def _contexts_html(self, contexts: features.Contexts, scale: float) -> str:
        rows = []
        for m in range(len(contexts)):
            ids, acts = contexts.tokens[m].tolist(), contexts.acts[m].tolist()
            keep = [j for j, t in enumerate(ids) if t >= 0]
            tokens = [self.vocab[ids[j]] for j in keep]
            values = [acts[j] for j in keep]
            rows.append(highlight(tokens, values, scale, emphasis=keep.index(contexts.centre),
                                  prefix=value_badge(float(contexts.value[m]))))
        return "".join(rows)

    # --- search ---------------------------------------------------------------------------------
    def find(self, query: str) -> None:
        """Fill the matches (list and links): latents firing most on `query` when it is one
        token of the vocabulary, typed with or without its leading space ("Mary" also finds
        " Mary"; `features.search_by_token` over the store, every spelling that occurs), else
        on the text `query` (`features.text_activations(...).latent_totals`). The note under
        the box says which of the two was searched and why."""
        if not query.strip():
            self.matches.options, self.search_note.value, self.match_links.children = [], "", ()
            return
        spellings = list(dict.fromkeys([query, query.strip(), " " + query.strip()]))
        tokens = {}
        for spelling in spellings:
            ids = self.model.to_tokens(spelling, prepend_bos=False)[0].tolist()
            if len(ids) == 1:
                tokens.setdefault(ids[0], spelling)
        if tokens:
            frames = [features.search_by_token(self.index, t, k=10).assign(token=s) for t, s in tokens.items()]
            found = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
            found = found.sort_values("mean_activation", ascending=False).drop_duplicates("latent").head(10)
            label = [f"latent {r.latent}: mean {r.mean_activation:.2f} on {token_label(r.token)} "
                     f"({r.n_occurrences} occurrences)" for r in found.itertuples()]
            counts = {s: int((self.index.tokens == t).sum()) for t, s in tokens.items()}
            self.search_note.value = "<small>token search: " + ", ".join(
                f"{html.escape(token_label(s))} occurs {n:,} times" for s, n in counts.items()) + \
                (" in the indexed store</small>" if any(counts.values()) else
                 " in the indexed store, so no latent can be found by it: try a text</small>")
            empty = "token never occurs" if not any(counts.values()) else "no latent fires on it"
        else:
            pieces = features.token_strings(self.model, self.model.to_tokens(query, prepend_bos=False)[0].tolist())
            with self._model_lock:
                found = features.text_activations(self.sae, self.model, query, self.hook).latent_totals(k=10)
            label = [f"latent {r.latent}: total {r.total:.2f}" for r in found.itertuples()]
            self.search_note.value = (f"<small>text search: {html.escape(repr(query))} is {len(pieces)} tokens ("
                                      f"{html.escape(' '.join(token_label(p) for p in pieces))}), not one: latents "
                                      "ranked by their total activation over the text</small>")
            empty = "no latent fires on the text"
        latents = [int(x) for x in found["latent"].tolist()]
        self.matches.options = list(zip(label, latents)) or [(empty, None)]
        self.matches.value = None
        self.match_links.children = self._latent_links(latents, [lab.split(": ", 1)[1] for lab in label])

    def _latent_links(self, latents: list[int], tips: list[str]) -> tuple[widgets.Button, ...]:
        """A button per latent id that opens it here (latent ids are links)."""
        buttons = []
        for latent, tip in zip(latents, tips):
            b = widgets.Button(description=str(latent), tooltip=f"open latent {latent}: {tip}",
                               layout=widgets.Layout(width="auto", min_width="48px"))
            b.add_class("interp-latent-link")
            b.on_click(lambda _, latent=latent: setattr(self.latent, "value", latent))
            buttons.append(b)
        return tuple(buttons)

    def _pick_match(self, change) -> None:
        if change["new"] is not None:
            self.latent.value = int(change["new"])

    # --- your text ------------------------------------------------------------------------------
    def text_activations(self) -> features.TextActivations | None:
        """The activations of the text box (cached per text); None for an empty box."""
        text = self.text.value
        if not text.strip():
            return None
        if self._text_cache is None or self._text_cache[0] != text:
            with self._model_lock:
                self._text_cache = (text, features.text_activations(self.sae, self.model, text, self.hook))
        return self._text_cache[1]

    def _render_text(self) -> None:
        result = self.text_activations()
        if result is None:
            self.text_view.value = "<i>type a text above</i>"
            self.text_links.children = ()
            return
        latent = self.latent.value
        top = result.top_latents(3)
        tips = {p: ", ".join(f"{r.latent}: {r.activation:.2f}" for r in rows.itertuples())
                for p, rows in top.groupby("position")}
        values = result.acts[:, latent].tolist()
        scale = float(self.summary.loc[latent, "max_activation"]) or 1.0
        line = highlight(result.tokens, values, scale,
                         titles=[f"latent {latent}: {v:.2f} | top latents {tips.get(p, '-')}"
                                 for p, v in enumerate(values)])
        table = "".join(f"<tr><td>{html.escape(token_label(result.tokens[p]))}</td>"
                        f"<td>{html.escape(tips.get(p, '-'))}</td></tr>"
                        for p in range(len(result.tokens)))
        totals = result.latent_totals(k=8)
        self.text_links.children = self._latent_links([int(x) for x in totals["latent"]],
                                                      [f"total {t:.1f} over the text" for t in totals["total"]])
        self.text_view.value = (
            f"<div>coloured by latent {latent} (hover a token for its top latents)</div>{line}"
            "<div>most active latents over the text (click one to open it):</div>"
            "<details><summary>top 3 latents of every token</summary>"
            "<table style='font-family: monospace; font-size: 90%'><tr><th>token</th><th>latent: activation</th></tr>"
            f"{table}</table></details>")

    # --- steering ---------------------------------------------------------------------------------
    def generate(self, coefficient: float, prompt: str | None = None, latent: int | None = None) -> tuple[str, str]:
        """(unsteered, steered) greedy continuations of `prompt` (default: the prompt box's),
        steering with `latent`'s (default: the shown latent's) decoder direction at every
        position of `steer_layer`, `coefficient` in units of the latent's max activation."""
        prompt = self.prompt.value if prompt is None else prompt
        latent = int(self.latent.value if latent is None else latent)
        with self._model_lock:  # never beside a continuation the controls started on a worker thread
            unsteered = self._generate(prompt, latent, 0.0)
            steered = unsteered if coefficient == 0 else self._generate(prompt, latent, coefficient)
        return unsteered, steered

    def residual_coefficient(self, latent: int, coefficient: float) -> float:
        """The residual-stream coefficient (norm of the patch along the latent's unit decoder
        direction) of a slider `coefficient` in units of `latent`'s maximum activation."""
        return coefficient * self.view(latent).steering_unit

    def _key(self, prompt: str, latent: int, coefficient: float) -> tuple[str, int, float, int]:
        """What a continuation depends on (the unsteered one on no latent)."""
        return prompt, -1 if coefficient == 0 else latent, coefficient, self.max_new_tokens

    def _generate(self, prompt: str, latent: int, coefficient: float) -> str:
        key = self._key(prompt, latent, coefficient)
        if key not in self._generated:
            if coefficient == 0:
                self._generated[key] = greedy(self.model, [prompt], self.max_new_tokens)[0]
            else:
                from interp.steering import Direction, Steering
                from interp.steering.apply import generate_steered

                spec = Steering(direction=Direction.from_sae_latent(self.sae, latent), layers=[self.steer_layer],
                                coefficients=self.residual_coefficient(latent, coefficient), positions="all",
                                site=self.steer_site)
                self._generated[key] = generate_steered(self.model, spec, [prompt], self.max_new_tokens)[0][0]
        return self._generated[key]

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the continuation last asked for is shown (at most `timeout` s); True if so."""
        return self.work.wait(timeout)

    def _render_steering(self) -> None:
        coefficient = float(self.coefficient.value)
        latent, prompt = int(self.latent.value), self.prompt.value
        if not prompt.strip():
            # through the worker too, so that a generation still running is not shown over this
            self.work.submit(lambda: None, lambda _: setattr(self.steered, "value", "<i>type a prompt above</i>"))
            return
        if not all(self._key(prompt, latent, c) in self._generated for c in {0.0, coefficient}):
            self.steered.value = BUSY  # at once; the controls stay live: a newer request replaces this one

        def show(replies: tuple[str, str]) -> None:
            unsteered, steered = replies
            self.steered.value = (
                "<table style='font-family: monospace'>"
                f"<tr><td><b>unsteered</b></td><td class='interp-unsteered'>{reply_html(unsteered, self.eos)}</td></tr>"
                f"<tr><td><b>latent {latent} \u00d7 {coefficient:g} max</b></td>"
                f"<td class='interp-steered'>{reply_html(steered, self.eos)}</td></tr></table>"
                "<small>continuations end at the end-of-text token (EOS)</small>")

        def fail(error: Exception) -> None:
            self.steered.value = f"<b style='color:#b00'>{html.escape(str(error))}</b>"
            if not isinstance(error, ValueError):  # not bad input but a bug: its traceback too
                raise error

        self.work.submit(lambda: self.generate(coefficient, prompt, latent), show, fail)


def _labels(rows) -> list[str]:
    return [token_label(t) for t in rows["token"]]


def _fill_histogram(fig, v: LatentView, latent: int) -> None:
    """Put `v`'s activation histogram into `fig` (the dashboard's figure or a copy of it)."""
    hist = v.histogram
    fig.data[0].x = ((hist["left"] + hist["right"]) / 2).tolist()
    fig.data[0].y = hist["count"].tolist()
    fig.data[0].customdata = hist[["left", "right"]].to_numpy().tolist()
    fig.layout.title.text = f"activation histogram of latent {latent}"


def _fill_logits(fig, v: LatentView, latent: int) -> None:
    """Put `v`'s top +/- logit effects into `fig`."""
    logits = v.logits
    up, down = logits[logits["sign"] == "+"], logits[logits["sign"] == "-"]
    fig.data[0].x, fig.data[0].y = up["effect"].tolist()[::-1], _labels(up)[::-1]
    fig.data[1].x, fig.data[1].y = down["effect"].tolist(), _labels(down)
    fig.layout.title.text = f"logit effects of latent {latent}"


_TITLE = dict(x=0.01, xanchor="left", font=dict(size=14))
_MODEBAR = dict(orientation="v")
"""Titles sit left, the modebar stands on the right edge (in the right margin): neither covers the other."""
_LOGIT_HOVER = "%{y}: %{x:+.3f} logit per unit activation<extra></extra>"


def _residual_site(hook: str) -> tuple[int, str]:
    """(layer, site) of the residual stream a latent's decoder row is added to: the residual
    hook an SAE reads (blocks.2.hook_resid_pre -> (2, "resid_pre")), or the residual hook a
    transcoder's target adds to (blocks.2.hook_mlp_out -> (2, "resid_post"))."""
    from interp.hooks import residual_equivalent

    found = residual_equivalent(hook)
    if found is None:
        raise ValueError(f"hook={hook!r}: steering with a latent needs an SAE on the residual stream "
                         "(blocks.L.hook_resid_pre / resid_mid / resid_post) or a transcoder predicting a block "
                         "output (blocks.L.hook_mlp_out / hook_attn_out)")
    return found