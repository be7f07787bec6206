"""The ``fedloom`` command line: ``run`` experiments, ``report`` on them, inspect ``data`` splits.

Every field of :class:`~fedloom.config.RunConfig` is a flag of ``fedloom run``; a TOML file given
with ``--config`` sets defaults that flags override.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from fedloom.app.config import config_fields, load_config, section_of
from fedloom.errors import FedloomError

__all__ = ["main", "cli"]


class _FieldOption(click.Option):
    """A flag of a config field whose help lists the registry's names when ``--help`` is shown, so
    building the CLI imports no feature and the list never drifts from what is registered."""

    def __init__(self, *args: Any, choices: Callable[[], Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._choices = choices

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        if self._choices is not None and "{choices}" in (self.help or ""):
            try:
                names = ", ".join(self._choices())
            except Exception as exc:  # a broken plugin must not hide the help
                names = f"(could not list: {exc})"
            self.help = (self.help or "").replace("{choices}", names)
        return super().get_help_record(ctx)


def _config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add one click option per config field (defaults None: only given flags override).

    The flag is ``--`` + the field name with dashes (or the field's ``flag`` metadata); the help text
    is the field's, plus its choices (from the feature's registry) and its default.
    """
    for fld in reversed(config_fields()):
        flag = fld.metadata.get("flag") or "--" + fld.name.replace("_", "-")
        choices = fld.metadata.get("choices")
        help_text = fld.metadata.get("help", "")
        if choices is not None:
            help_text += " Choices: {choices}."
        help_text += f" [default: {fld.default!r}; TOML [{section_of(fld.name)}] {fld.name}]"
        if isinstance(fld.default, bool):
            decl = f"{flag}/--no-{flag[2:]}"
            func = click.option(decl, fld.name, default=None, help=help_text, cls=_FieldOption,
                                choices=choices)(func)
        else:
            func = click.option(flag, fld.name, type=type(fld.default), default=None, help=help_text,
                                cls=_FieldOption, choices=choices)(func)
    return func


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fedloom")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown (not installed)"


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        logging.getLogger().setLevel(logging.INFO)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more detail (warnings from clients, ...); also accepted "
              "after the command (fedloom run -v).")
@click.version_option(version=_version(), prog_name="fedloom", message="%(prog)s %(version)s")
def cli(verbose: bool) -> None:
    """fedloom: federated learning for PyTorch.

    \b
    fedloom run                 the default experiment (digits, 10 non-IID clients, FedAvg)
    fedloom run --config exp.toml --rounds 50
    fedloom report runs/<dir>   re-draw plots and the HTML report of a run
    fedloom data --partition dirichlet --alpha 0.1   show who holds which labels
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")


@cli.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML file with config fields; flags override it.")
@_config_options
def run_cmd(config_path: str | None, **overrides: Any) -> None:
    """Run a federated simulation and write its run directory.

    Writes summary.json, metrics.sqlite, model.safetensors, plots (PNG) and report.html to --out
    (default: a new folder under runs/), prints a summary table and the final accuracy.
    """
    from fedloom.runs import summary_table
    from fedloom.runs.runner import execute_run

    cfg = _load_run_config(config_path, overrides)
    _robustness_notice(cfg)
    summary, out = execute_run(cfg)
    summary_table(summary)
    final = summary["final"]
    if "accuracy" in final:
        click.echo(f"final accuracy: {final['accuracy']:.4f}")
    elif "fed_accuracy" in final:  # e.g. HE runs: the server cannot evaluate centrally
        click.echo(f"final federated accuracy: {final['fed_accuracy']:.4f}")
    if "loss" in final:
        click.echo(f"final loss: {final['loss']:.4f}")
    click.echo(f"run directory: {out}")


def _load_run_config(config_path: str | None, overrides: dict[str, Any]) -> Any:
    """The config of ``fedloom run``/``data``: a deployment TOML simulates its experiment, ignoring its
    [server] and [client] tables (with one line saying so); the file's folder is importable (module:factory)."""
    from fedloom.app.config import read_toml
    from fedloom.core.registry import add_import_root

    if config_path is not None:  # module:factory names may live beside the config file
        add_import_root(Path(config_path).resolve().parent)
    raw = read_toml(config_path) if config_path is not None else {}
    ignored = tuple(name for name in ("server", "client") if isinstance(raw.get(name), dict))
    if ignored:
        click.echo(f"{config_path}: simulating the experiment; ignoring the deployment-only "
                   f"{' and '.join(f'[{t}]' for t in ignored)} table{'s' if len(ignored) > 1 else ''}", err=True)
    return load_config(config_path, overrides, ignore_tables=ignored)


