#!/usr/bin/env python3
"""Fits the agent's relevance gate (GATE in crates/agent/src/knowledge.rs) from the
features examples/eval.rs writes for the tune half:

    EVAL_FEATURES=/tmp/f.txt cargo run --release -p jitnode-agent --example eval -- \
        crates/agent/tests/eval/tune.json
    python3 bench/fit-gate.py /tmp/f.txt [--wrong-as-refused] [--l2 0.01]

Logistic regression, class-balanced, L2, by Newton's method (no numpy: the data is a few
hundred rows). Prints 5-fold cross-validated accept/refuse rates at the threshold, then the
weights fitted on all rows, with the bias moved so that the cross-validated balanced point
sits at the threshold. Label 2 (covered, but the best passage is on the wrong page) is left
out, or counted as a question to refuse with --wrong-as-refused. Never feed it held-out data.
"""
import math
import random
import sys

THRESHOLD = 0.55


def read(path, wrong_as_refused, cols=None):
    rows = []
    for line in open(path):
        parts = line.split()
        if not parts:
            continue
        label = int(parts[0])
        if label == 2:
            if not wrong_as_refused:
                continue
            label = 0
        f = [float(x) for x in parts[1:]]
        rows.append((label, [f[c] for c in cols] if cols else f))
    return rows


def solve(a, b):
    """Gaussian elimination with partial pivoting: a x = b."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(n):
            if r != c and m[c][c] != 0:
                f = m[r][c] / m[c][c]
                for k in range(c, n + 1):
                    m[r][k] -= f * m[c][k]
    return [m[i][n] / m[i][i] if m[i][i] else 0.0 for i in range(n)]


def fit(rows, l2):
    pos = sum(1 for y, _ in rows if y == 1)
    neg = len(rows) - pos
    weight = {1: len(rows) / (2 * pos), 0: len(rows) / (2 * neg)}
    d = len(rows[0][1]) + 1
    w = [0.0] * d
    for _ in range(50):
        grad = [0.0] * d
        hess = [[0.0] * d for _ in range(d)]
        for y, f in rows:
            x = f + [1.0]
            z = sum(a * b for a, b in zip(w, x))
            p = 1 / (1 + math.exp(-max(-30, min(30, z))))
            c = weight[y]
            for i in range(d):
                grad[i] += c * (p - y) * x[i]
                for j in range(d):
                    hess[i][j] += c * p * (1 - p) * x[i] * x[j]
        for i in range(d - 1):  # the bias is not penalised
            grad[i] += l2 * len(rows) * w[i]
            hess[i][i] += l2 * len(rows)
        step = solve(hess, grad)
        w = [a - b for a, b in zip(w, step)]
        if max(abs(s) for s in step) < 1e-9:
            break
    return w


def prob(w, f):
    z = sum(a * b for a, b in zip(w, f + [1.0]))
    return 1 / (1 + math.exp(-z))


def main():
    args = sys.argv[1:]
    wrong_as_refused = "--wrong-as-refused" in args
    l2 = 0.01
    if "--l2" in args:
        l2 = float(args[args.index("--l2") + 1])
    cols = None
    if "--cols" in args:
        cols = [int(c) for c in args[args.index("--cols") + 1].split(",")]
    rows = read(args[0], wrong_as_refused, cols)
    order = list(range(len(rows)))
    random.Random(7).shuffle(order)
    folds = [order[i::5] for i in range(5)]
    scored = []
    for k in range(5):
        test = set(folds[k])
        w = fit([rows[i] for i in order if i not in test], l2)
        scored += [(rows[i][0], prob(w, rows[i][1])) for i in folds[k]]
    # The shift of the logit that balances accept and refuse rates across the folds.
    best = None
    for step in range(-300, 301):
        shift = step / 100
        acc, ref = rates(scored, shift)
        gap = abs(acc - ref)
        if best is None or gap < best[0]:
            best = (gap, shift, acc, ref)
    _, shift, acc, ref = best
    acc0, ref0 = rates(scored, 0.0)
    print(f"cv at threshold: accepted={acc0:.3f} refused={ref0:.3f}")
    print(f"cv balanced (logit shift {shift:+.2f}): accepted={acc:.3f} refused={ref:.3f}")
    w = fit(rows, l2)
    w[-1] += shift
    print("GATE = [" + ", ".join(f"{x:.3f}" for x in w) + "]")


def rates(scored, shift):
    logit_t = math.log(THRESHOLD / (1 - THRESHOLD))
    pos = [p for y, p in scored if y == 1]
    neg = [p for y, p in scored if y == 0]
    def over(p):
        return math.log(p / (1 - p)) + shift >= logit_t
    acc = sum(1 for p in pos if over(p)) / len(pos)
    ref = sum(1 for p in neg if not over(p)) / len(neg)
    return acc, ref


if __name__ == "__main__":
    main()
