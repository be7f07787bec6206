"""Receipts: a forged or altered receipt fails the client's check; over gRPC an honest deployment's
ledger verifies, clients get receipts for their updates and a client whose update failed sees why."""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import numpy as np
import pytest

from fedloom import RunConfig
from fedloom.app.build import build_simulation
from fedloom.core import Client, FitRes, Parameters
from fedloom.ledger.chain import updates_root, verify_ledger
from fedloom.ledger.hashing import result_digest
from fedloom.ledger.keys import generate_key, load_public_key, write_key_pair
from fedloom.ledger.receipts import ReceiptBook, ReceiptError, check_receipt, encode_receipt, make_receipt


def _entry(key):
    res = {c: FitRes(Parameters({"w": np.full(3, i, np.float32)}), 10 + i) for i, c in enumerate("abc")}
    updates = [{"client": c, "update": result_digest(r), "examples": r.num_examples} for c, r in res.items()]
    entry = {"round": 1, "index": 0, "updates": updates, "tree_size": 3, "merkle_root": updates_root(updates),
             "clients": ["a", "b"], "failures": [{"client": "c", "reason": "invalid update: NaN"}]}
    return entry, res


def test_a_genuine_receipt_passes_and_forged_or_altered_ones_fail(tmp_path: Path):
    key = generate_key()
    pub = key.public_key()
    entry, res = _entry(key)
    receipt = make_receipt(entry, "a", key)
    digest = result_digest(res["a"])
    assert check_receipt(receipt, pub, client="a", digest=digest, examples=10)["status"] == "counted"
    forged = make_receipt(entry, "a", generate_key())  # signed by someone else
    with pytest.raises(ReceiptError, match="signature"):
        check_receipt(forged, pub, client="a", digest=digest)
    altered = copy.deepcopy(receipt)
    altered["leaf"]["examples"] = 11
    with pytest.raises(ReceiptError, match="signature"):
        check_receipt(altered, pub, client="a", digest=digest)
    with pytest.raises(ReceiptError, match="this client sent"):  # a genuine receipt about another update
        check_receipt(receipt, pub, client="a", digest=result_digest(res["b"]))
    with pytest.raises(ReceiptError, match="for client"):
        check_receipt(receipt, pub, client="b")
    dropped = check_receipt(make_receipt(entry, "c", key), pub, client="c", digest=result_digest(res["c"]))
    assert dropped["status"] == "received" and "NaN" in dropped["reason"]
    book = ReceiptBook(tmp_path / "receipts", pub, "a")
    book.record_sent({"round": 1}, res["a"])
    assert book.receive(encode_receipt(forged)) is None and book.rejected
    assert book.receive(encode_receipt(receipt)) is not None
    assert (tmp_path / "receipts" / "round-1.json").exists()
    assert list((tmp_path / "receipts" / "rejected").iterdir())


class FailsOnce(Client):
    """The experiment's client, except its task of round 2 raises."""

    def __init__(self, honest: Client) -> None:
        self.honest = honest

    def get_parameters(self, config):
        return self.honest.get_parameters(config)

    def fit(self, parameters, config):
        if int(config.get("round", 0)) == 2:
            raise RuntimeError("disk full")
        return self.honest.fit(parameters, config)

    def evaluate(self, parameters, config):
        return self.honest.evaluate(parameters, config)


@pytest.mark.slow
def test_an_honest_deployment_over_grpc_verifies_and_clients_check_their_receipts(tmp_path: Path):
    from fedloom.net import ClientRuntime
    from fedloom.net.config import ServerConfig
    from fedloom.net.deploy import run_server

    keys = tmp_path / "keys"
    write_key_pair(keys)
    cfg = RunConfig(dataset="iris", model="linear", clients=3, rounds=3, partition="iid", client_test_fraction=0.0,
                    progress=False, ledger_key=str(keys / "ledger.key"))
    out = tmp_path / "server"
    scfg = ServerConfig(address="127.0.0.1:0", checkpoint_dir=str(out), wait_clients_s=60.0, heartbeat_s=0.5,
                        heartbeat_timeout_s=10.0)
    sim = build_simulation(cfg)
    clients = [sim.client_fn(str(i)) for i in range(3)]
    clients[2] = FailsOnce(clients[2])
    port: list[int] = []
    ready = threading.Event()
    outcome: dict = {}

    def server() -> None:
        try:
            outcome["result"] = run_server(cfg, scfg, insecure=True, on_listen=lambda p: (port.append(p), ready.set()))
        except BaseException as exc:  # surfaced below
            outcome["error"] = exc
            ready.set()

    thread = threading.Thread(target=server, daemon=True)
    thread.start()
    assert ready.wait(60) and port, outcome.get("error")
    pub = load_public_key(keys / "ledger.pub")
    books = [ReceiptBook(tmp_path / f"client{i}" / "receipts", pub, str(i)) for i in range(3)]
    runtimes = [ClientRuntime(c, server=f"127.0.0.1:{port[0]}", name=str(i), heartbeat_s=0.5, server_timeout_s=10.0,
                              backoff_initial_s=0.05, backoff_max_s=0.2, receipts=books[i])
                for i, c in enumerate(clients)]
    workers = [threading.Thread(target=rt.run, daemon=True) for rt in runtimes]
    for w in workers:
        w.start()
    thread.join(120)
    for rt in runtimes:
        rt.stop()
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    report = verify_ledger(out, public_key=keys / "ledger.pub")
    assert report.rounds == [1, 2, 3] and report.final_model is not None
    for book in books[:2]:  # receipts of rounds 1 and 2 came with the tasks of rounds 2 and 3
        assert not book.rejected
        assert [r["round"] for r in book.accepted] == [1, 2]
        assert all(r["status"] == "counted" for r in book.accepted)
    flaky = {r["round"]: r for r in books[2].accepted}
    assert flaky[1]["status"] == "counted"
    assert flaky[2]["status"] == "dropped" and "disk full" in flaky[2]["reason"]
    assert (tmp_path / "client2" / "receipts" / "round-2.json").exists()