def _robustness_notice(cfg: Any) -> None:
    """Say which fraction of attackers the aggregator tolerates (with a robust aggregator or a simulated
    attack), and warn when the simulated attackers are more than that."""
    from fedloom.app.rules import cohort_size

    alg, scen = cfg.algorithm, cfg.scenarios
    name = alg.effective_aggregator()
    attacked = scen.attack != "none" and scen.attackers > 0
    if name == "mean" and not attacked:
        return
    from fedloom.scenarios.attacks import choose_attackers  # imports torch: only when there is something to say
    n, population = cohort_size(cfg), cfg.federation.clients
    tolerated = alg.tolerated(n)
    if tolerated is None:
        return
    setting = {"trimmed_mean": f" (trim_beta {alg.trim_beta:g})", "krum": f" (byzantine_f {alg.byzantine_f})",
               "multikrum": f" (byzantine_f {alg.byzantine_f})", "bulyan": f" (byzantine_f {alg.byzantine_f})"}
    click.echo(f"{name}{setting.get(name, '')} tolerates up to {tolerated} of the {n} clients of a round "
               f"({tolerated / n:.0%})" + ("; the weight and norm caps only bound one client's influence"
                                           if name == "mean" else ""))
    if not attacked:
        return
    attackers = len(choose_attackers(population, scen.attackers, seed=cfg.run.seed))
    if attackers / population <= tolerated / n + 1e-9:
        return
    per_round = math.ceil(attackers / population * n - 1e-9)
    needs = {"krum": 2 * per_round + 3, "multikrum": 2 * per_round + 3, "bulyan": 4 * per_round + 3}
    if name == "trimmed_mean" and per_round / n < 0.5:
        advice = f"raise --trim-beta {per_round / n:g}"
    elif name in needs and n >= needs[name]:
        advice = f"set --byzantine-f {per_round}"
    elif per_round < n / 2:
        advice = "use --aggregator median (it tolerates fewer than half)"
    else:
        advice = "no aggregator tolerates half or more of the clients"
    click.echo(f"WARNING: --attackers {scen.attackers:g} makes {attackers} of the {population} clients attackers, "
               f"more than the {tolerated} {name} tolerates per round: {advice}", err=True)


@cli.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report_cmd(run_dir: str) -> None:
    """Re-draw the plots and HTML report of RUN_DIR and print its summary table."""
    from fedloom.runs import summary_table, write_html_report, write_plots

    path = Path(run_dir)
    summary_file = path / "summary.json"
    if not summary_file.exists():
        raise FedloomError(f"{run_dir} has no summary.json: is it a fedloom run directory?")
    summary = json.loads(summary_file.read_text())
    plots = write_plots(summary["history"], path)
    if (path / "metrics.sqlite").exists():  # each client's results, box plot per evaluated round
        from fedloom.runs.plots import write_client_plots
        from fedloom.runs.store import RunStore

        plots += write_client_plots(RunStore(path).read_clients(), path)
    report = write_html_report(summary, plots, path)
    summary_table(summary)
    click.echo(f"report: {report}")
    if summary.get("status") == "failed":
        click.echo(f"this run FAILED after {len(summary['history'])} round(s): {summary.get('error', '')} "
                   "(continue it with --resume)", err=True)


