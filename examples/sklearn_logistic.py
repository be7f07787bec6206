"""scikit-learn logistic regression, federated: 10 IID clients on breast_cancer, no PyTorch.

Each client holds a ``SklearnClient`` (a ``NumPyClient``) around its own ``LogisticRegression``; the
server averages ``coef``/``intercept`` with FedAvg and evaluates on its held-out split.
The same run from the command line: ``fedloom run --model sklearn:logistic --dataset breast_cancer
--clients 10 --partition iid --rounds 3``.

Run: python examples/sklearn_logistic.py
"""

from __future__ import annotations

from fedloom import FedAvg, load_dataset, partition, simulate
from fedloom.core.parameters import Parameters
from fedloom.sklearn import ModelSpec, SklearnClient, SklearnModel

data = load_dataset("breast_cancer", seed=0)  # bundled with scikit-learn: no download
parts = partition(data.y_train, 10, method="iid", seed=0)
# the model spec every party shares: the global classes come from the label space, not a client's rows
spec = ModelSpec("logistic", data.task, data.num_features, data.num_classes)


def client_fn(cid: str) -> SklearnClient:
    idx = parts[int(cid)]
    return SklearnClient(spec, data.x_train[idx], data.y_train[idx])


server_model = SklearnModel(spec)


def evaluate(parameters: Parameters) -> tuple[float, dict[str, float]]:
    server_model.set_arrays(parameters)
    return server_model.scores(data.x_test, data.y_test)  # log loss, accuracy and AUC


if __name__ == "__main__":
    strategy = FedAvg(evaluate_fn=evaluate, fraction_evaluate=0.0)
    result = simulate(client_fn, num_clients=10, strategy=strategy, rounds=3,
                      initial_parameters=Parameters(server_model.get_arrays()))
    print(f"final accuracy: {result.final['accuracy']:.3f} auc: {result.final['auc']:.3f}")
