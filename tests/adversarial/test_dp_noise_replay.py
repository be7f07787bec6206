"""Attacker: a client that knows the run seed replays the server's noise and subtracts it (issue 10, finding 1).

Every task carries ``seed = crc32(f"{seed}:{round}:{cid}")``, so one sampled client recovers the run
seed with a small search. The server's noise used to come from ``ServerState.rng = default_rng(seed)``:
replaying that generator gave the noise exactly, and released aggregate minus replayed noise was
the noise-free mean of the clipped updates. Now the noise comes from the OS CSPRNG: the replayed
"noise" is unrelated to the real one, and subtracting it is no better than not subtracting at all.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from fedloom.backends import InlinePool
from fedloom.core.client import Client
from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitRes
from fedloom.engine import FederatedLoop, RoundRecord
from fedloom.privacy.dp import CentralDP, update_noise_multiplier
from fedloom.strategies import FedAvg

DIM, CLIENTS, CLIP, Z = 4096, 8, 1.0, 1.0
SECRET_SEED = 7321  # the operator never published it


class Delta(Client):
    """Returns the global model plus a fixed delta; remembers the task configs it received."""

    def __init__(self, delta: np.ndarray, seen: list[Config]) -> None:
        self.delta, self.seen = delta, seen

    def get_parameters(self, config: Config) -> Parameters:
        return Parameters({"w": np.zeros(DIM)})

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        self.seen.append(dict(config))
        return FitRes(Parameters({"w": parameters["w"] + self.delta}), 10)

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return EvaluateRes(0.0, 1, {})


def _deltas(n: int = CLIENTS, dim: int = DIM) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.normal(0, 0.05, dim) for _ in range(n)]  # norms ~3.2: all clipped to 1


def _clipped_mean(deltas: list[np.ndarray]) -> np.ndarray:
    return sum(d * min(1.0, CLIP / np.linalg.norm(d)) for d in deltas) / len(deltas)


class Snapshots:
    """Observer: the global model after every round (what every client receives next round)."""

    def __init__(self) -> None:
        self.models: list[np.ndarray] = []

    def on_round_end(self, record: RoundRecord, state) -> None:
        self.models.append(state.parameters["w"].astype(np.float64).copy())


def _run(rounds: int, *, seed: int = SECRET_SEED, adaptive: bool = False, deltas=None, cohort: int = CLIENTS):
    deltas = deltas if deltas is not None else _deltas()
    seen: list[Config] = []
    dp = CentralDP(FedAvg(), noise_multiplier=Z, clip=CLIP, adaptive=adaptive)
    snaps = Snapshots()
    pool = InlinePool(lambda cid: Delta(deltas[int(cid)], seen), cohort)
    result = FederatedLoop(dp, pool, num_rounds=rounds, seed=seed, observers=[snaps]).run(
        Parameters({"w": np.zeros(deltas[0].size)}))
    return result, [np.zeros(deltas[0].size), *snaps.models], seen


def _recover_run_seed(task_seed: int, rnd: int, cid: str, search: int = 20_000) -> int:
    """The attacker's 32-bit search, shortened: the run seed whose task seed this client received."""
    for guess in range(search):
        if zlib.crc32(f"{guess}:{rnd}:{cid}".encode()) & 0x7FFFFFFF == task_seed:
            return guess
    raise AssertionError("seed not found")


