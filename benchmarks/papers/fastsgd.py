"""Minibatch SGD on softmax regression (+ FedProx's proximal term), as a small C loop.

The FedProx protocol with size-proportional sampling picks the large Synthetic devices most often
(``E[n_k] = sum n_k^2 / sum n_k``: about 2,600 examples per sampled device on Synthetic(1,1), against
670 uniformly), so a round is ~20,000 SGD steps of a 610-parameter model. In numpy each step costs
~30 us of call overhead; this loop does the same arithmetic in ~2 us. It is compiled with the
system C compiler on first use into ``benchmarks/papers/.build/`` (git-ignored); without a compiler
the numpy loop of :mod:`benchmarks.fedprox_synthetic` runs instead (the same numbers up to float
rounding, about 15x slower).

The math per step, for a batch ``B`` of the permuted rows (the last batch of an epoch is smaller):
``p = softmax(x_B W + b)``, ``p[i, y_i] -= 1``, ``p /= |B|``, ``gW = x_B^T p + mu (W - W_g)``,
``gb = sum_i p_i + mu (b - b_g)``, ``W -= lr gW``, ``b -= lr gb`` (float64 throughout).
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np

__all__ = ["local_sgd", "compiled"]

_SOURCE = r"""
// v2
#include <math.h>
#include <stdlib.h>
#include <string.h>
void sgd(const double* x, const long* y, long n, long d, long c, const long* perm, long epochs, long bs,
         double lr, double mu, double* W, double* b, const double* Wg, const double* bg) {
  double* p = malloc(sizeof(double) * bs * c);
  double* gW = malloc(sizeof(double) * d * c);
  double* gb = malloc(sizeof(double) * c);
  for (long e = 0; e < epochs; e++) {
    const long* order = perm + e * n;
    for (long s = 0; s < n; s += bs) {
      long m = (n - s < bs) ? n - s : bs;
      for (long i = 0; i < m; i++) {
        const double* xi = x + order[s + i] * d;
        double* pi = p + i * c;
        for (long k = 0; k < c; k++) pi[k] = b[k];
        for (long j = 0; j < d; j++) {
          double v = xi[j];
          const double* wj = W + j * c;
          for (long k = 0; k < c; k++) pi[k] += v * wj[k];
        }
        double mx = pi[0];
        for (long k = 1; k < c; k++) if (pi[k] > mx) mx = pi[k];
        double sum = 0.0;
        for (long k = 0; k < c; k++) { pi[k] = exp(pi[k] - mx); sum += pi[k]; }
        for (long k = 0; k < c; k++) pi[k] /= sum;
        pi[y[order[s + i]]] -= 1.0;
        for (long k = 0; k < c; k++) pi[k] /= (double)m;
      }
      memset(gW, 0, sizeof(double) * d * c);
      memset(gb, 0, sizeof(double) * c);
      for (long i = 0; i < m; i++) {
        const double* xi = x + order[s + i] * d;
        const double* pi = p + i * c;
        for (long j = 0; j < d; j++) {
          double v = xi[j];
          double* gj = gW + j * c;
          for (long k = 0; k < c; k++) gj[k] += v * pi[k];
        }
        for (long k = 0; k < c; k++) gb[k] += pi[k];
      }
      if (mu > 0) {
        for (long t = 0; t < d * c; t++) gW[t] += mu * (W[t] - Wg[t]);
        for (long k = 0; k < c; k++) gb[k] += mu * (b[k] - bg[k]);
      }
      for (long t = 0; t < d * c; t++) W[t] -= lr * gW[t];
      for (long k = 0; k < c; k++) b[k] -= lr * gb[k];
    }
  }
  free(p); free(gW); free(gb);
}
"""

_BUILD = Path(__file__).resolve().parent / ".build"
_lib: ctypes.CDLL | None | bool = None


def _load() -> ctypes.CDLL | None:
    global _lib
    if _lib is None:
        _lib = False
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is not None:
            digest = hashlib.sha256(_SOURCE.encode()).hexdigest()[:12]
            so = _BUILD / f"fastsgd-{digest}.so"
            if not so.exists():
                _BUILD.mkdir(exist_ok=True)
                src = _BUILD / f"fastsgd-{digest}.c"
                src.write_text(_SOURCE)
                tmp = so.with_suffix(".tmp.so")
                done = subprocess.run([cc, "-O3", "-march=native", "-shared", "-fPIC", "-o", str(tmp), str(src), "-lm"],
                                      capture_output=True)
                if done.returncode == 0:
                    tmp.replace(so)
            if so.exists():
                lib = ctypes.CDLL(str(so))
                dp = np.ctypeslib.ndpointer(dtype=np.float64, flags="C_CONTIGUOUS")
                lp = np.ctypeslib.ndpointer(dtype=np.int64, flags="C_CONTIGUOUS")
                lg = ctypes.c_long
                lib.sgd.argtypes = [dp, lp, lg, lg, lg, lp, lg, lg, ctypes.c_double, ctypes.c_double, dp, dp, dp, dp]
                lib.sgd.restype = None
                _lib = lib
    return _lib or None


def compiled() -> bool:
    """Whether the C loop is available (else :func:`local_sgd` uses numpy)."""
    return _load() is not None


def local_sgd(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray, *, perms: np.ndarray, lr: float,
              batch_size: int, mu: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Run ``len(perms)`` epochs of minibatch SGD from ``(w, b)`` (``w``: features x classes).

    Args:
        x: ``(n, d)`` float64 features; y: ``(n,)`` int labels.
        w, b: The starting (global) model; not modified.
        perms: ``(epochs, n)`` the row order of each epoch.
        lr, batch_size, mu: Step size, batch size, proximal coefficient (0: plain SGD).

    Returns:
        The trained ``(w, b)``.
    """
    w_g = np.ascontiguousarray(w, dtype=np.float64)
    b_g = np.ascontiguousarray(b, dtype=np.float64)
    w_new, b_new = w_g.copy(), b_g.copy()
    lib = _load()
    if lib is not None:
        n, d = x.shape
        lib.sgd(np.ascontiguousarray(x, np.float64), np.ascontiguousarray(y, np.int64), n, d, w.shape[1],
                np.ascontiguousarray(perms, np.int64), len(perms), batch_size, lr, mu, w_new, b_new, w_g, b_g)
        return w_new, b_new
    for order in perms:
        xs, ys = x[order], y[order]
        for s in range(0, len(ys), batch_size):
            xb, yb = xs[s : s + batch_size], ys[s : s + batch_size]
            z = xb @ w_new + b_new
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1.0
            p /= len(yb)
            gw, gb = xb.T @ p, p.sum(axis=0)
            if mu > 0:
                gw += mu * (w_new - w_g)
                gb += mu * (b_new - b_g)
            w_new -= lr * gw
            b_new -= lr * gb
    return w_new, b_new
