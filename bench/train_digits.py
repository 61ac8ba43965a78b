"""Train the demo's digits CNN and write the checkpoint PruneQL ships.

    python bench/train_digits.py     # → pruneql/zoo/digits_cnn.pt (a state_dict, ~0.4 MB)

Deterministic: seeded initialisation, seeded data split and shuffling, one thread.
"""
from __future__ import annotations

import os

import torch

from pruneql import zoo
from pruneql.data import load_data
from pruneql.training import Hyper, evaluate, train

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pruneql",
                   "zoo", "digits_cnn.pt")


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = zoo.build("digits_cnn", seed=0)
    data = load_data(source="digits", batch=64, val=0.2, seed=0)
    history = train(model, data, Hyper(epochs=30, lr=0.05, momentum=0.9, weight_decay=5e-4))
    print(f"best epoch {history.best_epoch}: val accuracy {history.best_accuracy:.4f}, "
          f"final {evaluate(model, data.val)}")
    torch.save(model.state_dict(), OUT)


if __name__ == "__main__":
    main()
