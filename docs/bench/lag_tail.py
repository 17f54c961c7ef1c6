#!/usr/bin/env python3
"""Where a fan-out window's lag tail comes from, read off the load client's lag dump.

    cargo xtask bench --parts repeat --subscribers 1000 --repeats 1 --dump-lags target/bench/lags
    python3 docs/bench/lag_tail.py target/bench/lags/lags-pid*-n1000-1.csv

(needs pandas: `pip install pandas`). For each dump (one window of one server) it prints:

- the stream-clock lag (arrival - timestamp, less the best first arrival of any frame: one clock
  for the whole stream) and lag+ (each player's lag less its own smallest), p50 / p99;
- both by player decile, in the order the players connected (player 0 first): a fan-out that
  writes its players in a fixed order shows it as a slope;
- the fan-out rounds: frames whose first arrival is within 0.3 ms of each other left the server
  in one round; a round is named by the kinds it carried (a = audio, v = video: "aav" is two
  audio frames and a video frame in one write per player), with the time from its 10th to its
  90th percentile player (the round's length, less the load client's reading at its ends);
- which rounds the tail samples (lag+ above its p99) were in.

BENCHMARKS.md ("Where Ascend's audio tail comes from", session 8, under "What each change
bought") has what such dumps showed on 2026-12-06, with the publisher tap's log beside them.
"""

import sys

import pandas as pd


def rounds_of(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per frame with the kinds of the round it left in."""
    frames = (
        samples.groupby(["kind", "timestamp"])
        .agg(
            first_at=("at_ms", "min"),
            p10=("at_ms", lambda x: x.quantile(0.1)),
            p90=("at_ms", lambda x: x.quantile(0.9)),
        )
        .reset_index()
        .sort_values("first_at")
    )
    frames["round"] = (frames.first_at.diff() > 0.3).cumsum()
    kinds = frames.groupby("round").kind.agg(lambda x: "".join(sorted(k[0] for k in x)))
    frames["round_kinds"] = frames["round"].map(kinds)
    frames["length_ms"] = frames.p90 - frames.p10
    return frames


def report(path: str) -> None:
    samples = pd.read_csv(path)
    samples["clock"] = samples.at_ms - samples.timestamp
    samples["clock"] -= samples.groupby(["kind", "timestamp"]).clock.transform("min").min()
    samples["decile"] = samples.player * 10 // (samples.player.max() + 1)
    p99 = samples.lag_plus_ms.quantile(0.99)
    seconds = (samples.at_ms.max() - samples.at_ms.min()) / 1000
    print(f"== {path}: {samples.player.nunique()} players, {len(samples)} samples")
    for name, column in (("stream clock", "clock"), ("lag+", "lag_plus_ms")):
        by_kind = {
            kind: round(float(samples[samples.kind == kind][column].quantile(0.99)), 1)
            for kind in ("audio", "video")
        }
        print(
            f"  {name}: p50 {samples[column].quantile(0.5):.1f} p99 "
            f"{samples[column].quantile(0.99):.1f} ms (p99 {by_kind})"
        )
        deciles = samples.groupby("decile")[column].quantile(0.99).round(1).tolist()
        print(f"    p99 by player decile: {deciles}")
    frames = rounds_of(samples)
    per_round = frames.groupby("round").agg(
        kinds=("round_kinds", "first"), length_ms=("length_ms", "max")
    )
    table = per_round.groupby("kinds").agg(
        per_s=("length_ms", "size"),
        length_p50=("length_ms", "median"),
        length_p90=("length_ms", lambda x: x.quantile(0.9)),
    )
    table["per_s"] = table.per_s / seconds
    print("  rounds (per second; length p10->p90 player, ms):")
    print(table.round(2).to_string().replace("\n", "\n    ").join(["    ", ""]))
    tail = samples[samples.lag_plus_ms > p99].merge(
        frames[["kind", "timestamp", "round_kinds"]], on=["kind", "timestamp"]
    )
    share = (tail.groupby(["kind", "round_kinds"]).size() / len(tail) * 100).round(1)
    print(f"  tail samples (lag+ > {p99:.1f} ms) by frame kind and round, %: {share.to_dict()}")


if __name__ == "__main__":
    for dump in sys.argv[1:]:
        report(dump)
