"""The vectorized backend's implementation (see :mod:`fedloom.backends.vectorized`, which loads it lazily)."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from fedloom.backends.inline import InlinePool
from fedloom.core.client import Client, ClientFn
from fedloom.core.parameters import Parameters, ParamSpec
from fedloom.core.pool import PoolResult, payload_nbytes
from fedloom.core.strategy import Failure
from fedloom.core.trainer import describe_trainer
from fedloom.core.types import ClientId, EvaluateIns, EvaluateRes, FitIns, FitRes
from fedloom.torch import client as torch_client
from fedloom.torch.client import TorchClient
from fedloom.torch.training import TensorData

__all__ = ["VectorizedPool", "VectorizedFallbackWarning", "why_not_vectorizable"]

log = logging.getLogger(__name__)


class VectorizedFallbackWarning(UserWarning):
    """The vectorized backend runs some clients inline instead (the message says why)."""


def why_not_vectorizable(client: Client, ins: FitIns | None = None) -> str | None:
    """Why ``client`` cannot be trained in a vectorized cohort (for task ``ins``), or ``None`` if it can.

    Without ``ins`` the trainer is judged as configured; a trainer that chooses per task (the
    default ``auto``) is then judged by each task, in :meth:`VectorizedPool.fit`.
    """
    reason = _why_not_type(client)
    if reason is not None or not isinstance(client, TorchClient):
        return reason
    return _why_not_trainer(client, ins) or _why_not_structure(client)


def _why_not_type(client: Client) -> str | None:
    if type(client) is not TorchClient:
        if isinstance(client, TorchClient):
            return (f"client type {type(client).__name__} is not a plain TorchClient (a subclass may change fit; "
                    "give a TorchClient a trainer= instead)")
        return f"client type {type(client).__name__} is not a plain TorchClient (its fit may differ)"
    return None


def _why_not_trainer(client: TorchClient, ins: FitIns | None) -> str | None:
    """The trainer that runs the task must be plain SGD epochs (``trainer.vectorizable``)."""
    trainer = client.trainer if ins is None else client.trainer_for(ins)
    if ins is None and hasattr(trainer, "for_task"):
        return None  # decided per task
    if getattr(trainer, "vectorizable", False) is True:
        return None
    reason = f"the trainer {describe_trainer(trainer)} is not plain SGD epochs"
    why = getattr(client.trainer, "why", None)
    if ins is not None and trainer is not client.trainer and callable(why):
        reason += f"; {type(client.trainer).__name__} chose it because {why(ins)}"
    return reason


def _why_not_structure(client: TorchClient) -> str | None:
    """Data, layers, loss and optimizer: what one cohort forward/backward pass must support."""
    if not isinstance(client.train_data, TensorData):
        return "training data is a DataLoader, not in-memory tensors"
    for name, module in client.model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return f"layer {name!r} is BatchNorm, which uses batch statistics and running buffers in train mode"
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0:
            return f"layer {name!r} is Dropout, whose random masks would differ from sequential training"
    if _per_example_loss(client.loss_fn) is None:
        return "the loss function is not the built-in cross-entropy or MSE (per-example losses are needed)"
    probe = client.optimizer_fn([nn.Parameter(torch.zeros(1))], 0.1)
    group = probe.param_groups[0]
    if type(probe) is not torch.optim.SGD or any(
        group.get(k) for k in ("momentum", "weight_decay", "nesterov", "maximize")
    ):
        return f"optimizer {type(probe).__name__} with {_describe(group)} is not plain SGD"
    return None


def _describe(group: dict) -> str:
    keys = ("momentum", "weight_decay", "nesterov", "maximize")
    return ", ".join(f"{k}={group[k]}" for k in keys if k in group) or "its settings"


def _per_example_loss(loss_fn: object):  # noqa: ANN202 - (output, target) -> per-example losses
    """The per-example (unreduced) form of a supported loss, else ``None``."""
    if type(loss_fn) is nn.CrossEntropyLoss and loss_fn.reduction == "mean":
        if loss_fn.weight is not None or loss_fn.label_smoothing != 0.0:
            return None
        ignore = loss_fn.ignore_index

        def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            c, b = y.shape[:2]
            flat = nn.functional.cross_entropy(
                out.reshape(c * b, *out.shape[2:]), y.reshape(c * b, *y.shape[2:]),
                reduction="none", ignore_index=ignore,
            )
            return flat.reshape(c, b, -1).mean(-1)

        return cross_entropy
    if loss_fn is torch_client._mse:

        def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            per = nn.functional.mse_loss(out.reshape(y.shape), y, reduction="none")
            return per.reshape(y.shape[0], y.shape[1], -1).mean(-1)

        return mse
    return None


class VectorizedPool:
    """Train each round's cohort of clients at once with ``torch.func``; evaluate inline.

    Args:
        client_fn: Factory ``cid -> Client``; vectorized clients must be plain ``TorchClient``.
        num_clients: Clients ``"0" .. str(num_clients - 1)`` exist.
        max_cohort_bytes: Upper bound on the stacked parameters of one cohort; larger rounds are
            trained in several cohorts.
    """

    def __init__(self, client_fn: ClientFn, num_clients: int, *, max_cohort_bytes: int = 256 * 2**20) -> None:
        self.client_fn = client_fn
        self.inline = InlinePool(client_fn, num_clients)
        self.max_cohort_bytes = max_cohort_bytes
        self.fallback_reason: str | None = None
        self._verdict: tuple[tuple, str | None] | None = None

    def _why_not(self, client: Client, ins: FitIns) -> str | None:
        """:func:`why_not_vectorizable` for this task; the structural checks are remembered for the
        last kind of client seen (they build a probe optimizer, too slow to repeat for thousands of
        identical clients). The trainer is checked for every task: it may choose per task."""
        reason = _why_not_type(client)
        if reason is not None or not isinstance(client, TorchClient):
            return reason
        reason = _why_not_trainer(client, ins)
        if reason is not None:
            return reason
        loss = client.loss_fn
        loss_key = (type(loss), getattr(loss, "reduction", None), getattr(loss, "label_smoothing", None),
                    getattr(loss, "weight", None) is None, loss if callable(loss) and not isinstance(loss, nn.Module)
                    else None)
        objects = (type(client.train_data), client.model, client.optimizer_fn)
        if self._verdict is not None:
            (seen_objects, seen_loss), reason = self._verdict
            if all(a is b for a, b in zip(objects, seen_objects, strict=True)) and loss_key == seen_loss:
                return reason
        reason = _why_not_structure(client)
        self._verdict = ((objects, loss_key), reason)
        return reason

    def available(self) -> list[ClientId]:
        return self.inline.available()

    def _fall_back(self, reason: str) -> None:
        if self.fallback_reason is None:
            self.fallback_reason = reason
            message = f"vectorized backend: {reason}; running these clients inline (one by one) instead"
            log.warning(message)
            warnings.warn(message, VectorizedFallbackWarning, stacklevel=3)

    def fit(
        self, tasks: Sequence[tuple[ClientId, FitIns]], *, expected: ParamSpec | None, timeout: float | None = None
    ) -> PoolResult[FitRes]:
        out: PoolResult[FitRes] = PoolResult()
        ready: list[tuple[ClientId, FitIns, TorchClient]] = []
        slow: list[tuple[ClientId, FitIns]] = []
        for cid, ins in tasks:
            try:
                client = self.client_fn(cid)
            except Exception as exc:
                out.failures.append(Failure(cid, f"{type(exc).__name__}: {exc}"))
                continue
            reason = self._why_not(client, ins)
            if reason is not None:
                self._fall_back(reason)
                slow.append((cid, ins))
            else:
                ready.append((cid, ins, client))  # type: ignore[arg-type]
        results: dict[ClientId, FitRes] = {}
        for cohort in self._cohorts(ready):
            try:
                for cid, res in zip([c for c, _, _ in cohort], _train_cohort(cohort), strict=True):
                    results[cid] = res
            except Exception as exc:  # e.g. a model vmap cannot trace: run this cohort inline
                self._fall_back(f"the model cannot be vectorized ({type(exc).__name__}: {exc})")
                slow.extend((cid, ins) for cid, ins, _ in cohort)
        if slow:
            inline = self.inline.fit(slow, expected=expected, timeout=timeout)
            results.update(inline.results)
            out.failures.extend(inline.failures)
        for cid, ins in tasks:  # results in task order, whichever path ran them
            out.stats.bytes_down += payload_nbytes(ins)  # sent to every client, as the inline pool counts it
            if cid in results:
                out.stats.bytes_up += payload_nbytes(results[cid])
                out.results.append((cid, results[cid]))
        return out

    def _cohorts(
        self, ready: list[tuple[ClientId, FitIns, TorchClient]]
    ) -> list[list[tuple[ClientId, FitIns, TorchClient]]]:
        """Group by what must be equal within a cohort (batch size, device, loss), then chunk."""
        groups: dict[tuple, list[tuple[ClientId, FitIns, TorchClient]]] = {}
        for item in ready:
            _, ins, client = item
            key = (
                int(ins.config.get("batch_size", client.batch_size)),
                str(client.device),
                type(client.loss_fn).__name__,
                type(client.model).__name__,
            )
            groups.setdefault(key, []).append(item)
        cohorts: list[list[tuple[ClientId, FitIns, TorchClient]]] = []
        for items in groups.values():
            per_client = max(1, items[0][1].parameters.nbytes * 4)  # params, grads, update, copy
            size = max(1, self.max_cohort_bytes // per_client)
            cohorts.extend(items[i : i + size] for i in range(0, len(items), size))
        return cohorts

    def evaluate(
        self, tasks: Sequence[tuple[ClientId, EvaluateIns]], *, timeout: float | None = None
    ) -> PoolResult[EvaluateRes]:
        return self.inline.evaluate(tasks, timeout=timeout)

    def close(self) -> None:
        self.inline.close()


def _batch_plan(
    sizes: list[int], seeds: list[int], epochs: list[int], batch_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row indices ``[steps, clients, batch]`` into the concatenated data, their mask, and which
    steps belong to each client's last epoch (``[steps, clients]``), in TorchClient's batch order."""
    plans: list[torch.Tensor] = []
    lasts: list[int] = []
    offset = 0
    for n, seed, num_epochs in zip(sizes, seeds, epochs, strict=True):
        k = math.ceil(n / batch_size)
        generator = torch.Generator().manual_seed(seed)
        rows = []
        for _ in range(num_epochs):
            order = torch.randperm(n, generator=generator) + offset
            padded = torch.full((k * batch_size,), -1, dtype=torch.long)
            padded[:n] = order
            rows.append(padded.view(k, batch_size))
        plans.append(torch.cat(rows) if rows else torch.empty(0, batch_size, dtype=torch.long))
        lasts.append(k)
        offset += n
    steps = max((p.shape[0] for p in plans), default=0)
    index = torch.full((steps, len(sizes), batch_size), -1, dtype=torch.long)
    last = torch.zeros(steps, len(sizes), dtype=torch.bool)
    for i, plan in enumerate(plans):
        index[: plan.shape[0], i] = plan
        last[plan.shape[0] - lasts[i] : plan.shape[0], i] = True
    mask = index >= 0
    return index.clamp(min=0), mask, last


