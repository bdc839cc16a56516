#!/usr/bin/env python3
"""Prints benches/compare.sh results as Markdown tables: medians over runs, cairn's ratio
to each other tool (time and RSS: other / cairn, so >1 means cairn is better; size the
same)."""

import statistics
import sys
from collections import defaultdict

STEPS = ["init", "backup", "rebackup", "mutated", "restore", "restore_disk", "restore_tmpfs", "prune", "check", "size"]
# Steps measured several times in A B B A order: the minimum is the tool's speed, the
# rest is other load on the machine.
MINIMA = {"restore_disk", "restore_tmpfs"}


def main(path: str) -> None:
    rows = defaultdict(list)  # (corpus, tool, step) -> [(secs, kib)]
    raw = {}
    singles = defaultdict(dict)  # corpus -> run -> single-pass seconds
    backups = defaultdict(dict)  # corpus -> run -> cairn first-backup seconds
    for line in open(path):
        tool, corpus, run, step, a, b = line.rstrip("\n").split("\t")
        if tool == "raw":
            raw[(corpus, step)] = (float(a), int(b))
            if step == "single_pass":
                singles[corpus][run] = float(a)
            continue
        if tool == "cairn" and step == "backup":
            backups[corpus][run] = float(a)
        rows[(corpus, tool, step)].append((float(a), int(b)))
    corpora = sorted({k[0] for k in rows})
    for corpus in corpora:
        tools = [t for t in ["cairn", "restic", "rustic", "borg"] if (corpus, t, "backup") in rows]
        size = raw.get((corpus, "bytes"), (0, 0))[0]
        read = raw.get((corpus, "read"), (0, 0))[0]
        single = statistics.median(singles[corpus].values()) if singles[corpus] else 0
        print(f"\n### {corpus}: {size / 2**20:.0f} MiB; reading it (cat) takes {read:.2f} s\n")
        # The ratio of each run's backup to the single pass measured just before it in
        # the same run (this VM's speed drifts between minutes), then their median.
        paired = [backups[corpus][r] / singles[corpus][r] for r in backups[corpus] if r in singles[corpus] and singles[corpus][r]]
        if single and paired:
            ratios = ", ".join(f"{x:.2f}" for x in paired)
            print(f"Raw single pass (read + hash + compress + encrypt on all cores, nothing stored): median {single:.2f} s; "
                  f"cairn's first backup takes {statistics.median(paired):.2f}x the single pass of the same run (runs: {ratios}).\n")
        print("| step | " + " | ".join(f"{t} s / MiB RSS" for t in tools) + " | " + " | ".join(f"vs {t}" for t in tools[1:]) + " |")
        print("|---" * (1 + len(tools) + len(tools) - 1) + "|")
        for step in STEPS:
            med = {}
            for t in tools:
                v = rows.get((corpus, t, step))
                if v:
                    agg = min if step in MINIMA else statistics.median
                    med[t] = (agg(x[0] for x in v), agg(x[1] for x in v))
            if "cairn" not in med:
                continue
            if step == "size":
                cells = [f"{med[t][0] / 2**20:.0f} MiB" if t in med else "-" for t in tools]
                ratios = [f"{med[t][0] / med['cairn'][0]:.2f}x smaller" if t in med and med["cairn"][0] else "-" for t in tools[1:]]
            else:
                cells = [f"{med[t][0]:.2f} / {med[t][1] / 1024:.0f}" if t in med else "-" for t in tools]
                ratios = [
                    f"{med[t][0] / max(med['cairn'][0], 0.01):.2f}x time, {med[t][1] / max(med['cairn'][1], 1):.2f}x RSS" if t in med else "-"
                    for t in tools[1:]
                ]
            print(f"| {step} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        # Each A B B A pass pairs every tool's restore with cairn's of the same pass.
        for step in sorted(MINIMA):
            ours = [x[0] for x in rows.get((corpus, "cairn", step), [])]
            for t in tools[1:]:
                theirs = [x[0] for x in rows.get((corpus, t, step), [])]
                if ours and len(theirs) == len(ours):
                    paired = ", ".join(f"{a / max(b, 0.01):.2f}" for a, b in zip(theirs, ours))
                    print(f"\n{step}: {t} / cairn in each pass: {paired}")


if __name__ == "__main__":
    main(sys.argv[1])
