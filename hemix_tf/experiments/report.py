"""A grid's report (`hemix-experiment`): one HTML page beside results.json, from the runs' own records.

  results      the suite's table (click AUC / LogLoss / GAUC mean ± std over seeds, parameters, GFLOPs)
               and a bar chart of the click AUC with the untrained heuristics and, on synthetic data,
               the oracle AUC as lines
  curves       the eval (or validation) click AUC and the training loss after every epoch, mean over
               seeds, per model (each run's `curve`)
  users        the click AUC and mean prediction against the click rate, warm and cold users, at the
               last epoch
  scaling      the scaling suite's figure (AUC against parameters and GFLOPs)
"""
from __future__ import annotations

import numpy as np

from hemix_tf.report import Report, plt


def _mean_curve(runs: list[dict], key) -> tuple[list[int], list[float]]:
  epochs = min(len(r["curve"]) for r in runs)
  return (list(range(1, epochs + 1)),
          [float(np.mean([key(r["curve"][e]) for r in runs])) for e in range(epochs)])


def _results_figure(results: dict):
  names = list(results["models"])
  auc = [results["models"][n]["click"]["auc"] for n in names]
  fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names)), 3.8))
  ax.bar(range(len(names)), [a["mean"] or 0 for a in auc], yerr=[a["std"] or 0 for a in auc], capsize=3,
         color="#4c78a8")
  heuristics = {k: v for k, v in (results.get("heuristics") or {}).items() if v is not None}
  if heuristics:
    label, value = max(heuristics.items(), key=lambda kv: kv[1])
    ax.axhline(value, color="#e45756", linestyle="dotted", label=f"best heuristic ({label}) {value:.4f}")
  oracle = oracle_auc(results)
  if oracle is not None:
    ax.axhline(oracle, color="black", linestyle="--", label=f"oracle {oracle:.4f}")
  low = min([a["mean"] for a in auc if a["mean"] is not None] + list(heuristics.values()))
  ax.set_ylim(max(0.0, low - 0.03), None)
  ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
  ax.set(ylabel=f"{results.get('split', 'eval')} click AUC", title="Click AUC, mean ± std over seeds")
  if ax.get_legend_handles_labels()[0]:
    ax.legend(loc="lower right")
  return fig


def _curves_figure(by_model: dict[str, list[dict]], split: str):
  fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
  for name, runs in by_model.items():
    epochs, auc = _mean_curve(runs, lambda c: c["metrics"]["click"]["auc"])
    axes[0].plot(epochs, auc, marker="o", label=name)
    epochs, loss = _mean_curve(runs, lambda c: c["train_loss"])
    axes[1].plot(epochs, loss, marker="o", label=name)
  axes[0].set(xlabel="epoch", ylabel=f"{split} click AUC", title="After every epoch (mean over seeds)")
  axes[1].set(xlabel="epoch", ylabel="training loss (all tasks)", title="Training loss")
  axes[0].legend(fontsize="small")
  return fig


def grid_report(results: dict, runs: list[dict]) -> Report:
  """The page of a finished grid: `results` as run_grid returns it, `runs` its runs' records."""
  config = results["config"]
  page = Report(f"{config['suite']} on {results['dataset']}")
  page.text(f"Protocol {results['protocol']}, {results['split']} split, learning rate {results['learning_rate']:g}, "
            f"{config['seeds']} seed(s) per model.")
  page.section("Results")
  page.table(["model", "click AUC", "± std", "click LogLoss", "click GAUC", "dense params", "GFLOPs"],
             [[name, row["click"]["auc"]["mean"], row["click"]["auc"]["std"], row["click"]["logloss"]["mean"],
               row["click"]["gauc"]["mean"], row["dense_params"], row["gflops"]]
              for name, row in results["models"].items()])
  page.figure("click_auc", _results_figure(results))
  by_model: dict[str, list[dict]] = {}
  for run in runs:
    if run.get("curve"):  # runs recorded before per-epoch scores existed have none
      by_model.setdefault(run["model"], []).append(run)
  page.section("Curves", "Each run is scored after every epoch; a line is the mean over its seeds.")
  if by_model:
    page.figure("curves", _curves_figure(by_model, results["split"]))
  page.section("Warm and cold users", "Users with or without an impression in the training split, at the "
               "last epoch, mean over seeds.")
  rows = []
  for name, rs in by_model.items():
    for users in sorted({u for r in rs for u in r["metrics"]["click"].get("slices", {})}):
      values = [r["metrics"]["click"]["slices"][users] for r in rs if users in r["metrics"]["click"].get("slices", {})]
      rows.append([name, users, values[0]["examples"], float(np.mean([v["auc"] for v in values])),
                   float(np.mean([v["mean_prediction"] for v in values])), values[0]["mean_label"]])
  page.table(["model", "users", "examples", "click AUC", "mean prediction", "click rate"], rows)
  if config["suite"] == "scaling":
    page.section("Scaling")
    page.figure("scaling", scaling_figure(results))
  return page


def oracle_auc(results: dict) -> float | None:
  """The oracle CTR AUC of aggregate(...)'s results (synthetic data only; None elsewhere)."""
  return next((row["oracle_auc"] for row in results["models"].values() if "oracle_auc" in row), None)


def scaling_figure(results: dict):
  """HeMix Figure 3 style: CTR AUC (mean ± std over seeds) against dense params and against GFLOPs,
  log x-axis, one line per model family (the name before the first space). Where the dataset knows the
  true click probabilities (synthetic), a dashed line marks the oracle AUC, the best any model can reach."""
  families = {}
  for name, row in results["models"].items():
    families.setdefault(name.split(" ")[0], []).append(row)
  oracle = oracle_auc(results)
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, key, label in ((axes[0], "dense_params", "dense parameters"), (axes[1], "gflops", "GFLOPs / example")):
    for family, rows in families.items():
      rows = sorted(rows, key=lambda r: r[key])
      ax.errorbar([r[key] for r in rows], [r["click"]["auc"]["mean"] for r in rows],
                  yerr=[r["click"]["auc"]["std"] for r in rows], marker="o", capsize=3, label=family)
    if oracle is not None:
      ax.axhline(oracle, color="black", linestyle="--", linewidth=1, label=f"oracle {oracle:.4f}")
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("CTR AUC")
    ax.grid(True, which="both", alpha=0.3)
  axes[0].legend()
  steps, epochs = results["config"].get("train_steps"), results["config"].get("epochs", 1)
  length = (f"{steps} steps of {results['config']['batch_size']}" if steps else
            "one epoch" if epochs == 1 else f"{epochs} epochs")
  fig.suptitle(f"Scaling on {results['dataset']} ({results['config']['seeds']} seeds, {length} per run)")
  fig.tight_layout()
  return fig
