"""The read-only status web page of a running server (``[server] status_port``; off by default).

One HTML page (everything inline: no CDN, no external file) and one JSON endpoint, served by the
standard library's HTTP server in a thread. The page polls ``status.json`` every second and redraws
the round counter, the stage, epsilon, the accuracy and loss curves and the client table.

Access needs the admin token of ``fedloom certs`` (not a client's token): open
``http(s)://HOST:PORT/?token=<token>`` once; the server answers with a session cookie (HttpOnly,
SameSite=Strict) and redirects to ``/``, so the token leaves the address bar and the history. Scripts
may send ``Authorization: Bearer <token>`` instead. Anything else gets ``401``. The page is served
over HTTPS with the server's certificate when the server has TLS; a plaintext page may listen on a
loopback address only.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import logging
import math
import secrets
import ssl
import threading
from collections import OrderedDict
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fedloom.errors import ConfigError
from fedloom.net.auth import AuthError
from fedloom.net.status import AdminAuth, StatusBoard

__all__ = ["StatusPage", "is_loopback"]

log = logging.getLogger(__name__)

_COOKIE = "fedloom_status"
_MAX_SESSIONS = 64


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StatusPage:
    """Serve ``board`` as a web page on ``host:port`` to holders of the admin token.

    Args:
        board: What to show.
        auth: The admin token check.
        host: Address to bind (a non-loopback address needs TLS).
        port: Port (0 picks a free one; see :attr:`port`).
        certfile: Server certificate (PEM) for HTTPS; with ``keyfile``. ``None``: plaintext.
        keyfile: Its private key.
        refresh_s: How often the page polls.
    """

    def __init__(self, board: StatusBoard, auth: AdminAuth, *, host: str = "127.0.0.1", port: int = 0,
                 certfile: str | None = None, keyfile: str | None = None, refresh_s: float = 1.0) -> None:
        if certfile is None and not is_loopback(host):
            raise ConfigError(f"status_host {host!r} is not a loopback address: the status page would travel in "
                              "plaintext; serve the server with TLS (its certificate is used) or bind 127.0.0.1")
        self.board, self.auth, self.refresh_s = board, auth, refresh_s
        self.tls = certfile is not None
        self._sessions: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        try:
            self._httpd = _Server((host, port), _handler_for(self))
        except OSError as exc:
            raise ConfigError(f"cannot serve the status page on {host}:{port}: {exc} (choose another "
                              "status_port)") from exc
        if certfile is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(certfile, keyfile)
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        daemon=True, name="fedloom-status-page")

    @property
    def url(self) -> str:
        """The page's address (without a token)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/"

    def start(self) -> StatusPage:
        """Serve in a background thread (returns ``self``)."""
        self._thread.start()
        log.info("status page on %s (open it with ?token=<admin token>)", self.url)
        return self

    def close(self) -> None:
        """Stop serving."""
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    # -- sessions ------------------------------------------------------------------------
    def new_session(self) -> str:
        key = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[key] = None
            while len(self._sessions) > _MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return key

    def has_session(self, key: str) -> bool:
        with self._lock:
            return any(secrets.compare_digest(key, k) for k in self._sessions)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False