@cli.command("data")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
@_config_options
def data_cmd(config_path: str | None, **overrides: Any) -> None:
    """Show how the configured partition spreads examples and labels over clients."""
    from rich.console import Console
    from rich.table import Table

    from fedloom.app.build import build_simulation
    from fedloom.data import label_histogram

    cfg = _load_run_config(config_path, overrides)
    sim = build_simulation(cfg)
    ds = sim.dataset
    table = Table(title=f"{cfg.data.dataset}: {cfg.data.partition} over {cfg.federation.clients} clients")
    table.add_column("client")
    table.add_column("train", justify="right")
    table.add_column("test", justify="right")
    from fedloom.data.datasets import label_mapping

    mapping = label_mapping(ds)
    groups = mapping.get("groups", {}) if cfg.data.partition == "column" else {}
    if groups:
        table.add_column(cfg.data.group_column or "group")
    if ds.task == "classification":
        hist = label_histogram(ds.y_train, [s.train for s in sim.splits], ds.num_classes)
        for c in range(ds.num_classes):
            table.add_column(f"y={c}", justify="right")
    shown = sim.splits[:50]
    for i, split in enumerate(shown):
        row = [str(i), str(len(split.train)), str(len(split.test))]
        if groups:
            row.append(groups.get(str(i), ""))
        if ds.task == "classification":
            row += [str(v) for v in hist[i]]
        table.add_row(*row)
    Console().print(table)
    if "labels" in mapping and ds.label_names != [str(c) for c in range(ds.num_classes)]:
        click.echo("labels: " + ", ".join(f"y={i} {name}" for i, name in mapping["labels"].items()))
    if len(sim.splits) > len(shown):
        click.echo(f"... {len(sim.splits) - len(shown)} more clients")


@cli.command("he-keys")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory for secret.tenseal (clients) and public.tenseal (server).")
@click.option("--poly-degree", type=int, default=8192, show_default=True,
              help="CKKS polynomial degree (4096, 8192, 16384, 32768); a ciphertext holds half as many values.")
@click.option("--scale", "scale_bits", type=int, default=40, show_default=True,
              help="CKKS scale as a power of two, in bits.")
def he_keys_cmd(out_dir: str, poly_degree: int, scale_bits: int) -> None:
    """Generate CKKS keys for encrypted aggregation (--he).

    secret.tenseal holds the secret key: give it to every client, never to the server (written with
    mode 0600). public.tenseal has no secret, Galois or relinearization keys: it is all the server needs
    to add ciphertexts.
    """
    from fedloom.privacy.he import write_keys

    secret, public = write_keys(out_dir, poly_degree=poly_degree, scale_bits=scale_bits)
    click.echo(f"clients (secret, keep private): {secret} ({secret.stat().st_size:,} bytes)")
    click.echo(f"server (public only):           {public} ({public.stat().st_size:,} bytes)")
# -- deployment (fedloom.net): server, client, certs ------------------------------------------------
def _deploy_logging() -> None:
    """Deployment commands always log fedloom's INFO lines (connections, rounds, rejections)."""
    logging.getLogger("fedloom").setLevel(logging.INFO)


def _import_root(config_path: str) -> None:
    """The config file's folder is importable: its module:factory names load from anywhere."""
    from fedloom.core.registry import add_import_root

    add_import_root(Path(config_path).resolve().parent)


def _insecure_warning() -> None:
    click.echo("WARNING: --insecure: no TLS, traffic travels in plaintext and no client is authenticated "
               "(tokens are refused). Local experiments only.",
               err=True)


@cli.command("server")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
              help="TOML: experiment keys (as for `fedloom run`) plus a [server] table.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in [server] checkpoint_dir.")
