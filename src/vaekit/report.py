"""One self-contained report.html per run, and the evaluation table the CLI prints.

The page embeds every picture as a base64 data URI and uses no scripts, fonts
or style sheets from elsewhere, so it opens offline and survives being mailed
or copied out of the run folder.
"""

from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path
from typing import Any

from vaekit.evaluation.result import EvalResult
from vaekit.files import write_atomic
from vaekit.runfolder import (
    INTERPOLATIONS,
    LATENT_MANIFOLD,
    LATENT_SCATTER,
    LOSS_CURVES,
    RECONSTRUCTIONS,
    SAMPLES,
    SAMPLES_CSV,
    RunFolder,
)

# The run's pictures in the order the page shows them, with what each one shows.
PICTURES = (
    (LOSS_CURVES, "Training and test loss per epoch, with the loss's two terms."),
    (
        LATENT_MANIFOLD,
        "Decoded images over a grid of latent values at evenly spaced prior quantiles "
        "(Kingma & Welling 2014, figure 4); with more than two latent dimensions, over the "
        "two whose posterior means vary most, the others at 0.",
    ),
    (
        LATENT_SCATTER,
        "Posterior means of the test images coloured by their label "
        "(first two principal components when the latent has more than two dimensions).",
    ),
    (
        INTERPOLATIONS,
        "Each row: a test image, decodes along the straight line between its posterior "
        "mean and another's, and the other test image.",
    ),
    (SAMPLES, "Images decoded from z ~ p(z) (the likelihood's means)."),
    (RECONSTRUCTIONS, "Test images (odd rows) above their reconstructions (even rows)."),
)


def _groups_note(sizes: list[int]) -> str:
    """Which dimensions belong to which latent group, for hierarchical models."""
    if len(sizes) < 2:
        return ""
    return "groups (top first) of " + " + ".join(str(n) for n in sizes) + " units"


def disentanglement_rows(result: EvalResult) -> list[tuple[str, str, str]]:
    """MIG, DCI and the FactorVAE score, for data with factor labels."""
    scores = result.disentanglement
    if scores is None:
        return []

    def per_factor(values: list[float]) -> str:
        return ", ".join(f"{name} {v:.2f}" for name, v in zip(scores.factors, values, strict=True))

    return [
        ("MIG (Chen et al. 2018)", f"{scores.mig:.3f}", per_factor(scores.mig_per_factor)),
        (
            "DCI disentanglement / completeness",
            f"{scores.dci_disentanglement:.3f} / {scores.dci_completeness:.3f}",
            "random-forest importances (Eastwood & Williams 2018)",
        ),
        (
            "DCI informativeness",
            f"{scores.dci_informativeness:.3f}",
            "held-out accuracy: " + per_factor(scores.dci_informativeness_per_factor),
        ),
        (
            "FactorVAE score (Kim & Mnih 2018)",
            f"{scores.factorvae_score:.3f}",
            f"{scores.factorvae_active_dims} active dimensions; "
            f"train votes {scores.factorvae_train_accuracy:.3f}",
        ),
    ]


def _code_rows(codes: dict | None) -> list[tuple[str, str, str]]:
    """A discrete-code model's codebook use and its bound's two parts in bits per dimension."""
    if not codes:
        return []
    return [
        (
            "codebook perplexity",
            f"{codes['perplexity']:.2f} of {codes['codebook_size']}",
            f"{100 * codes['code_usage']:.1f} % of the codes used on the test set",
        ),
        (
            "bits/dim: decoder + prior",
            f"{codes['recon_bits_per_dim']:.4f} + {codes['prior_bits_per_dim']:.4f}",
            f"= {codes['bits_per_dim']:.4f} (-log p(x|z_q) and the codes' -log p(z))",
        ),
    ]


def eval_rows(result: EvalResult) -> list[tuple[str, str, str]]:
    """(quantity, value, note) rows summarising an evaluation result."""
    elbo, iwae, latent = result.neg_elbo, result.iwae, result.latent
    kl_dims = latent.kl_per_dim
    shown = ", ".join(f"{v:.2f}" for v in kl_dims[:16]) + (" ..." if len(kl_dims) > 16 else "")
    rows = [
        ("-ELBO (1 sample of z)", f"{elbo.nats:.2f} nats", f"{elbo.bits_per_dim:.4f} bits/dim"),
        ("  reconstruction -log p(x|z)", f"{elbo.recon:.2f} nats", ""),
        ("  KL(q(z|x) || p(z))", f"{elbo.kl:.2f} nats", ""),
        (
            f"-log p(x), importance-weighted, k = {iwae.k}",
            f"{iwae.nll_nats:.2f} ± {iwae.stderr_nats:.2f} nats",
            f"{iwae.nll_bits_per_dim:.4f} bits/dim (± is the standard error over images)",
        ),
        (
            f"active units (Cov_x E[z_u|x] > {latent.active_threshold:g})",
            f"{latent.active_units} of {latent.dim}",
            _groups_note(latent.groups),
        ),
        ("KL per latent dimension", shown, "nats, test-set average"),
    ]
    if len(latent.groups) > 1:
        per_group = ", ".join(f"{v:.2f}" for v in latent.kl_per_group)
        rows.append(("KL per latent group (top first)", per_group, "nats, at the posterior means"))
    rows += _code_rows(result.extra.get("codes"))
    fid = result.fid
    if fid:
        rows.append(
            (
                fid.name,
                f"{fid.value:.2f}",
                f"{fid.generated} samples vs {fid.reference} test images; "
                f"train vs test scores {fid.floor_train_vs_test:.2f}; "
                f"classifier test accuracy {100 * fid.classifier_test_accuracy:.2f} %",
            )
        )
    rows += disentanglement_rows(result)
    timing = result.timing
    rows.append(
        (
            "evaluation time",
            f"{timing['total_seconds']:.1f} s",
            f"log p(x) {timing['iwae_seconds']:.1f} s, "
            f"{timing['images_x_k_per_second']:,.0f} images x k per second",
        )
    )
    return rows


