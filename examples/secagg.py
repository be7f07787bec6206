"""Secure aggregation (SecAgg+): the server learns only the sum of the client updates.

Same run twice on the same seed, once in the clear and once with SecAgg+; the accuracies match
(up to the quantization of the updates), while the server only ever saw masked vectors.

    python examples/secagg.py
"""

from fedloom import RunConfig, run_simulation

base = RunConfig(dataset="digits", clients=10, rounds=5, progress=False, seed=0)
plain = run_simulation(base)
secure = run_simulation(base.replace(secagg=True, secagg_neighbours=4, secagg_threshold=3))

print(f"plain FedAvg accuracy:   {plain.final['accuracy']:.4f}")
print(f"SecAgg+ FedAvg accuracy: {secure.final['accuracy']:.4f}")
last = secure.history[-1].metrics
print(f"last round: {last['train_secagg_survivors']:.0f} clients summed securely, "
      f"{last['bytes_up'] / 1e3:.0f} kB uploaded (plain: {plain.history[-1].metrics['bytes_up'] / 1e3:.0f} kB)")