@click.option("--insecure", is_flag=True, help="Serve without TLS (prints a warning).")
@click.option("--address", default=None, help="HOST:PORT to listen on (overrides [server] address).")
def server_cmd(config_path: str, resume: bool, insecure: bool, address: str | None) -> None:
    """Run a federated training server that remote clients connect to over gRPC."""
    from fedloom.net.config import load_deployment
    from fedloom.net.deploy import run_server

    _deploy_logging()
    _import_root(config_path)
    cfg, scfg, _ = load_deployment(config_path)
    if address:
        scfg.address = address
    if insecure:
        _insecure_warning()
    result = run_server(cfg, scfg, resume=resume, insecure=insecure)
    final = result.final
    if "accuracy" in final:
        click.echo(f"final accuracy: {final['accuracy']:.4f}")
    click.echo(f"rounds: {len(result.history)}; run directory (fedloom report): {scfg.checkpoint_dir}")


@cli.command("client")
@click.option("--server", "server", required=True, help="HOST:PORT of the fedloom server.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
              help="TOML: the client's data/model (RunConfig keys) plus a [client] table.")
@click.option("--name", default="", help="This client's name (default: [client] name or its certificate).")
@click.option("--credentials", default=None, help="Directory from `fedloom certs` (clients/<name>).")
@click.option("--insecure", is_flag=True, help="Connect without TLS (prints a warning).")
@click.option("--data", "data", default=None,
              help="This site's own .csv/.npz file (default: [client] data; without either, the partition "
                   "[client.partitions] gives this name, of the config's dataset).")
@click.option("--target-column", default=None, help="Label column of --data (default: the config's target_column).")
@click.option("--connect-timeout", "connect_timeout", type=float, default=None,
              help="Seconds to keep retrying while nothing answers at --server, then exit 5 "
                   "[default: [client] connect_timeout_s, 300; 0: forever].")
def client_cmd(server: str, config_path: str, name: str, credentials: str | None, insecure: bool,
               data: str | None, target_column: str | None, connect_timeout: float | None) -> None:
    """Connect a client to a fedloom server and train when asked, until the run ends.

    \b
    fedloom client --server fl.example.org:8443 --config deploy.toml --name hospital-a \\
                   --data hospital-a.csv --target-column diagnosis

    \b
    Exit status: 0 the run ended; 2 configuration or credentials files (the message says what to
    create), or this site's data does not fit the server's model; 3 the server refused this client
    (certificate, token, revoked); 4 TLS and plaintext do not match, or the server's certificate is
    not trusted; 5 no fedloom server at --server.
    """
    from fedloom.net.auth import AuthError
    from fedloom.net.client import ConnectFailed
    from fedloom.net.config import load_deployment
    from fedloom.net.deploy import run_client

    _deploy_logging()
    _import_root(config_path)
    cfg, _, ccfg = load_deployment(config_path)
    if credentials is not None:
        ccfg.credentials = credentials
    if data is not None:
        ccfg.data = data
    if target_column is not None:
        ccfg.target_column = target_column
    if connect_timeout is not None:
        ccfg.connect_timeout_s = connect_timeout
        ccfg.validate()
    if insecure:
        _insecure_warning()
    try:
        reason = run_client(cfg, ccfg, server=server, name=name, insecure=insecure)
    except (AuthError, ConnectFailed) as exc:  # retrying cannot help, or nothing answered: say so, exit non-zero
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except ConnectionError as exc:  # gave up reconnecting (give_up_after_s)
        raise FedloomError(str(exc)) from exc
    click.echo(f"server closed the run: {reason}")


@cli.group("certs", invoke_without_command=True)
@click.option("--out", type=click.Path(file_okay=False), help="Directory to write into.")
@click.option("--clients", help="Comma-separated client names, e.g. a,b,c.")
@click.option("--hosts", default="localhost,127.0.0.1", show_default=True,
              help="Comma-separated DNS names / IPs the server certificate is valid for.")