def format_table(rows: list[tuple[str, str, str]]) -> str:
    """Rows as aligned plain text for the terminal."""
    first = max(len(r[0]) for r in rows)
    # Long values (a list of per-dimension KLs) overflow rather than widen every row.
    second = max((len(r[1]) for r in rows if len(r[1]) <= 24), default=0)
    return "\n".join(f"{a:<{first}}  {b:>{second}}  {c}".rstrip() for a, b, c in rows)


def _table(header: list[str], rows: list[list[str]], css_class: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _metrics_table(records: list[dict[str, Any]]) -> str:
    columns = [
        ("epoch", "epoch", "{}"),
        ("train_loss", "train loss", "{:.4f}"),
        ("test_loss", "test loss", "{:.4f}"),
        ("train_recon", "train recon", "{:.4f}"),
        ("train_kl", "train KL", "{:.4f}"),
        ("test_recon", "test recon", "{:.4f}"),
        ("test_kl", "test KL", "{:.4f}"),
        ("seconds", "seconds", "{:.2f}"),
    ]
    present = [c for c in columns if any(c[0] in r for r in records)]
    rows = [[fmt.format(r[key]) if key in r else "" for key, _, fmt in present] for r in records]
    return _table([title for _, title, _ in present], rows)


def _samples_table(path: Path, rows: int = 10) -> str:
    """A table run's first sampled rows (its pictures are rows, not images)."""
    with open(path, newline="") as handle:
        lines = list(csv.reader(handle))
    caption = (
        f"<p><b>{html.escape(path.name)}</b>: rows drawn from the model, x ~ p(x|z) with "
        f"z ~ p(z), in the data's own units and categories (the first {rows} of "
        f"{len(lines) - 1}).</p>"
    )
    return "<h2>Samples</h2>" + caption + _table(lines[0], lines[1 : rows + 1])


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'


_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, table.notes td:last-child { text-align: left; }
figure { margin: 2em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; margin-top: 0.4em; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


# The model sizes the page's first line shows, where the run's family has them.
MODEL_SIZES = (("latent", "latent_dim"), ("hidden", "hidden_dim"))


def render(run_dir: Path) -> str:
    """The page for a run folder, from whatever of its files exist."""
    folder = RunFolder(run_dir)
    config = folder.read_config()
    records = folder.read_metrics()
    parts = [f"<h1>vaekit run {html.escape(run_dir.resolve().name)}</h1>"]
    model, data = config.get("model", {}), config.get("data", {})
    sizes = "".join(f", {word} {model[key]}" for word, key in MODEL_SIZES if key in model)
    parts.append(
        "<p>"
        + html.escape(
            f"{model.get('name')} VAE{sizes}; {data.get('dataset')}, "
            f"binarize {data.get('binarize', 'none')}; "
            f"{len(records)} epoch(s)."
        )
        + "</p>"
    )
    result = folder.read_eval()
    parts.append("<h2>Evaluation on the test set</h2>")
    if result is not None:
        parts.append(
            "<p>"
            + html.escape(
                f"{result.images} test images, binarisation protocol "
                f"{result.binarize}, precision {result.config['precision']}, "
                f"seed {result.config['seed']}."
            )
            + "</p>"
        )
        rows = [list(r) for r in eval_rows(result)]
        parts.append(_table(["quantity", "value", "note"], rows, css_class="notes"))
    else:
        parts.append(
            "<p>Not evaluated yet: <code>vaekit evaluate "
            + html.escape(str(run_dir))
            + "</code> adds the importance-weighted log-likelihood, active units and "
            "FID-MNIST here.</p>"
        )
    parts.append("<h2>Per-epoch metrics</h2>")
    parts.append(
        _metrics_table(records) if records else "<p>No metrics.jsonl in this run folder.</p>"
    )
    parts.append("<h2>Pictures</h2>")
    for name, caption in PICTURES:
        if (run_dir / name).is_file():
            parts.append(
                f"<figure>{_image(run_dir / name)}<figcaption><b>{name}</b>: "
                f"{html.escape(caption)}</figcaption></figure>"
            )
    if (run_dir / SAMPLES_CSV).is_file():
        parts.append(_samples_table(run_dir / SAMPLES_CSV))
    parts.append(
        "<h2>Configuration</h2><pre>" + html.escape(json.dumps(config, indent=2)) + "</pre>"
    )
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>vaekit run {html.escape(run_dir.resolve().name)}</title>"
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def write_report(run_dir: str | Path) -> Path:
    """Write (or refresh) `report.html` in a run folder; returns its path."""
    folder = RunFolder(run_dir)
    write_atomic(folder.report_path, render(folder.path))
    return folder.report_path
