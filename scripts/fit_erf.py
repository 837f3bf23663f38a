#!/usr/bin/env python3
"""Fits the rational erf of engine/src/forward.rs: erf(x) ≈ x · P(x²) / Q(x²) on [0, 4], Q's constant 1.

Linearized least squares (x·P − erf·Q = erf − erf·1), reweighted by 1/|Q| and then, Lawson's way, by the
error itself, which drives the fit toward the smallest maximum error. Prints the coefficients rounded to f32,
highest power first (the order Horner's rule reads them), and the f32 evaluation's maximum error against
Python's math.erf on [-10, 10] with x clamped to [-4, 4] as the engine does. Needs numpy (the venv has it).
"""
import math

import numpy as np

P_TERMS, Q_TERMS = 7, 5


def fit() -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(0.0, 4.0, 20001)[1:]
    t = x * x
    exact = np.array([math.erf(v) for v in x])
    columns = np.hstack([x[:, None] * t[:, None] ** np.arange(P_TERMS),
                         -exact[:, None] * t[:, None] ** np.arange(1, Q_TERMS)])
    q = np.array([1.0] + [0.0] * (Q_TERMS - 1))
    lawson = np.ones_like(x)
    for _ in range(200):
        weight = np.sqrt(lawson / np.abs(np.polyval(q[::-1], t)))
        c, *_ = np.linalg.lstsq(columns * weight[:, None], exact * weight, rcond=None)
        p, q = c[:P_TERMS], np.concatenate([[1.0], c[P_TERMS:]])
        error = np.abs(x * np.polyval(p[::-1], t) / np.polyval(q[::-1], t) - exact)
        lawson = lawson * error / (lawson * error).sum()
    return p[::-1].astype(np.float32), q[::-1].astype(np.float32)


def max_f32_error(p: np.ndarray, q: np.ndarray) -> float:
    x = np.linspace(-10.0, 10.0, 200001).astype(np.float32)
    clamped = np.clip(x, -4.0, 4.0)
    t = clamped * clamped
    num, den = np.zeros_like(t), np.zeros_like(t)
    for c in p:
        num = num * t + c
    for c in q:
        den = den * t + c
    exact = np.array([math.erf(float(v)) for v in x])
    return float(np.abs(clamped * num / den - exact).max())


if __name__ == "__main__":
    p, q = fit()
    print("P:", ", ".join(str(c) for c in p))
    print("Q:", ", ".join(str(c) for c in q))
    print(f"max error of the f32 evaluation: {max_f32_error(p, q):.2e}")