@click.option("--days", default=365, show_default=True, help="Certificate validity in days.")
@click.pass_context
def certs_cmd(ctx: click.Context, out: str | None, clients: str | None, hosts: str, days: int) -> None:
    """Create a CA, a server certificate, and a certificate + token per client.

    \b
    fedloom certs --out creds --clients a,b,c    create credentials (clients then use mutual TLS)
    fedloom certs revoke b --out creds          revoke client b (a running server reloads it)
    """
    if ctx.invoked_subcommand is not None:
        return
    if not out or not clients:
        raise click.UsageError("give --out DIR and --clients a,b,c (or a subcommand: fedloom certs revoke NAME)")
    from fedloom.net.certs import create_credentials

    names = [c.strip() for c in clients.split(",") if c.strip()]
    path = create_credentials(out, clients=names, hosts=hosts.split(","), days=days)
    click.echo(f"wrote CA, server and {len(names)} client credentials to {path}")
    click.echo(f"server: credentials = \"{path}\"; give each client {path}/clients/<name>/")


@certs_cmd.command("revoke")
@click.argument("name")
@click.option("--out", "--dir", "out", required=True, type=click.Path(file_okay=False, exists=True),
              help="The credentials directory `fedloom certs --out` wrote.")
def certs_revoke_cmd(name: str, out: str) -> None:
    """Revoke client NAME: its certificate joins crl.pem, its token leaves tokens.json.

    A running server re-reads both within a second or two: NAME is refused from then on and dropped
    if connected; other clients are not affected.
    """
    from fedloom.net.certs import revoke_client

    serial = revoke_client(out, name)
    click.echo(f"revoked client {name!r} (certificate serial {serial:x}) in {Path(out) / 'crl.pem'}")


@cli.command("status")
@click.option("--server", "server", required=True, help="HOST:PORT of the running fedloom server.")
@click.option("--credentials", default=None, type=click.Path(file_okay=False),
              help="The admin/ folder that `fedloom certs` wrote (token, ca.pem, client.pem, client.key).")
@click.option("--token-file", default=None, type=click.Path(dir_okay=False),
              help="The admin token file (default: token in --credentials).")
@click.option("--ca-cert", default=None, type=click.Path(dir_okay=False),
              help="CA certificate (default: ca.pem in --credentials).")
@click.option("--cert", "client_cert", default=None, type=click.Path(dir_okay=False),
              help="Client certificate, for a server that requires one (default: client.pem in --credentials).")
@click.option("--key", "client_key", default=None, type=click.Path(dir_okay=False),
              help="Its private key (default: client.key in --credentials).")
@click.option("--timeout", "timeout_s", default=10.0, show_default=True, help="Seconds to wait for the answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_cmd(server: str, credentials: str | None, token_file: str | None, ca_cert: str | None,
               client_cert: str | None, client_key: str | None, timeout_s: float, as_json: bool) -> None:
    """Show a running server's clients, round, stage, last metrics and epsilon (needs the admin token)."""
    from fedloom.net.client import channel_credentials
    from fedloom.net.status import format_status, query_status, reply_to_dict

    def pick(given: str | None, name: str) -> str | None:
        if given:
            return given
        path = Path(credentials) / name if credentials else None
        return str(path) if path is not None and path.exists() else None

    token_path, ca = pick(token_file, "token"), pick(ca_cert, "ca.pem")
    cert, key = pick(client_cert, "client.pem"), pick(client_key, "client.key")
    if ca is None:
        raise FedloomError("fedloom status needs the deployment's CA certificate: --credentials DIR/admin "
                           "(from `fedloom certs --out DIR`) or --ca-cert")
    try:
        token = Path(token_path).read_text().strip() if token_path else None
    except OSError as exc:
        raise FedloomError(f"cannot read the admin token {token_path}: {exc}") from exc
    creds = channel_credentials(ca_cert=ca, client_cert=cert if cert and key else None,
                                client_key=key if cert and key else None)
    status = reply_to_dict(query_status(server, token=token, credentials=creds, timeout_s=timeout_s))
    click.echo(json.dumps(status, indent=1) if as_json else format_status(status, server))


@cli.group("audit")
def audit_cmd() -> None:
    """Check a finished run: its signed round ledger and what its privacy protections withstand."""


