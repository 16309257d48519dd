"""Offline ranking metrics: AUC, LogLoss, user-level GAUC, and HeMix's Rela.Imp (Eq. 25)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score


def auc(labels: np.ndarray, predictions: np.ndarray) -> float | None:
  """None when only one class is present."""
  return float(roc_auc_score(labels, predictions)) if len(np.unique(labels)) == 2 else None


def logloss(labels: np.ndarray, predictions: np.ndarray) -> float:
  return float(log_loss(labels, np.clip(predictions, 1e-7, 1 - 1e-7), labels=[0, 1]))


def group_auc(labels: np.ndarray, predictions: np.ndarray, groups: np.ndarray) -> float | None:
  """GAUC: the AUC within each group (user) that has both classes, averaged with the group's number of
  examples as weight. None if no group has both classes."""
  order = np.argsort(groups, kind="stable")
  groups, labels, predictions = groups[order], labels[order], predictions[order]
  starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
  total = weight = 0.0
  for start, end in zip(starts, np.r_[starts[1:], len(groups)]):
    value = auc(labels[start:end], predictions[start:end])
    if value is not None:
      total += value * (end - start)
      weight += end - start
  return total / weight if weight else None


def rela_imp(auc_model: float, auc_base: float) -> float:
  """HeMix Eq. 25, in percent: ((AUC(model) - 0.5) / (AUC(base) - 0.5) - 1) * 100; NaN (undefined) when
  the base is at chance (AUC 0.5, e.g. a reference whose predictions collapsed to one value)."""
  if auc_base == 0.5:
    return float("nan")
  return ((auc_model - 0.5) / (auc_base - 0.5) - 1.0) * 100.0