def _train_cohort(cohort: list[tuple[ClientId, FitIns, TorchClient]]) -> list[FitRes]:
    """Train every client of ``cohort`` for its local epochs at once; returns one FitRes each."""
    first = cohort[0][2]
    template, device = first.model, first.device
    per_example = _per_example_loss(first.loss_fn)
    assert per_example is not None
    names = list(cohort[0][1].parameters)
    trainable = {n for n, p in template.named_parameters() if p.requires_grad}
    batch_size = int(cohort[0][1].config.get("batch_size", first.batch_size))
    data = [c.train_data for _, _, c in cohort]
    sizes = [len(d) for d in data]  # type: ignore[arg-type]
    seeds = [int(ins.config.get("seed", 0)) for _, ins, _ in cohort]
    epochs = [int(ins.config.get("local_epochs", c.local_epochs)) for _, ins, c in cohort]
    lrs = torch.tensor([float(ins.config.get("lr", c.lr)) for _, ins, c in cohort], device=device)
    index, mask, last = _batch_plan(sizes, seeds, epochs, batch_size)
    x_all = torch.cat([d.x for d in data]).to(device)  # type: ignore[union-attr]
    y_all = torch.cat([d.y for d in data]).to(device)  # type: ignore[union-attr]
    index, mask, last = index.to(device), mask.to(device), last.to(device)

    shared = all(ins.parameters is cohort[0][1].parameters for _, ins, _ in cohort)
    state: dict[str, torch.Tensor] = {}
    for name in names:
        if shared:
            base = torch.from_numpy(np.asarray(cohort[0][1].parameters[name])).to(device)
            stacked = base.unsqueeze(0).repeat(len(cohort), *([1] * base.dim()))
        else:
            stacked = torch.from_numpy(np.stack([ins.parameters[name] for _, ins, _ in cohort])).to(device)
        state[name] = stacked.requires_grad_(name in trainable)
    train_names = [n for n in names if n in trainable]

    def forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(template, params, (x,))

    batched = vmap(forward)
    template.train()
    loss_sum = torch.zeros(len(cohort), device=device)
    count = torch.zeros(len(cohort), device=device)
    for step in range(index.shape[0]):
        rows, real = index[step], mask[step].to(x_all.dtype)
        out = batched(state, x_all[rows])
        losses = per_example(out, y_all[rows])
        n_real = real.sum(1)
        per_client = (losses * real).sum(1) / n_real.clamp(min=1)
        grads = torch.autograd.grad(per_client.sum(), [state[n] for n in train_names], allow_unused=True)
        with torch.no_grad():
            for name, grad in zip(train_names, grads, strict=True):
                if grad is not None:
                    param = state[name]
                    param.sub_(lrs.view(-1, *([1] * (param.dim() - 1))) * grad)
            in_last = last[step].to(loss_sum.dtype)
            loss_sum += per_client.detach() * n_real * in_last
            count += n_real * in_last
    arrays = {n: state[n].detach().cpu().numpy() for n in names}
    train_loss = (loss_sum / count.clamp(min=1)).cpu().tolist()
    return [
        FitRes(Parameters({n: arrays[n][i] for n in names}), sizes[i], {"train_loss": train_loss[i]})
        for i in range(len(cohort))
    ]
