"""The figures a benchmark reports of a model's runs over seeds (harness runs, or a public library's runs
in the same shape): the per-epoch curve, the last epoch, the decay after the best epoch, the AUC per
slice of users and its two parts."""
import this_tree  # noqa: F401  (first: this checkout's hemix_tf, not the editable install's)
import numpy as np

from hemix_tf.metrics import auc, between_group_auc, group_auc


def model_row(runs: list[dict]) -> dict:
  curves = np.array([[c["metrics"]["click"]["auc"] for c in r["curve"]] for r in runs])
  per_epoch = curves.mean(axis=0)
  def by_users(metric: str) -> dict:  # the seeds' mean of a metric per slice (warm / cold users); None
    # where a run lacks it (stored before the metric existed)
    values = {name: [r["metrics"]["click"]["slices"][name].get(metric) for r in runs]
              for name in runs[0]["metrics"]["click"]["slices"]}
    return {name: _mean(v) for name, v in values.items()}
  def by_users_and_history() -> dict | None:  # per slice of users, each part by whether the example has a
    # global event: the seeds' mean AUC, click rate and prediction (a part whose level is off shows there);
    # None for runs stored before the harness split the slices
    slices = [r["metrics"]["click"]["slices"] for r in runs]
    if any("by_history" not in s for run_slices in slices for s in run_slices.values()):
      return None
    return {users: {part: {m: _mean([s[users]["by_history"].get(part, {}).get(m) for s in slices])
                           for m in ("auc", "mean_label", "mean_prediction")}
                    for part in slices[0][users]["by_history"]} for users in slices[0]}
  return {"click_auc_mean": float(curves[:, -1].mean()), "click_auc_std": float(curves[:, -1].std(ddof=1)),
          "click_auc_values": curves[:, -1].round(4).tolist(), "per_epoch_mean": per_epoch.round(4).tolist(),
          "best_epoch_minus_last": float(per_epoch.max() - per_epoch[-1]), "click_auc_by_users": by_users("auc"),
          # the AUC's two parts per slice: the order within each user and the users' order
          "click_gauc_by_users": by_users("gauc"), "click_between_user_auc_by_users": by_users("between_auc"),
          "click_by_users_and_history": by_users_and_history(),
          "train_loss_per_epoch_mean": np.mean([[c["train_loss"] for c in r["curve"]] for r in runs], axis=0)
          .round(4).tolist()}


def _mean(values: list) -> float | None:
  return None if None in values else float(np.mean(values))


def slices(labels: np.ndarray, scores: np.ndarray, users: np.ndarray, warm: np.ndarray) -> dict:
  """One run's eval scores -> {"warm" | "cold": {"auc", "gauc", "between_auc"}}, the shape of a harness
  run's `metrics.click.slices`."""
  return {name: {"auc": auc(labels[m], scores[m]), "gauc": group_auc(labels[m], scores[m], users[m]),
                 "between_auc": between_group_auc(labels[m], scores[m], users[m])}
          for name, m in (("warm", warm), ("cold", ~warm))}
