"""Direct LSTM: reads the last `SEQ_LEN` rows of the sequence features and outputs all 30 z targets.

Trained with Ray Train's `TorchTrainer` on CPU workers (data-parallel: each worker takes an
equal shard of every epoch, DDP averages the gradients), early stopping on the validation loss,
a checkpoint every few epochs so a restarted worker resumes. Inputs are standardised with the
training rows' statistics and clipped, so a listing spike cannot saturate the cell. Saved as a
torch state_dict (loaded with `weights_only=True`, which refuses anything but tensors and plain
values) plus a JSON of the shapes and statistics.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import engine.train as engine
from engine.layout import Checkpoints, RunOptions
from engine.progress import report
from market_data.timeframes import HORIZON
from training.models.direct_rows import DirectRows, sequence_features

LSTM_PARAMS: dict[str, Any] = {
    "hidden": 64,
    "epochs": 30,
    "patience": 4,
    "batch_size": 256,
    "learning_rate": 1e-3,
    "weight_decay": 1e-5,
}
INPUT_CLIP = 5.0
MODEL_FILE = "lstm.pt"
META_FILE = "lstm.json"
CHECKPOINT_FILE = "lstm_checkpoint.pt"
LSTM_CHECKPOINTS = Checkpoints(every=5)  # epochs


class SequenceNet(nn.Module):
    def __init__(self, n_inputs: int, hidden: int, horizon: int = HORIZON) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_inputs, hidden, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(seq)
        return self.head(out[:, -1, :])


def standardise(seq: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.clip((seq - mean) / std, -INPUT_CLIP, INPUT_CLIP).astype(np.float32)


def _loss(net: nn.Module, seq: np.ndarray, y: np.ndarray, batch: int = 4096) -> float:
    net.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(seq), batch):
            pred = net(torch.tensor(seq[i:i + batch]))
            total += float(nn.functional.huber_loss(pred, torch.tensor(y[i:i + batch]), reduction="sum"))
    net.train()
    return total / max(1, y.size)


def train_epochs(net: nn.Module, data: dict[str, np.ndarray], params: dict[str, Any], worker: tuple[int, int] = (0, 1),
                 state: dict[str, Any] | None = None,
                 on_epoch: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
    """The training loop shared by Ray workers and the local path; returns the final state
    (best weights and their epoch, epochs run, best validation loss). `state` resumes a
    checkpointed run; `worker` is this worker's rank and the number of workers. Without
    validation rows in `data` (a refit), every epoch runs and the last
    weights are the model."""
    module = net.module if hasattr(net, "module") else net
    rank, world = worker
    optimiser = torch.optim.AdamW(net.parameters(), lr=float(params["learning_rate"]),
                                  weight_decay=float(params["weight_decay"]))
    state = dict(state or {"epoch": 0, "best_loss": float("inf"), "bad_epochs": 0, "best": None, "best_epoch": 0})
    validated = "valid_seq" in data
    if "model" in state:
        module.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
    seq, y = data["seq"], data["y"]
    per_rank = len(seq) // world  # equal shards: DDP needs every rank to run the same batches
    batch = int(params["batch_size"])
    for epoch in range(int(state["epoch"]), int(params["epochs"])):
        order = np.random.default_rng(epoch).permutation(len(seq))[: per_rank * world][rank::world]
        for i in range(0, per_rank, batch):
            pick = np.sort(order[i:i + batch])
            optimiser.zero_grad()
            loss = nn.functional.huber_loss(net(torch.from_numpy(seq[pick])), torch.from_numpy(y[pick]))
            loss.backward()
            optimiser.step()
        valid = _loss(module, data["valid_seq"], data["valid_y"]) if validated else float("nan")
        if validated and valid < state["best_loss"]:
            state.update(best_loss=valid, bad_epochs=0, best_epoch=epoch + 1,
                         best={k: v.clone() for k, v in module.state_dict().items()})
        else:
            state["bad_epochs"] += 1
        state.update(epoch=epoch + 1, model=module.state_dict(), optimiser=optimiser.state_dict(), valid_loss=valid)
        stop = validated and state["bad_epochs"] >= int(params["patience"])
        report(epoch + 1, int(params["epochs"]), "epochs (early stopping may end sooner)")
        on_epoch({**state, "done": stop or epoch + 1 == int(params["epochs"])})
        if stop:
            break
    return state


def _save_checkpoint(state: dict[str, Any]) -> Callable[[Path], None]:
    return lambda folder: torch.save({k: v for k, v in state.items() if k != "done"}, folder / CHECKPOINT_FILE)


def _load_checkpoint(folder: Path) -> dict[str, Any]:
    return torch.load(folder / CHECKPOINT_FILE, weights_only=True)


def _train_loop_per_worker(config: dict[str, Any]) -> None:
    torch.set_num_threads(int(config["nthread"]))
    torch.manual_seed(0)
    data = engine.shared(config["data"])
    net = engine.prepared_torch_model(SequenceNet(data["seq"].shape[2], int(config["params"]["hidden"])))
    resumed = engine.resumed(_load_checkpoint)
    every = int(config["checkpoint_every"])
    # fault injection for tests: fail once, in the first attempt only, after a checkpoint
    fail_after = config.get("fail_once_after") if resumed is None else None

    def checkpoint(state: dict[str, Any]) -> None:
        if not (state["done"] or state["epoch"] % every == 0):
            return
        metrics = {"valid_loss": float(state["valid_loss"]), "best_loss": float(state["best_loss"]),
                   "epochs": int(state["epoch"]), "resumed_from": int(resumed["epoch"]) if resumed else 0}
        engine.report(metrics, _save_checkpoint(state))
        if fail_after is not None and state["epoch"] >= fail_after and not state["done"]:
            raise RuntimeError(f"injected worker failure after epoch {state['epoch']} (fault-tolerance test)")

    train_epochs(net, data, config["params"], (engine.rank(), engine.world_size()), resumed, checkpoint)


class LSTMDirect:
    name = "lstm"
    default_params = LSTM_PARAMS

    def __init__(self, net: SequenceNet, features: list[str], mean: np.ndarray, std: np.ndarray,
                 info: dict[str, Any]) -> None:
        self.net = net.eval()
        self.features = list(features)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.info = dict(info)

    @classmethod
    def input_features(cls, timeframe: str) -> list[str]:
        return sequence_features(timeframe)

    @classmethod
    def fit(cls, train: DirectRows, valid: DirectRows, features: list[str], params: dict[str, Any] | None,
            run: RunOptions, checkpoints: Checkpoints = LSTM_CHECKPOINTS) -> LSTMDirect:
        """Early stopping on `valid`; on Ray, checkpoints every `checkpoints.every` epochs."""
        params = {**LSTM_PARAMS, **(params or {})}
        flat = train.seq.reshape(-1, train.seq.shape[2]).astype(np.float64)
        mean, spread = flat.mean(axis=0).astype(np.float32), flat.std(axis=0)
        std = np.where(spread > 1e-8, spread, 1.0).astype(np.float32)
        data = {"seq": standardise(train.seq, mean, std), "y": train.y.astype(np.float32),
                "valid_seq": standardise(valid.seq, mean, std), "valid_y": valid.y.astype(np.float32)}
        state = engine.fit_where(run, _fit_here, lambda: _fit_with_ray(data, params, run, checkpoints), data, params)
        net = SequenceNet(train.seq.shape[2], int(params["hidden"]))
        net.load_state_dict(state["best"] if state.get("best") is not None else state["model"])
        info = {"params": params, "epochs": int(state["epoch"]), "best_valid_loss": float(state["best_loss"]),
                "best_epoch": int(state.get("best_epoch") or state["epoch"]),
                "resumed_from": int(state.get("resumed_from", 0))}
        return cls(net, features, mean, std, info)

    def refit(self, rows: DirectRows, run: RunOptions) -> LSTMDirect:
        """As many epochs as validation chose (its best), on inputs standardised as the first fit's
        were; in one Ray task on Ray (a fixed number of epochs needs no checkpointed early stopping)."""
        epochs = max(1, int(self.info.get("best_epoch", self.info["epochs"])))
        params = {**self.info["params"], "epochs": epochs}
        data = {"seq": standardise(rows.seq, self.mean, self.std), "y": rows.y.astype(np.float32)}
        state = engine.call(run, _fit_here, data, params)
        net = SequenceNet(rows.seq.shape[2], self.net.lstm.hidden_size)
        net.load_state_dict(state["model"])
        return LSTMDirect(net, self.features, self.mean, self.std,
                          {**self.info, "refit": {"rows": len(rows), "epochs": epochs}})

    def summary(self) -> str:
        return f"{self.info['epochs']} epochs, best valid loss {self.info['best_valid_loss']:.4f}"

    def predict(self, x: np.ndarray, seq: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net(torch.from_numpy(standardise(seq, self.mean, self.std))).numpy().astype(np.float64)

    def save(self, folder: Path) -> None:
        torch.save(self.net.state_dict(), folder / MODEL_FILE)
        (folder / META_FILE).write_text(json.dumps({
            "features": self.features, "mean": self.mean.tolist(), "std": self.std.tolist(),
            "hidden": self.net.lstm.hidden_size, "info": self.info}))

    @classmethod
    def load(cls, folder: Path) -> LSTMDirect:
        meta = json.loads((folder / META_FILE).read_text())
        net = SequenceNet(len(meta["features"]), int(meta["hidden"]))
        try:
            weights = torch.load(folder / MODEL_FILE, weights_only=True)
        except Exception as exc:  # torch's unpickler names the forbidden global
            raise ValueError(f"{folder / MODEL_FILE} is not a plain state_dict: {exc}") from exc
        net.load_state_dict(weights, strict=True)
        return cls(net, meta["features"], np.asarray(meta["mean"]), np.asarray(meta["std"]), meta.get("info", {}))


def _fit_here(data: dict[str, np.ndarray], params: dict[str, Any], threads: int = 0) -> dict[str, Any]:
    """`train_epochs` in this process from seed 0 (the plain fit, a refit, or the body of a
    one-task refit on Ray, which passes its CPUs as `threads`; 0: torch's default)."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    return train_epochs(SequenceNet(data["seq"].shape[2], int(params["hidden"])), data, params)


def _fit_with_ray(data: dict[str, np.ndarray], params: dict[str, Any], run: RunOptions,
                  checkpoints: Checkpoints) -> dict[str, Any]:
    state, metrics = engine.fit_torch(_train_loop_per_worker,
                                      {"params": params, "checkpoint_every": checkpoints.every,
                                       "fail_once_after": checkpoints.fail_once_after},
                                      data, run, _load_checkpoint, "LSTM")
    state["resumed_from"] = int(metrics.get("resumed_from", 0))
    return state
