"""Central differential privacy (DP-FedAvg) with a privacy budget.

The noise multiplier is calibrated so that 20 rounds, each sampling every one of 100 clients with
probability 0.2 (Poisson: 20 expected), spend at most epsilon = 4 (delta = 1e-5); epsilon is
reported after every round. The noise comes from the OS CSPRNG, so two runs differ.

    python examples/central_dp.py
"""

from fedloom import RunConfig, run_simulation
from fedloom.app.privacy import resolve_noise

cfg = RunConfig(dataset="digits", clients=100, fraction=0.2, rounds=20, lr=0.1, progress=False,
                dp="central", clip=0.5, target_epsilon=4.0, delta=1e-5)
print(f"calibrated noise multiplier: {resolve_noise(cfg):.3f}")
result = run_simulation(cfg)
for record in result.history[::5] + result.history[-1:]:
    m = record.metrics
    print(f"round {record.round:2d}  accuracy {m['accuracy']:.3f}  epsilon {m['epsilon']:.2f}")
