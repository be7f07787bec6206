"""Sample-level DP-SGD inside each client's local training, through Opacus.

Every client clips per-example gradients and adds noise (Opacus ``make_private``); each reports the
epsilon its own training examples have spent so far.

    python examples/dp_sgd_opacus.py
"""

from fedloom import RunConfig, run_simulation

cfg = RunConfig(dataset="digits", clients=5, rounds=5, lr=0.2, batch_size=32, progress=False,
                dp_sgd=True, dp_sgd_noise_multiplier=1.0, dp_sgd_max_grad_norm=1.0)
result = run_simulation(cfg)
for record in result.history:
    m = record.metrics
    print(f"round {record.round}  accuracy {m['accuracy']:.3f}  per-client epsilon {m['train_dp_sgd_epsilon']:.2f}")
