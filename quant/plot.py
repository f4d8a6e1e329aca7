"""Plots: the sparsity search (model bits against the validation measure of every
evaluation), and detection canvases with their boxes."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_search(path, search: dict, *, ref_accuracy: float, accuracy_budget: float | None,
                title: str,
                measure: str = "validation top-1 [%]", size_budget: int | None = None) -> None:
    """Bits against ``measure`` of every evaluation of both searches and the chosen point;
    the base model's ``ref_accuracy``, the ``accuracy_budget`` below it (``None``: not
    drawn, for an objective whose measure is not the one plotted) and the ``size_budget``
    (bits)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    for key, style in (("uniform", dict(marker="s", color="tab:orange", label="uniform sparsity")),
                       ("bayes", dict(marker="o", color="tab:blue", label="Bayesian, per layer"))):
        points = search.get(key, [])
        ax.scatter([p["bits"] / 1000 for p in points], [100 * p["val_accuracy"] for p in points],
                   alpha=0.75, **style)
    chosen = search["chosen"]
    ax.scatter([chosen["bits"] / 1000], [100 * chosen["val_accuracy"]], marker="*", s=260,
               color="tab:red", zorder=5, label="chosen (after final fine-tuning)")
    ax.axhline(100 * ref_accuracy, color="grey", lw=0.8, label="base (quantized) model")
    if accuracy_budget is not None:
        ax.axhline(100 * ref_accuracy - accuracy_budget, color="grey", lw=0.8, ls="--",
                   label="accuracy budget")
    if size_budget is not None:
        ax.axvline(size_budget / 1000, color="grey", lw=0.8, ls=":", label="size budget")
    ax.set_xlabel("model size [kbit] (exact ROM bits)")
    ax.set_ylabel(measure)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


SHOWN_SCORE = 0.3        # boxes drawn on detection pictures (mAP uses every detection)


def draw_boxes(ax, canvas, boxes, labels, scores=None, *, color) -> None:
    """One canvas with its boxes (x0 y0 x1 y1 in pixel edges) and class (and score)."""
    from matplotlib.patches import Rectangle
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=255, extent=(0, canvas.shape[1], canvas.shape[0], 0))
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.2, color=color))
        text = str(int(labels[k])) if scores is None else f"{int(labels[k])} {scores[k]:.2f}"
        ax.text(x0, y0 - 0.5, text, color=color, fontsize=6, va="bottom")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_canvases(path, split, *, count=12, columns=6, title="") -> None:
    """Sample canvases with their ground-truth boxes and classes."""
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(1.7 * columns, 1.8 * rows), dpi=100)
    for i, ax in enumerate(axes.ravel()):
        if i < count:
            draw_boxes(ax, split.x[i, :, :, 0], split.boxes[i], split.labels[i], color="lime")
        else:
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def plot_detections(path, split, fp32_dets, int_dets, *, count=6, title="") -> None:
    """Test canvases, fp32 detections (left) and the integer model's (right), boxes with
    score >= SHOWN_SCORE; ground truth dashed."""
    from matplotlib.patches import Rectangle
    fig, axes = plt.subplots(count // 2, 4, figsize=(8, 2.1 * (count // 2)), dpi=100)
    for i in range(count):
        for j, (dets, label) in enumerate(((fp32_dets, "fp32"), (int_dets, "integer"))):
            ax = axes[i // 2, 2 * (i % 2) + j]
            keep = dets[i]["scores"] >= SHOWN_SCORE
            draw_boxes(ax, split.x[i, :, :, 0], dets[i]["boxes"][keep], dets[i]["labels"][keep],
                       dets[i]["scores"][keep], color="red" if j else "deepskyblue")
            for x0, y0, x1, y1 in split.boxes[i]:
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=0.6,
                                       ls="--", color="lime"))
            ax.set_title(f"test {i}: {label}", fontsize=7)
    fig.suptitle(f"{title} (score >= {SHOWN_SCORE}; ground truth dashed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
