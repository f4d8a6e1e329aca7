"""The search plot: model bits against validation accuracy for every evaluation."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_search(path, search: dict, *, ref_accuracy: float, budget: float, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    for key, style in (("uniform", dict(marker="s", color="tab:orange", label="uniform sparsity")),
                       ("bayes", dict(marker="o", color="tab:blue", label="Bayesian, per layer"))):
        points = search.get(key, [])
        ax.scatter([p["bits"] / 1000 for p in points], [100 * p["val_accuracy"] for p in points],
                   alpha=0.75, **style)
    chosen = search["chosen"]
    ax.scatter([chosen["bits"] / 1000], [100 * chosen["val_accuracy"]], marker="*", s=260,
               color="tab:red", zorder=5, label="chosen (after final fine-tuning)")
    ax.axhline(100 * ref_accuracy, color="grey", lw=0.8, label="base (quantized) validation accuracy")
    ax.axhline(100 * ref_accuracy - budget, color="grey", lw=0.8, ls="--", label="accuracy budget")
    ax.set_xlabel("model size [kbit] (exact ROM bits)")
    ax.set_ylabel("validation top-1 [%]")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
