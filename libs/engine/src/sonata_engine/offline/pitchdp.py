"""Order-preserving alignment of the score notes and played notes of one pitch.

Both sides are sorted by time (the score side by its expected time under the time map). A
played note may match a score note whose expected time is within a few sigmas; otherwise each
side is skipped at a fixed cost (extra note, missed note). The dynamic programme runs on
clusters separated by gaps wider than any match can bridge, so its cost stays linear in the
number of notes for ordinary music.
"""

from __future__ import annotations

SKIP_COST = 2.0  # per unmatched note on either side; a match is worth it below 2 * SKIP_COST
REACH = 2.9  # sigmas: beyond this a match costs more than two skips anyway


def align_pitch(s_t: list[float], s_sigma: list[float], p_t: list[float]) -> list[tuple[int, int]]:
    """Pairs (score index, played index) of the best order-preserving matching."""
    n, m = len(s_t), len(p_t)
    if n == 0 or m == 0:
        return []
    events = sorted(
        [(s_t[i] - REACH * s_sigma[i], s_t[i] + REACH * s_sigma[i], 0, i) for i in range(n)]
        + [(p_t[j], p_t[j], 1, j) for j in range(m)]
    )
    out: list[tuple[int, int]] = []
    s_run: list[int] = []
    p_run: list[int] = []
    reach_end = -float("inf")
    for lo, hi, side, k in events:
        if lo > reach_end and (s_run or p_run):
            out.extend(_cluster(s_run, p_run, s_t, s_sigma, p_t))
            s_run, p_run = [], []
        (s_run if side == 0 else p_run).append(k)
        reach_end = max(reach_end, hi)
    out.extend(_cluster(s_run, p_run, s_t, s_sigma, p_t))
    return out


def _cluster(
    s_idx: list[int], p_idx: list[int], s_t: list[float], s_sigma: list[float], p_t: list[float]
) -> list[tuple[int, int]]:
    if not s_idx or not p_idx:
        return []
    s_idx.sort(key=lambda i: s_t[i])
    p_idx.sort(key=lambda j: p_t[j])
    n, m = len(s_idx), len(p_idx)
    if n == 1 and m == 1:
        i, j = s_idx[0], p_idx[0]
        z = (p_t[j] - s_t[i]) / s_sigma[i]
        return [(i, j)] if 0.5 * z * z < 2 * SKIP_COST else []
    inf = float("inf")
    # cost[a][b]: best cost of the first a score notes against the first b played notes
    cost = [[0.0] * (m + 1) for _ in range(n + 1)]
    move = [[0] * (m + 1) for _ in range(n + 1)]  # 1 match, 2 skip score, 3 skip played
    for b in range(1, m + 1):
        cost[0][b] = b * SKIP_COST
        move[0][b] = 3
    for a in range(1, n + 1):
        i = s_idx[a - 1]
        ti, si = s_t[i], s_sigma[i]
        row, prev = cost[a], cost[a - 1]
        mrow = move[a]
        row[0] = a * SKIP_COST
        mrow[0] = 2
        for b in range(1, m + 1):
            z = (p_t[p_idx[b - 1]] - ti) / si
            best = prev[b - 1] + 0.5 * z * z if -REACH < z < REACH else inf
            mv = 1
            c = prev[b] + SKIP_COST
            if c < best:
                best, mv = c, 2
            c = row[b - 1] + SKIP_COST
            if c < best:
                best, mv = c, 3
            row[b] = best
            mrow[b] = mv
    out: list[tuple[int, int]] = []
    a, b = n, m
    while a > 0 and b > 0:
        mv = move[a][b]
        if mv == 1:
            out.append((s_idx[a - 1], p_idx[b - 1]))
            a, b = a - 1, b - 1
        elif mv == 2:
            a -= 1
        else:
            b -= 1
    return out