def test_a_client_that_replays_the_seeded_generator_cannot_subtract_the_central_noise():
    rounds = 2
    deltas = _deltas()
    result, models, seen = _run(rounds, deltas=deltas)
    # The attacker is client 0: it recovers the run seed from the task seed it was sent.
    seed = _recover_run_seed(int(seen[0]["seed"]), int(seen[0]["round"]), "0")
    assert seed == SECRET_SEED
    # ... and replays the server's generator as it used to draw: no sampling draws at fraction 1,
    # then one N(0, (z C)^2) vector per round, added to the sum and divided by the cohort.
    replay = np.random.default_rng(seed)
    truth = _clipped_mean(deltas)
    replay_errors, naive_errors, correlations = [], [], []
    for rnd in range(1, rounds + 1):
        released = models[rnd] - models[rnd - 1]
        guess = replay.normal(0.0, Z * CLIP, size=DIM) / CLIENTS
        estimate = released - guess
        replay_errors.append(np.linalg.norm(estimate - truth))
        naive_errors.append(np.linalg.norm(released - truth))  # not subtracting anything: the noise itself
        correlations.append(np.corrcoef(guess, released - truth)[0, 1])
    # The noise is real (the naive error is the noise, ~ z C sqrt(d) / m)...
    assert min(naive_errors) > 0.5 * Z * CLIP * math.sqrt(DIM) / CLIENTS
    # ... and the replay is no better than chance: unrelated to the noise, so subtracting it only adds
    # a second noise vector (error ~ sqrt(2) x naive). Before the fix: the error was ~1e-7 (exact).
    assert max(abs(c) for c in correlations) < 0.1
    assert min(r / n for r, n in zip(replay_errors, naive_errors, strict=True)) > 1.2


def test_two_runs_with_the_same_seed_add_different_noise():
    deltas = _deltas()
    first, models_a, _ = _run(1, deltas=deltas)
    second, models_b, _ = _run(1, deltas=deltas)
    truth = _clipped_mean(deltas)
    noise_a, noise_b = models_a[1] - truth, models_b[1] - truth
    assert np.linalg.norm(noise_a) > 0.5 * Z * CLIP * math.sqrt(DIM) / CLIENTS
    assert abs(np.corrcoef(noise_a, noise_b)[0, 1]) < 0.1  # before the fix: identical (correlation 1)


def test_the_noise_on_the_adaptive_clipping_count_cannot_be_replayed():
    # 40 clients, 20 of them within the clip norm; the released clip norm reveals the noised count.
    cohort, rounds, dim = 40, 30, 8
    rng = np.random.default_rng(3)
    deltas = [v / np.linalg.norm(v) * (0.5 if i % 2 else 2.0) for i, v in enumerate(rng.normal(size=(cohort, dim)))]
    count_stddev = max(cohort / 20, Z)  # CentralDP's default
    z_delta = update_noise_multiplier(Z, count_stddev)
    seen: list[Config] = []
    dp = CentralDP(FedAvg(), noise_multiplier=Z, clip=1.0, adaptive=True, clip_lr=0.2)
    clips: list[float] = []

    class Clips:
        def on_round_end(self, record: RoundRecord, state) -> None:
            clips.append(state.components["central_dp"].clip)

    # Reset the model every round so that every delta's norm stays as chosen.
    class Reset:
        def on_round_end(self, record: RoundRecord, state) -> None:
            state.parameters = Parameters({"w": np.zeros(dim)})

    pool = InlinePool(lambda cid: Delta(deltas[int(cid)], seen), cohort)
    FederatedLoop(dp, pool, num_rounds=rounds, seed=SECRET_SEED, observers=[Clips(), Reset()]).run(
        Parameters({"w": np.zeros(dim)}))
    replay = np.random.default_rng(SECRET_SEED)
    previous, replay_err, naive_err = 1.0, [], []
    for clip in clips:
        noisy_fraction = 0.5 - math.log(clip / previous) / 0.2  # inverts C' = C exp(-lr (b - 1/2))
        true_unclipped = sum(np.linalg.norm(d) <= previous for d in deltas)
        replay.normal(0.0, z_delta * previous, size=dim)  # the update noise came first
        guessed_noise = replay.normal(0.0, count_stddev)
        noisy_count = (noisy_fraction - 0.5) * cohort + cohort / 2  # unclipped + noise
        replay_err.append(abs(noisy_count - guessed_noise - true_unclipped))
        naive_err.append(abs(noisy_count - true_unclipped))
        previous = clip
    assert np.mean(naive_err) > 0.5 * count_stddev  # the count is noised...
    # ... and replaying the seeded generator does not remove that noise (before the fix: error ~1e-12).
    assert np.mean(replay_err) > 0.8 * np.mean(naive_err)
