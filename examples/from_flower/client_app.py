"""Flower's ``client_app.py``, ported to fedloom line by line.

Flower                                        fedloom
--------------------------------------------  ---------------------------------------------------
class FlowerClient(NumPyClient)               class FlowerClient(Client)
fit(parameters: NDArrays, config)             fit(parameters: Parameters, config): the same body;
  -> (NDArrays, num_examples, metrics)          the same tuple may be returned (converted once)
evaluate(...) -> (loss, num_examples, metrics) the same
def client_fn(context: Context)               def client_fn(cid: str, num_clients: int)
  context.node_config["partition-id"]           int(cid) (in deployment: the client's --name)
  context.run_config["local-epochs"]            config["local_epochs"] each round (from the server)
app = ClientApp(client_fn)                    client_fn = "client_app:client_fn" in fedloom.toml
"""

from __future__ import annotations

import torch
from task import Net, get_weights, load_data, set_weights, test, train

from fedloom import Client


class FlowerClient(Client):
    def __init__(self, net, trainloader, valloader) -> None:  # noqa: ANN001
        self.net = net
        self.trainloader = trainloader
        self.valloader = valloader

    def get_parameters(self, config):  # noqa: ANN001, ANN201
        return get_weights(self.net)

    def fit(self, parameters, config):  # noqa: ANN001, ANN201
        set_weights(self.net, parameters)
        torch.manual_seed(int(config["seed"]))  # fedloom's per-task seed: the same numbers in any process
        train_loss = train(self.net, self.trainloader, int(config["local_epochs"]), float(config["lr"]))
        return get_weights(self.net), len(self.trainloader.dataset), {"train_loss": train_loss}

    def evaluate(self, parameters, config):  # noqa: ANN001, ANN201
        set_weights(self.net, parameters)
        loss, accuracy = test(self.net, self.valloader)
        return loss, len(self.valloader.dataset), {"accuracy": accuracy}


def client_fn(cid: str, num_clients: int) -> Client:
    """Build the client of partition ``cid`` (fedloom passes the id and, as it is asked for, num_clients)."""
    trainloader, valloader = load_data(int(cid), num_clients)
    return FlowerClient(Net(), trainloader, valloader)