def _handler_for(page: StatusPage) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "fedloom-status"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            log.debug("status page: " + format, *args)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            token = parse_qs(url.query).get("token", [""])[0]
            if token:  # log in: set a session cookie and drop the token from the address bar
                try:
                    page.auth.check(f"Bearer {token}")
                except AuthError as exc:
                    return self._refuse(str(exc))
                secure = "; Secure" if page.tls else ""
                self.send_response(HTTPStatus.SEE_OTHER)
                self.send_header("Set-Cookie", f"{_COOKIE}={page.new_session()}; HttpOnly; SameSite=Strict; "
                                               f"Path=/{secure}")
                self.send_header("Location", url.path or "/")
                self._common_headers()
                self.end_headers()
                return None
            refusal = self._authorised()
            if refusal is not None:
                return self._refuse(refusal)
            if url.path == "/":
                return self._send(HTTPStatus.OK, "text/html; charset=utf-8", _page(page.refresh_s).encode())
            if url.path == "/status.json":
                body = json.dumps(_finite(page.board.status()), allow_nan=False, separators=(",", ":")).encode()
                return self._send(HTTPStatus.OK, "application/json", body)
            return self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

        def _authorised(self) -> str | None:
            cookies = {}
            for part in self.headers.get("Cookie", "").split(";"):
                name, _, value = part.strip().partition("=")
                cookies[name] = value
            if cookies.get(_COOKIE) and page.has_session(cookies[_COOKIE]):
                return None
            header = self.headers.get("Authorization", "")
            if not header:
                return ("this status page needs the admin token: open it as /?token=<admin token> (the file "
                        "admin/token that `fedloom certs` wrote), or send Authorization: Bearer <admin token>")
            try:
                page.auth.check(header)
            except AuthError as exc:
                return str(exc)
            return None

        def _refuse(self, message: str) -> None:
            self._send(HTTPStatus.UNAUTHORIZED, "text/plain; charset=utf-8", f"refused: {message}\n".encode())

        def _common_headers(self) -> None:
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Frame-Options", "DENY")

        def _send(self, status: HTTPStatus, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; "
                             "style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
            self._common_headers()
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as ``null`` (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _page(refresh_s: float) -> str:
    return _HTML.replace("__REFRESH_MS__", str(int(refresh_s * 1000)))


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fedloom server status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 70em; }
h1 { font-size: 1.3em; margin: 0 0 .5em; }
.bar span.v { font-weight: 600; margin-right: 1.2em; }
.charts { display: flex; gap: 1.5em; flex-wrap: wrap; margin: 1em 0; }
figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: .3em; }
svg { border: 1px solid #ccc; background: #fafafa; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border-bottom: 1px solid #ddd; padding: .25em .8em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
#error { color: #a00; min-height: 1.2em; }
</style></head>
<body>
<h1>fedloom server</h1>
<div class="bar">round <span class="v" id="round">-</span> of <span class="v" id="rounds">-</span>
stage <span class="v" id="stage">-</span> epsilon <span class="v" id="epsilon">-</span>
clients <span class="v" id="nclients">-</span> updated <span class="v" id="updated">-</span></div>
<div id="error"></div>
<div class="charts">
<figure><figcaption>accuracy</figcaption><svg id="accuracy-chart" width="420" height="200"></svg></figure>
<figure><figcaption>loss</figcaption><svg id="loss-chart" width="420" height="200"></svg></figure>
</div>
<h2>clients</h2>
<table id="clients"><thead><tr><th>client</th><th>stage</th><th>last heartbeat</th><th>connected</th></tr></thead>
<tbody></tbody></table>
<h2>last round</h2>
<table id="metrics"><tbody></tbody></table>
<script>
"use strict";
const NS = "http://www.w3.org/2000/svg";
function cell(row, text, cls) {
  const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; row.appendChild(td);
}
function fmt(v) {
  if (v === null || v === undefined) return "-";
  if (v !== 0 && Math.abs(v) < 1e-3) return Number(v).toExponential(2);
  if (Number.isInteger(v) && Math.abs(v) >= 1) return v.toLocaleString("en");
  return Number(v).toFixed(4);
}
function svgEl(tag, attrs) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  return e;
}
function chart(id, points) {
  const svg = document.getElementById(id);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = 420, H = 200, L = 50, R = 10, T = 10, B = 25;
  svg.appendChild(svgEl("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#888"}));
  svg.appendChild(svgEl("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#888"}));
  if (!points.length) return;
  const xs = points.map(p => p[0]), ys = points.map(p => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  let y0 = Math.min(...ys), y1 = Math.max(...ys); if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  const px = x => L + (x - x0) / (x1 - x0) * (W - L - R), py = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  svg.appendChild(svgEl("polyline", {points: points.map(p => px(p[0]) + "," + py(p[1])).join(" "),
                                     fill: "none", stroke: "#1f77b4", "stroke-width": 2}));
  for (const p of points) svg.appendChild(svgEl("circle", {cx: px(p[0]), cy: py(p[1]), r: 2.5, fill: "#1f77b4"}));
  const label = (x, y, text, anchor) => { const t = svgEl("text", {x: x, y: y, "font-size": 11, "text-anchor": anchor});
                                          t.textContent = text; svg.appendChild(t); };
  label(L - 4, T + 8, y1.toFixed(3), "end"); label(L - 4, H - B, y0.toFixed(3), "end");
  label(L, H - 8, "round " + x0, "start"); label(W - R, H - 8, "round " + x1, "end");
}
function series(history, keys) {
  for (const k of keys) {
    const pts = history.filter(h => typeof h[k] === "number").map(h => [h.round, h[k]]);
    if (pts.length) return pts;
  }
  return [];
}
function render(s) {
  document.getElementById("round").textContent = s.round;
  document.getElementById("rounds").textContent = s.rounds;
  document.getElementById("stage").textContent = s.stage;
  document.getElementById("epsilon").textContent = s.epsilon === null ? "n/a" : fmt(s.epsilon);
  document.getElementById("nclients").textContent = s.clients.length + " (" + s.min_clients + " to start)";
  document.getElementById("updated").textContent = new Date().toLocaleTimeString("en-GB");
  const body = document.querySelector("#clients tbody");
  body.replaceChildren();
  for (const c of s.clients) {
    const row = document.createElement("tr"); row.dataset.client = c.name;
    cell(row, c.name); cell(row, c.stage);
    cell(row, c.last_heartbeat_s.toFixed(1) + " s ago", "n"); cell(row, Math.round(c.connected_s) + " s", "n");
    body.appendChild(row);
  }
  const mbody = document.querySelector("#metrics tbody");
  mbody.replaceChildren();
  for (const k of Object.keys(s.metrics).sort()) {
    const row = document.createElement("tr"); cell(row, k); cell(row, fmt(s.metrics[k]), "n"); mbody.appendChild(row);
  }
  chart("accuracy-chart", series(s.history, ["accuracy", "fed_accuracy"]));
  chart("loss-chart", series(s.history, ["loss", "fed_loss"]));
}
async function tick() {
  const err = document.getElementById("error");
  try {
    const r = await fetch("status.json", {cache: "no-store", credentials: "same-origin"});
    if (!r.ok) { err.textContent = (await r.text()).trim(); return; }
    render(await r.json());
    err.textContent = "";
  } catch (e) {
    err.textContent = "the server does not answer (the run may have ended)";
  }
}
tick();
setInterval(tick, __REFRESH_MS__);
</script>
</body></html>
"""
