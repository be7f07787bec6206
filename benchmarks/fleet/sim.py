"""Lightweight simulated fleet clients: many ``grpc.aio`` streams in one process.

Each simulated client opens its own TLS channel (its own TCP connection: a local subchannel pool)
to the fedloom server, sends its own token, says Hello, heartbeats every ``heartbeat_s`` and answers
every task with a small fixed update (the model it received, after the task's ``delay_s`` config).
It speaks the same protocol as :class:`fedloom.net.ClientRuntime` with the same message helpers
(``fedloom.net.wire``, ``chunking``, ``messages``), but holds no thread per client.

Run as a process (``python -m benchmarks.fleet.sim``) it reads commands on stdin, one a line, and
answers each with one JSON line on stdout::

    stats        {"connected": n, "started": n, "tasks": n, "errors": {code: n}}
    drop F       drop the first fraction F of its clients at once (channels closed, no goodbye)
    quit         close every channel and exit
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
from pathlib import Path
from typing import Any

import grpc

from fedloom.core.types import EvaluateRes, FitIns, FitRes
from fedloom.net import wire
from fedloom.net.chunking import Assembler
from fedloom.net.messages import decode_message, encode_message
from fedloom.net.proto import fedloom_pb2 as pb
from fedloom.net.server import PROTOCOL_VERSION, SERVICE


class Stats:
    def __init__(self) -> None:
        self.connected = 0
        self.started = 0
        self.tasks = 0
        self.errors: collections.Counter[str] = collections.Counter()


class SimClient:
    """One simulated client: a TLS channel, one Connect stream, heartbeats, fixed answers."""

    def __init__(self, name: str, token: str, target: str, creds: grpc.ChannelCredentials, *,
                 heartbeat_s: float, stats: Stats, retries: int = 5) -> None:
        self.name, self.token, self.target, self.creds = name, token, target, creds
        self.heartbeat_s, self.stats, self.retries = heartbeat_s, stats, retries
        self.channel: grpc.aio.Channel | None = None
        self.dropped = False
        self.lock = asyncio.Lock()

    async def run(self) -> None:
        for attempt in range(self.retries + 1):
            welcomed = await self._connect()
            if welcomed or self.dropped or attempt == self.retries:
                return
            await asyncio.sleep(0.5 * (attempt + 1))

    async def _connect(self) -> bool:
        options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 64 << 20),
                   ("grpc.max_send_message_length", 64 << 20)]
        self.channel = grpc.aio.secure_channel(self.target, self.creds, options=options)
        call = self.channel.stream_stream(f"/{SERVICE}/Connect", request_serializer=wire.serialize,
                                          response_deserializer=wire.parser(pb.ServerMessage))(
            metadata=(("authorization", f"Bearer {self.token}"),))
        welcomed = False
        beat: asyncio.Task[None] | None = None
        try:
            await self._write(call, pb.ClientMessage(hello=pb.Hello(protocol_version=PROTOCOL_VERSION)))
            asm = Assembler(max_bytes=1 << 30)
            while True:
                msg = await call.read()
                if msg is grpc.aio.EOF:
                    break
                which = msg.WhichOneof("msg")
                if which == "welcome":
                    welcomed = True
                    self.stats.connected += 1
                    beat = asyncio.get_running_loop().create_task(self._beat(call))
                elif which == "bye":
                    break
                elif which == "frame":
                    done = asm.feed(msg.frame)
                    if done is not None:
                        task_id, ins = decode_message(done)
                        asyncio.get_running_loop().create_task(self._answer(call, task_id, ins))
        except grpc.aio.AioRpcError as exc:
            if not self.dropped:
                self.stats.errors[exc.code().name] += 1
        except (asyncio.CancelledError, grpc.aio.UsageError, asyncio.InvalidStateError):
            pass
        finally:
            if beat is not None:
                beat.cancel()
            if welcomed:
                self.stats.connected -= 1
            if not self.dropped:
                await self.channel.close()
        return welcomed

    async def _write(self, call: Any, msg: Any) -> None:
        async with self.lock:
            await call.write(msg)

    async def _beat(self, call: Any) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            await self._write(call, pb.ClientMessage(heartbeat=pb.Heartbeat(time=0.0)))

    async def _answer(self, call: Any, task_id: str, ins: Any) -> None:
        delay = float(ins.config.get("delay_s", 0.0))
        if delay:
            await asyncio.sleep(delay)
        res = FitRes(ins.parameters, 1, {}) if isinstance(ins, FitIns) else EvaluateRes(0.0, 1, {})
        try:
            async with self.lock:
                for frame in encode_message(task_id, res):
                    await call.write(wire.envelope(pb.ClientMessage, frame))
            self.stats.tasks += 1
        except Exception:  # noqa: BLE001 - the stream went away: the server counts it
            pass

    async def drop(self) -> None:
        """Disconnect at once (no goodbye; the server sees the stream end)."""
        self.dropped = True
        if self.channel is not None:
            await self.channel.close(grace=None)


async def serve(args: argparse.Namespace) -> None:
    tokens: dict[str, str] = json.loads(Path(args.tokens).read_text())
    names = sorted(tokens)[args.first:args.first + args.count]
    creds = grpc.ssl_channel_credentials(Path(args.ca).read_bytes())
    stats = Stats()
    clients = [SimClient(n, tokens[n], args.target, creds, heartbeat_s=args.heartbeat_s, stats=stats) for n in names]
    tasks = []
    for i, c in enumerate(clients):  # ramp: a batch at a time, so handshakes do not all land at once
        tasks.append(asyncio.get_running_loop().create_task(c.run()))
        stats.started += 1
        if i % args.batch == args.batch - 1:
            await asyncio.sleep(args.batch_pause_s)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "drop":
            gone = clients[: int(len(clients) * float(cmd[1]))]
            await asyncio.gather(*(c.drop() for c in gone), return_exceptions=True)
            clients = clients[len(gone):]
        print(json.dumps({"connected": stats.connected, "started": stats.started, "tasks": stats.tasks,
                          "errors": dict(stats.errors)}), flush=True)
    for c in clients:
        c.dropped = True
    await asyncio.gather(*(c.channel.close(grace=None) for c in clients if c.channel is not None),
                         return_exceptions=True)
    for t in tasks:
        t.cancel()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--ca", required=True, help="CA certificate (PEM) the server's certificate is signed by")
    ap.add_argument("--tokens", required=True, help="JSON {name: token}")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--heartbeat-s", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--batch-pause-s", type=float, default=0.05)
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
