"""FuxiCTR's DNN on an exported split (hemix_tf/experiments/export.py), under issue 38's fixed protocol.

Runs in an interpreter with FuxiCTR, not this repository's (benchmarks/public_library_parity.py calls it):
  python -m venv /tmp/fuxictr && /tmp/fuxictr/bin/pip install torch==2.13.0 fuxictr==2.3.10 polars==1.33.1
  /tmp/fuxictr/bin/python benchmarks/fuxictr_dnn.py --split_dir=DIR --seed=0 [--without_sequences]
Prints one JSON line: the eval click AUC, mean prediction and train loss after every epoch; with
`--scores_out` the last epoch's eval scores are kept too.

FuxiCTR as its users run it: its FeatureProcessor builds the vocabularies from train (every value seen
once or more; the sequences' item ids share the candidate's table), every embedding starts N(0, 1e-4),
its DNN (an MLP of 64, 64, 64 by default) reads the concatenated embeddings, a sequence as its masked mean;
Adam 1e-3, batch 512, gradients clipped at norm 10 (FuxiCTR's default), 3 epochs, the weights after the
last epoch. FuxiCTR's early stopping and learning-rate decay on plateau are not used (the protocol).
"""
import argparse
import json
import logging
import os
import tempfile

import numpy as np
import torch
from fuxictr.features import FeatureMap
from fuxictr.preprocess import FeatureProcessor, build_dataset
from fuxictr.pytorch.dataloaders import RankDataLoader
from fuxictr.pytorch.layers import FeatureEmbedding, MLP_Block
from fuxictr.pytorch.models import BaseModel
from fuxictr.pytorch.torch_utils import seed_everything
from sklearn.metrics import roc_auc_score
from torch import nn

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--split_dir", required=True, help="train.csv, eval.csv and columns.json")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--without_sequences", action="store_true", help="the non-sequential features only")
parser.add_argument("--hidden", default="64,64,64", help="the MLP's widths")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--work_dir", default=None, help="FuxiCTR's built data (default: a temporary directory)")
parser.add_argument("--scores_out", default=None,
                    help="write the last epoch's eval labels and scores here (.npz, in its loader's order)")


def feature_cols(roles: dict, with_sequences: bool) -> list[dict]:
  cols = [{"name": roles["categorical"], "active": True, "dtype": "str", "type": "categorical"}]
  if roles["dense"]:
    cols.append({"name": roles["dense"], "active": True, "dtype": "float", "type": "numeric"})
  for name, role in roles["sequences"].items():
    if role["max_len"] is not None and not with_sequences:
      continue
    col = {"name": name, "active": True, "dtype": "str", "type": "sequence", "splitter": "^"}
    if role["max_len"]:
      col["max_len"] = role["max_len"]
    if role["shares"]:
      col["share_embedding"] = role["shares"]
    cols.append(col)
  return cols


def main(args) -> dict:
  logging.basicConfig(level=logging.WARNING)
  torch.set_num_threads(1)
  roles = json.loads(open(os.path.join(args.split_dir, "columns.json")).read())
  work = args.work_dir or tempfile.mkdtemp(prefix="fuxictr-")
  dataset = "without_sequences" if args.without_sequences else "with_sequences"
  processor = FeatureProcessor(feature_cols=feature_cols(roles, not args.without_sequences),
                               label_col={"name": "click", "dtype": "float"}, dataset_id=dataset, data_root=work)
  train, valid, _ = build_dataset(processor, train_data=os.path.join(args.split_dir, "train.csv"),
                                  valid_data=os.path.join(args.split_dir, "eval.csv"),
                                  test_data=os.path.join(args.split_dir, "eval.csv"), data_format="csv",
                                  min_categr_count=1)
  feature_map = FeatureMap(dataset, processor.data_dir)
  feature_map.load(os.path.join(processor.data_dir, "feature_map.json"), {"embedding_dim": 16})
  seed_everything(args.seed)

  class DNN(BaseModel):  # FuxiCTR's model_zoo DNN
    def __init__(self):
      super().__init__(feature_map, model_id="DNN", gpu=-1, verbose=0, model_root=work, metrics=["AUC"])
      self.embedding_layer = FeatureEmbedding(feature_map, 16)
      self.mlp = MLP_Block(input_dim=feature_map.sum_emb_out_dim(), output_dim=1,
                           hidden_units=[int(h) for h in args.hidden.split(",")], hidden_activations="ReLU",
                           output_activation=self.output_activation)
      self.compile("adam", "binary_crossentropy", 1e-3)
      self.reset_parameters()
      self.model_to_device()

    def forward(self, inputs):
      return {"y_pred": self.mlp(self.embedding_layer(self.get_inputs(inputs), flatten_emb=True))}

  model = DNN()
  train_batches, eval_batches = RankDataLoader(feature_map, stage="train", train_data=train, valid_data=valid,
                                               batch_size=512, shuffle=True, data_format="parquet")
  curve = []
  for epoch in range(args.epochs):
    model.train()
    losses = []
    for batch in train_batches:
      model.optimizer.zero_grad()
      loss = model.compute_loss(model.forward(batch), model.get_labels(batch))
      loss.backward()
      nn.utils.clip_grad_norm_(model.parameters(), 10.0)
      model.optimizer.step()
      losses.append(loss.item())
    model.eval()
    labels, scores = [], []
    with torch.no_grad():
      for batch in eval_batches:
        scores.append(model.forward(batch)["y_pred"].numpy().ravel())
        labels.append(model.get_labels(batch).numpy().ravel())
    y, p = np.concatenate(labels), np.concatenate(scores)
    curve.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "click_auc": float(roc_auc_score(y, p)),
                  "mean_prediction": float(p.mean()), "eval_examples": len(y)})
  if args.scores_out:
    np.savez(args.scores_out, labels=y.astype(np.float32), scores=p.astype(np.float32))
  return {"model": "FuxiCTR DNN" + (" w/o sequences" if args.without_sequences else ""), "seed": args.seed,
          "curve": curve}


if __name__ == "__main__":
  print(json.dumps(main(parser.parse_args())))
