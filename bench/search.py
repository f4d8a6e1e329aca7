"""Bayesian per-layer sparsity/structure search against uniform sparsity and random search,
at equal evaluation budget, over several seeds.

    nice -n 10 .venv/bin/python bench/search.py [--plan examples/digits_sparse.yaml]
        [--seeds 0 1 2 3 4] [--evaluations 40] [--confirm 4] [--candidates 2]
        [--recommend observed]
        [--warm S:STRUCTURE ...] [--search-epochs N] [--codes all]
        [--repeats 1] [--weight 0.1] [--size-exponent 2] [--scalarization sum] [--utopia 1.5]
        [--accuracy-budget B] [--size-budget BITS] [--size-budget-mode fill]
        [--structures block] [--final] [--remeasure N]
        [--out /tmp/bench_search]
        [--from-json A/search.json B/search.json]

Per seed (python, numpy, torch seeded; one torch thread): the plan's network is trained in
fp32 and fine-tuned quantization-aware at the base sparsity (``quant.pipeline``'s steps
1-3, the plan's ``quantize:`` settings), then the three searches of ``quant.search`` run
from that same base, ``--evaluations`` each, every evaluation a ``--search-epochs``
fine-tune (with ``--repeats`` R, the mean of R fine-tunes of different seeds:
``quant.search.Evaluator``'s ``repeats``, the same for every method); of each method's
``--evaluations``, the last ``--confirm`` re-evaluate its ``--candidates`` points of lowest
objective (``--recommend``: observed, or the posterior mean of a Gaussian process fitted
to the method's search evaluations, every method alike) with new fine-tune seeds, and its
best point is the candidate of lowest mean objective, reported with the means of its runs
(``quant.search.run_searches``' ``confirm`` and ``recommend``, ``best_of``); ``--warm``:
uniform points every method evaluates first. Bits counted in the codings ``--codes``
names, pruned in the structures ``--structures`` offers (default ``block``: blocks only
where a block size fits, as measured in docs/quant.md; ``cnn-ip quantize`` offers
unstructured beside them unless the plan says ``structures: block``).
The objective (``quant.search.Objective``) is the plan's except
for ``--weight`` (``accuracy_weight``, default 0.1: every point of smoothed accuracy lost
or gained is worth 10 % of the searched layers' bits at the base's size),
``--size-exponent`` (default 2: the size term is the square of the relative size),
``--scalarization`` and ``--utopia`` (default sum: size and accuracy terms added; chebyshev:
their maximum, the ray's slope ``--weight``, its utopia ``--utopia`` points above the base)
and, if given, ``--accuracy-budget`` (``accuracy_budget``; also ``--budget``, its former
name), ``--size-budget`` (``size_budget``,
the bits the model may take) and ``--size-budget-mode`` (``size_budget_mode``: ``fill``,
every point of every method filling the budget, the per-layer searches
``quant.search.FILL_MARGIN`` of it less, uniform's evaluations going round its
structures; the objective then the measure lost), each fixed on tuning seeds before
seeds 0-4 were run with it (docs/quant.md, docs/search_history.md).
Each method's *best* point: ``quant.search.best_of``. The table gives, per seed and method,
the best point's model bits, validation top-1, mean true-class probability and loss, and
whether it **dominates** uniform's best (and the Bayesian best random's): fewer bits at no
lower validation top-1, or higher top-1 at no more bits (with the per-seed rate's 95 %
interval); and, rule-free, how many of
uniform's Pareto points some point of the method dominates. ``OUT/search.json`` holds
the libraries and BLAS kernels in use (``quant.train.environment``) and every
evaluation, and ``OUT/search.png`` plots bits against validation top-1 (one panel a
seed, every evaluation of each method, each method's Pareto front as a step line, best
points as stars). ``--final``: each method's best point also fine-tuned ``final_epochs``
as ``cnn-ip quantize`` fine-tunes its choice, and those models compared the same way.
``--remeasure N``: each method's best point also evaluated N more times (its next
fine-tune seeds, outside the budget) and compared by the means over all its runs, a
diagnostic of how much of a comparison is the noise of 1-3 runs.
``--from-json``: the table and plot of earlier runs' records (no searches; with
``--final`` or ``--remeasure``, what records lack of them). Prints; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import textwrap
import time
from dataclasses import asdict, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from scipy.stats import binomtest  # noqa: E402

from cnn_ip.errors import UserError  # noqa: E402
from cnn_ip.plan import load_plan  # noqa: E402
from quant import train  # noqa: E402
from quant.data import load_dataset  # noqa: E402
from quant.pipeline import (Settings, check_settings, final_finetune,  # noqa: E402
                            searchable_base)
from quant.options import (SCALARIZATIONS, SIZE_BUDGET_MODES, STRUCTURE_OFFERS,  # noqa: E402
                           out_of_range)
from quant.search import (CANDIDATES, METHODS, RECOMMEND, SizeBudgetError, best_of,  # noqa: E402
                          check_evaluations, run_searches)

STYLE = {"bayes": ("tab:blue", "o", "Bayesian, per layer"),
         "uniform": ("tab:orange", "s", "uniform sparsity"),
         "random": ("tab:green", "^", "random search")}


def dominates(a: dict, b: dict) -> bool:
    """``a`` has fewer bits at no lower validation top-1, or higher top-1 at no more bits."""
    return ((a["bits"] < b["bits"] and a["val_accuracy"] >= b["val_accuracy"])
            or (a["val_accuracy"] > b["val_accuracy"] and a["bits"] <= b["bits"]))


def dominates_smoothed(a: dict, b: dict) -> bool:
    """:func:`dominates` with the smoothed validation accuracy (the objective's measure) in
    place of top-1."""
    return dominates({"bits": a["bits"], "val_accuracy": a["val_measure"]},
                     {"bits": b["bits"], "val_accuracy": b["val_measure"]})


def rate_interval(wins: int, seeds: int) -> str:
    """The per-seed rate's 95 % Clopper-Pearson interval: a few seeds bound it loosely
    (3 of 5: 0.15-0.95), which a "k of n seeds" alone does not say."""
    ci = binomtest(wins, seeds).proportion_ci(confidence_level=0.95)
    return f"per-seed rate 95 % interval {ci.low:.2f}-{ci.high:.2f}"


def pareto(points: list[dict]) -> list[dict]:
    """The points no other point dominates, by increasing bits."""
    front = [p for p in points if not any(dominates(q, p) for q in points)]
    return sorted(front, key=lambda p: (p["bits"], -p["val_accuracy"]))


def run_seed(plan, data, seed: int, settings: Settings, repeats: int = 1, confirm: int = 0,
             candidates: int = CANDIDATES, warm=(), recommend: str = "observed") -> dict:
    s = replace(settings, seed=seed)
    started = time.process_time()
    with train.deterministic(seed, s.threads):
        net = train.train_fp32(plan.layers, data, epochs=s.epochs, seed=seed, progress=False)
        _, evaluator, objective, _ = searchable_base(plan.layers, net, data, s,
                                                     measure="validation top-1")
        evaluator.repeats = repeats
        search = run_searches(evaluator, evaluations=s.evaluations, seed=seed, progress=False,
                              methods=METHODS, confirm=confirm, candidates=candidates,
                              warm=warm, recommend=recommend)
    return {"seed": seed, "repeats": repeats, "confirm": confirm, "candidates": candidates,
            "recommend": recommend,
            "warm": [list(w) for w in warm],
            "base": evaluator.reference,
            "objective": objective.describe(),
            "size_budget": s.size_budget, "size_budget_mode": s.size_budget_mode,
            "environment": train.environment(),
            "search": {m: search[m] for m in METHODS},
            "cpu_s": round(time.process_time() - started, 1)}


def on_rebuilt_base(plan, data, result: dict, settings: Settings, work):
    """``work(evaluator, net, settings)`` on the base of ``result``'s seed, rebuilt
    (deterministic) and checked against the search's record; returns what it returns."""
    seed = result["seed"]
    s = replace(settings, seed=seed)
    with train.deterministic(seed, s.threads):
        net = train.train_fp32(plan.layers, data, epochs=s.epochs, seed=seed, progress=False)
        _, evaluator, _, _ = searchable_base(plan.layers, net, data, s, measure="validation top-1")
        for key in ("bits", "accuracy", "measure"):
            if evaluator.reference[key] != result["base"][key]:
                raise RuntimeError(f"seed {seed}: the rebuilt base differs in {key}")
        return work(evaluator, net, s)


def final_models(plan, data, result: dict, settings: Settings) -> dict:
    """Each method's best point fine-tuned as ``cnn-ip quantize`` fine-tunes its choice
    (``quant.pipeline.final_finetune``): ``{method: {bits, val_accuracy, val_measure}}``."""
    def work(evaluator, net, s):
        out = {}
        for method in METHODS:
            best = best_of(result["search"][method])
            final_finetune(evaluator, net, data, s, best["sparsity"], best["structure"],
                           fill=best.get("fill"))
            m = evaluator.measure()
            out[method] = {"bits": m["bits"], "val_accuracy": round(m["accuracy"], 6),
                           "val_measure": round(m["measure"], 6)}
        return out
    return on_rebuilt_base(plan, data, result, settings, work)


def remeasured(plan, data, result: dict, settings: Settings, extra: int) -> dict:
    """Each method's best point evaluated ``extra`` more times, as its confirmation runs
    are (the next fine-tune seeds, search epochs), outside the search's budget: ``{method:
    {bits, val_accuracy, val_measure, runs}}``, the means over all its runs.  A diagnostic
    of the comparison's noise: a best point's top-1 is otherwise the mean of 1-3 runs."""
    def work(evaluator, net, s):
        out = {}
        for method in METHODS:
            records = result["search"][method]
            best = best_of(records)
            runs = [r for r in records if best["index"] in (r["index"], r.get("confirms"))]
            for run in range(len(runs), len(runs) + extra):
                evaluator(method, best["sparsity"], best["structure"], run=run,
                          confirms=best["index"], fill=best.get("fill"))
                runs.append(asdict(evaluator.history[-1]))
            # the mean over the runs (not best_of: the rebuilt evaluator numbers its runs
            # from 0 again, so a new run can share the best record's index)
            out[method] = {key: round(sum(r[key] for r in runs) / len(runs), 6)
                           for key in ("bits", "val_accuracy", "val_measure")}
            out[method]["runs"] = len(runs)
        return out
    return on_rebuilt_base(plan, data, result, settings, work)


def compared_rows(results: list[dict], key: str) -> list[dict]:
    """Rows of ``result[key]`` (``final`` or ``remeasured``), each method against uniform."""
    rows = []
    for result in results:
        models = result[key]
        for method in METHODS:
            f = models[method]
            rows.append({"seed": result["seed"], "method": method, "bits": round(f["bits"]),
                         "val_top1": f"{100 * f['val_accuracy']:.2f}",
                         "val_p_true": f"{f['val_measure']:.4f}",
                         "dominates_uniform": "-" if method == "uniform"
                         else ("yes" if dominates(f, models["uniform"]) else "no")})
    return rows


def front_cover(result: dict, method: str, other: str = "uniform") -> tuple[int, int]:
    """How many of ``other``'s Pareto points some point of ``method`` dominates, of how many
    (a comparison of the whole fronts, independent of how a best point is chosen)."""
    mine, theirs = result["search"][method], pareto(result["search"][other])
    return sum(any(dominates(q, p) for q in mine) for p in theirs), len(theirs)


def table(results: list[dict]) -> list[dict]:
    rows = []
    for result in results:
        best = {m: best_of(result["search"][m]) for m in METHODS}
        for method in METHODS:
            b = best[method]
            rows.append({
                "seed": result["seed"], "method": method, "bits": b["bits"],
                "val_top1": f"{100 * b['val_accuracy']:.2f}",
                "val_p_true": f"{b['val_measure']:.4f}", "val_loss": f"{b['val_loss']:.4f}",
                "objective": f"{b['objective']:.4f}",
                "dominates_uniform": "-" if method == "uniform"
                else ("yes" if dominates(b, best["uniform"]) else "no"),
                "dominates_random": "-" if method != "bayes"
                else ("yes" if dominates(b, best["random"]) else "no"),
                "uniform_front_dominated": "-" if method == "uniform"
                else "{} of {}".format(*front_cover(result, method)),
                "sparsity": " ".join(f"{n}:{v:.2f}" for n, v in b["sparsity"].items()),
                "structure": " ".join(f"{n}:{v.replace('unstructured', 'u')}"
                                      for n, v in b["structure"].items()),
            })
    return rows


def plot(results: list[dict], path: Path, size_budget: int | None = None) -> None:
    """``size_budget``: for records that do not give theirs (runs before 004a7e9)."""
    fig, axes = plt.subplots(1, len(results), figsize=(3.6 * len(results), 3.8), dpi=100,
                             squeeze=False)
    for ax, result in zip(axes[0], results):
        for method in METHODS:
            color, marker, label = STYLE[method]
            points = result["search"][method]
            ax.scatter([p["bits"] / 1000 for p in points],
                       [100 * p["val_accuracy"] for p in points], color=color, marker=marker,
                       alpha=0.45, s=18, label=label)
            front = pareto(points)
            ax.step([p["bits"] / 1000 for p in front], [100 * p["val_accuracy"] for p in front],
                    where="post", color=color, lw=1.2)
            best = best_of(points)
            ax.scatter([best["bits"] / 1000], [100 * best["val_accuracy"]], color=color,
                       marker="*", s=180, edgecolor="black", zorder=5)
        ax.axhline(100 * result["base"]["accuracy"], color="grey", lw=0.8)
        budget = result.get("size_budget", size_budget)
        if budget:
            ax.axvline(budget / 1000, color="grey", lw=0.8, ls=":")
        ax.set_title(f"seed {result['seed']}", fontsize=9)
        ax.set_xlabel("model bits [kbit]")
        ax.grid(alpha=0.3)
        low = 100 * result["base"]["accuracy"] - 6
        shown = [100 * p["val_accuracy"] for m in METHODS for p in result["search"][m]]
        stars = [100 * best_of(result["search"][m])["val_accuracy"] for m in METHODS]
        ax.set_ylim(bottom=min(max(low, min(shown) - 0.5), min(stars) - 0.5),
                    top=min(100.0, max(shown)) + 0.3)
    axes[0][0].set_ylabel("validation top-1 [%]")
    axes[0][0].legend(fontsize=7, loc="lower right")
    title = ("bits against validation top-1: every evaluation, Pareto fronts (lines), best "
             "points (stars: quant.search.best_of), base (grey), size budget (dotted)")
    # wrapped to the figure (about 14 characters an inch at 9 points): one panel is narrow
    fig.suptitle(textwrap.fill(title, width=int(14 * 3.6 * len(results))), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default="examples/digits_sparse.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--evaluations", type=int, default=40)
    parser.add_argument("--search-epochs", type=int, default=None,
                        help="fine-tuning epochs per evaluation (default: the plan's)")
    parser.add_argument("--codes", default="all", help="hardware | all (quant.pipeline.CODE_SETS)")
    parser.add_argument("--structures", default="block", choices=STRUCTURE_OFFERS,
                        help="pruning structures offered (quant.search.structure_choices)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="fine-tunes (different seeds) averaged per evaluation")
    parser.add_argument("--confirm", type=int, default=4,
                        help="evaluations of each method's budget spent re-evaluating its "
                             "best candidates (quant.search.run_searches)")
    parser.add_argument("--candidates", type=int, default=CANDIDATES,
                        help="candidates the --confirm evaluations re-evaluate")
    parser.add_argument("--recommend", default="observed", choices=RECOMMEND,
                        help="candidates: lowest observed objective, or lowest posterior "
                             "mean of a GP fitted to the search (quant.search.run_searches)")
    parser.add_argument("--warm", nargs="*", default=[], metavar="SPARSITY:STRUCTURE",
                        help="uniform points every method evaluates first, e.g. 0.5:block8 "
                             "(quant.search.run_searches' warm)")
    parser.add_argument("--weight", type=float, default=0.1,
                        help="objective: accuracy_weight (per point of the measure)")
    parser.add_argument("--size-exponent", type=float, default=2.0,
                        help="objective: the size term is (bits / base bits) ** this")
    parser.add_argument("--scalarization", default="sum", choices=SCALARIZATIONS,
                        help="objective: size and accuracy terms added, or their maximum "
                             "(quant.search.Objective)")
    parser.add_argument("--utopia", type=float, default=1.5,
                        help="objective, chebyshev: the utopia's points of the measure above "
                             "the base")
    parser.add_argument("--accuracy-budget", "--budget", dest="budget", type=float, default=None,
                        help="objective: accuracy_budget (default: the plan's)")
    parser.add_argument("--size-budget", type=int, default=None, metavar="BITS",
                        help="objective: size_budget, the bits the model may take (default: "
                             "the plan's)")
    parser.add_argument("--size-budget-mode", default=None, choices=SIZE_BUDGET_MODES,
                        help="how the search keeps to --size-budget: penalty, or every point "
                             "filling it (default: the plan's)")
    parser.add_argument("--out", default="/tmp/bench_search")
    parser.add_argument("--from-json", nargs="+", metavar="FILE",
                        help="no searches: the table and plot of earlier runs' search.json "
                             "files (e.g. seeds split over two processes)")
    parser.add_argument("--remeasure", type=int, default=0, metavar="N",
                        help="also evaluate each method's best point N more times (outside "
                             "the budget) and compare the means over all its runs")
    parser.add_argument("--final", action="store_true",
                        help="also fine-tune each method's best point final_epochs, as "
                             "cnn-ip quantize does, and compare those models")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.exit(2, f"--repeats: must be at least 1, got {args.repeats}\n")
    if args.remeasure < 0:
        parser.exit(2, f"--remeasure: must be at least 0, got {args.remeasure}\n")
    try:
        warm = [(float(sparsity), label) for sparsity, label in (w.split(":") for w in args.warm)]
    except ValueError:
        parser.exit(2, f"--warm: SPARSITY:STRUCTURE pairs such as 0.5:block8, got {args.warm}\n")
    try:
        check_evaluations(args.evaluations, args.confirm, args.candidates, warm)
    except ValueError as error:
        parser.exit(2, f"--{error}\n")
    for seed in args.seeds:
        if problem := out_of_range("seed", seed):
            parser.exit(2, f"--seeds: {problem}\n")
    try:
        plan = load_plan(args.plan)
    except UserError as error:
        parser.exit(2, f"{error}\n")
    data = load_dataset(plan.dataset)
    # the plan's settings, the bench's flags over them (the last three only when given)
    given = {"accuracy_budget": args.budget, "size_budget": args.size_budget,
             "size_budget_mode": args.size_budget_mode, "search_epochs": args.search_epochs}
    settings = Settings(**{**plan.quantize, "evaluations": args.evaluations, "codes": args.codes,
                           "confirm": args.confirm, "progress": False,
                           "accuracy_weight": args.weight, "structures": args.structures,
                           "size_exponent": args.size_exponent,
                           "scalarization": args.scalarization, "utopia": args.utopia,
                           **{k: v for k, v in given.items() if v is not None}})
    try:
        check_settings(settings)       # as cnn-ip quantize checks its settings
    except ValueError as error:
        parser.exit(2, f"{error}\n")
    out = Path(args.out)
    if args.from_json:
        results = []
        for name in args.from_json:
            try:
                results += json.loads(Path(name).read_text())
            except (OSError, ValueError) as error:
                parser.exit(2, f"--from-json: {name}: {error}\n")
        out.mkdir(parents=True, exist_ok=True)
        for result in results:
            if args.final and "final" not in result:
                result["final"] = final_models(plan, data, result, settings)
            if args.remeasure and "remeasured" not in result:
                result["remeasured"] = remeasured(plan, data, result, settings, args.remeasure)
        (out / "search.json").write_text(json.dumps(results, indent=1) + "\n")
        return report(results, args, settings, out)
    results = []
    for seed in args.seeds:
        try:
            results.append(run_seed(plan, data, seed, settings, args.repeats, args.confirm,
                                    args.candidates, warm, args.recommend))
        except SizeBudgetError as error:
            parser.exit(2, f"{error}\n")
        if args.final:
            results[-1]["final"] = final_models(plan, data, results[-1], settings)
        if args.remeasure:
            results[-1]["remeasured"] = remeasured(plan, data, results[-1], settings,
                                                   args.remeasure)
        out.mkdir(parents=True, exist_ok=True)     # here: a size budget error writes nothing
        (out / "search.json").write_text(json.dumps(results, indent=1) + "\n")
        for row in table(results[-1:]):           # as it comes (a seed takes minutes)
            print("  ".join(str(v) for v in row.values()), flush=True)
        print(f"seed {seed}: {results[-1]['cpu_s']} s CPU", flush=True)
    report(results, args, settings, out)


def report(results: list[dict], args, settings: Settings, out: Path) -> None:
    rows = table(results)
    header = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in header]
    repeats = sorted({r["repeats"] for r in results})
    confirm = sorted({(r.get("confirm", 0), r.get("candidates", 2),
                       r.get("recommend", "observed")) for r in results})
    print(f"{args.plan}, {len(results[0]['search']['bayes'])} evaluations a method, "
          f"{settings.search_epochs} epoch(s) each, the mean of {repeats} fine-tune(s), "
          f"codes {args.codes}, structures {args.structures}, (confirmation evaluations, "
          f"candidates, recommend) {confirm}")
    print(f"objective (seed {results[-1]['seed']}): {results[-1]['objective']}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(str(r[h]).ljust(w) for h, w in zip(header, widths)))
    for method in ("bayes", "random"):
        wins = sum(r["dominates_uniform"] == "yes" for r in rows if r["method"] == method)
        print(f"{method} best dominates uniform best in {wins} of {len(results)} seeds "
              f"({rate_interval(wins, len(results))})")
    wins = sum(r["dominates_random"] == "yes" for r in rows if r["method"] == "bayes")
    print(f"bayes best dominates random best in {wins} of {len(results)} seeds")
    best = [{m: best_of(r["search"][m]) for m in METHODS} for r in results]
    smoothed = sum(dominates_smoothed(b["bayes"], b["uniform"]) for b in best)
    lowest = sum(b["bayes"]["objective"] == min(b[m]["objective"] for m in METHODS) for b in best)
    print(f"by smoothed accuracy instead of top-1: bayes best dominates uniform best in "
          f"{smoothed} of {len(results)} seeds")
    print(f"bayes best has the lowest objective of the three methods in {lowest} of "
          f"{len(results)} seeds")
    for key, title in (("final", f"after the final fine-tuning ({settings.final_epochs} "
                                 "epochs, distilled)"),
                       ("remeasured", "each best point's mean over its runs and the "
                                      "--remeasure ones")):
        if not all(key in r for r in results):
            continue
        rows = compared_rows(results, key)
        print(f"{title}:")
        print("  ".join(rows[0]))
        for r in rows:
            print("  ".join(str(v) for v in r.values()))
        for method in ("bayes", "random"):
            wins = sum(r["dominates_uniform"] == "yes" for r in rows if r["method"] == method)
            print(f"{key}: {method} dominates uniform in {wins} of {len(results)} seeds")
    plot(results, out / "search.png", settings.size_budget)
    print(f"wrote {out / 'search.json'} and {out / 'search.png'}")


if __name__ == "__main__":
    main()