@audit_cmd.command("verify")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--public-key", default=None, type=click.Path(dir_okay=False),
              help="The ledger's public key (default: RUN_DIR/ledger.pub; use the ledger.pub distributed with the CA).")
@click.option("--model", default=None, type=click.Path(dir_okay=False),
              help="The final model to check (default: RUN_DIR/model.safetensors).")
def audit_verify_cmd(run_dir: str, public_key: str | None, model: str | None) -> None:
    """Check the round ledger: hash chain, signatures, Merkle roots and the final model's hash."""
    from fedloom.ledger.chain import LedgerError, verify_ledger

    try:
        report = verify_ledger(run_dir, public_key=public_key, model=model)
    except LedgerError as exc:
        click.echo(f"FAILED: {exc}", err=True)
        sys.exit(1)
    model_note = "and the final model matches the last entry" if report.final_model else "(no final model to check)"
    click.echo(f"OK: {report.entries} entries (rounds {report.rounds[0]}-{report.rounds[-1]}) signed by key "
               f"{report.key_id}, chain intact, {model_note}")


@audit_cmd.command("prove")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--client", "client", required=True, help="The client's id (its name in deployment).")
@click.option("--round", "rnd", required=True, type=int, help="The round.")
@click.option("--public-key", default=None, type=click.Path(dir_okay=False),
              help="The ledger's public key (default: RUN_DIR/ledger.pub).")
def audit_prove_cmd(run_dir: str, client: str, rnd: int, public_key: str | None) -> None:
    """Print and check the Merkle inclusion proof of a client's update in a round."""
    from fedloom.ledger.audit import prove
    from fedloom.ledger.chain import LedgerError

    try:
        proof = prove(run_dir, client, rnd, public_key=public_key)
    except LedgerError as exc:
        click.echo(f"FAILED: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(proof, indent=1))
    if not proof["verified"]:
        click.echo("FAILED: the proof does not lead to the signed root", err=True)
        sys.exit(1)


@audit_cmd.command("privacy")
@click.option("--attack", required=True, type=click.Choice(["inversion", "membership", "canaries"]),
              help="inversion: reconstruct training examples from updates under each protection; membership: "
                   "loss-threshold (and LiRA) attack on the final model; canaries: one-run epsilon lower bound "
                   "of the run's central DP.")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--examples", default=6, show_default=True, help="inversion: examples to attack.")
@click.option("--method", default="auto", show_default=True,
              type=click.Choice(["auto", "closed_form", "ig", "dlg"]),
              help="inversion: closed form (fully connected first layer), Inverting Gradients or DLG.")
@click.option("--iterations", default=200, show_default=True, help="inversion: optimizer steps of ig/dlg.")
@click.option("--shadows", default=0, show_default=True, help="membership: LiRA shadow models (0: loss attack only).")
@click.option("--canaries", default=1000, show_default=True, help="canaries: number of canary clients.")
@click.option("--seed", default=0, show_default=True, help="Seed of the attack's choices (not of any DP noise).")
def audit_privacy_cmd(attack: str, run_dir: str, examples: int, method: str, iterations: int, shadows: int,
                      canaries: int, seed: int) -> None:
    """Attack the run in RUN_DIR; write audit_<attack>.json/.png there and add them to report.html."""
    from fedloom.runs.privacy_audit import audit_run

    out = audit_run(run_dir, attack, examples=examples, method=method, iterations=iterations, shadows=shadows,
                    canaries=canaries, seed=seed)
    click.echo(json.dumps({k: v for k, v in out.items() if k != "labels"}, indent=1, default=float))
    click.echo(f"wrote {Path(run_dir) / f'audit_{attack}.json'} and audit_{attack}.png")


for _command in cli.commands.values():  # -v after the command too: fedloom run -v
    _command.params.append(click.Option(["-v", "--verbose"], is_flag=True, expose_value=False, is_eager=True,
                                        callback=_set_verbose, help="Log more detail."))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning fedloom's deliberate errors into one clear line."""
    try:
        cli.main(args=argv, prog_name="fedloom", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except FedloomError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()

