#!/usr/bin/env python3
"""Deterministic benchmark corpora for benches/compare.sh.

    corpus.py small  DIR [--scale S] [--seed N]   ~50,000 source-like text files of 1-16 KiB in ~2,000 dirs
    corpus.py mixed  DIR [--scale S] [--seed N]   ~2 GiB in a few hundred 1-64 MiB files: half compressible
                                                  text and logs, half random; duplicated files and files
                                                  sharing long ranges
    corpus.py mutate DIR [--seed N]               edits, appends to, renames, deletes and adds ~1% of files

The same seed gives the same bytes on every machine (random bytes come from a seeded
BLAKE2 stream, not the OS), so runs of different tools and days compare exactly.
--scale multiplies file counts (small) or total size (mixed): 0.1 for a quick run.
"""

import argparse
import hashlib
import os
import random
import sys

WORDS = (
    "fn let mut struct impl pub use return match if else for while loop self Some None Ok Err "
    "Vec String usize u64 i32 bool true false async await const static trait where type enum "
    "error request response buffer index cache file path repository snapshot chunk pack blob tree"
).split()
LOG_LEVELS = ["INFO", "DEBUG", "WARN", "ERROR"]


def random_bytes(seed: bytes, n: int) -> bytes:
    """n pseudo-random bytes from a seeded hash stream (incompressible, reproducible)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.shake_256(seed + counter.to_bytes(8, "little")).digest(1 << 20)
        counter += 1
    return bytes(out[:n])


def source_text(rng: random.Random, size: int) -> bytes:
    lines = []
    total = 0
    depth = 0
    while total < size:
        depth = max(0, min(6, depth + rng.choice((-1, 0, 0, 1))))
        line = "    " * depth + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 10)))
        line += rng.choice((";", " {", "", ",", ")"))
        lines.append(line)
        total += len(line) + 1
    return ("\n".join(lines) + "\n").encode()[:size]


def log_text(rng: random.Random, size: int) -> bytes:
    out = []
    total = 0
    t = 1_700_000_000 + rng.randint(0, 10**6)
    while total < size:
        t += rng.randint(0, 3)
        line = (
            f"{t} {rng.choice(LOG_LEVELS)} worker-{rng.randint(1, 16)} "
            f"GET /api/v1/{rng.choice(WORDS)}/{rng.randint(1, 99999)} {rng.choice((200, 200, 200, 404, 500))} "
            f"{rng.randint(100, 90000)}us\n"
        )
        out.append(line)
        total += len(line)
    return "".join(out).encode()[:size]


def small(root: str, scale: float, seed: int) -> None:
    rng = random.Random(seed)
    files = int(50_000 * scale)
    dirs = max(1, int(2_000 * scale))
    made = 0
    for d in range(dirs):
        path = os.path.join(root, f"pkg{d // 50:03}", f"mod{d:04}")
        os.makedirs(path, exist_ok=True)
        for _ in range(files // dirs):
            name = f"{rng.choice(WORDS)}_{made}.rs"
            with open(os.path.join(path, name), "wb") as f:
                f.write(source_text(rng, rng.randint(1024, 16 * 1024)))
            made += 1
    print(f"small: {made} files in {dirs} directories under {root}")


def mixed(root: str, scale: float, seed: int) -> None:
    rng = random.Random(seed)
    target = int((2 << 30) * scale)
    made = 0
    i = 0
    os.makedirs(root, exist_ok=True)
    previous = []
    while made < target:
        # Log-uniform 1-64 MiB: many small-to-medium files, a few big ones.
        size = min(int((1 << 20) * 2 ** rng.uniform(0, 6)), max(1 << 20, target - made))
        d = os.path.join(root, f"set{i % 23:02}")
        os.makedirs(d, exist_ok=True)
        kind = i % 10
        if kind < 4:
            data = random_bytes(f"{seed}-{i}".encode(), size)
            name = f"media{i}.bin"
        elif kind < 8:
            data = (log_text if kind % 2 else source_text)(rng, size)
            name = f"text{i}.log"
        elif kind == 8 and previous:
            data = open(rng.choice(previous), "rb").read()  # an exact duplicate
            name = f"copy{i}.bin"
        else:
            # Shares a long range with an earlier file, with new bytes around it.
            base = open(rng.choice(previous), "rb").read() if previous else b""
            cut = len(base) // 3
            data = random_bytes(f"{seed}-head-{i}".encode(), 1 << 20) + base[cut : 2 * cut] + log_text(rng, 1 << 20)
            name = f"shared{i}.bin"
        p = os.path.join(d, name)
        with open(p, "wb") as f:
            f.write(data)
        previous.append(p)
        made += len(data)
        i += 1
    print(f"mixed: {i} files, {made >> 20} MiB under {root}")


def mutate(root: str, seed: int) -> None:
    rng = random.Random(seed + 1)
    paths = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs)
    k = max(1, len(paths) // 100)
    picked = rng.sample(paths, min(len(paths), 5 * k))
    edits, appends, renames, deletes = picked[:k], picked[k : 2 * k], picked[2 * k : 3 * k], picked[3 * k : 4 * k]
    for p in edits:
        with open(p, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(rng.randint(0, max(0, size - 4096)))
            f.write(random_bytes(f"edit-{p}".encode(), min(4096, size)))
    for p in appends:
        with open(p, "ab") as f:
            f.write(log_text(rng, rng.randint(1024, 256 * 1024)))
    for p in renames:
        os.rename(p, p + ".renamed")
    for p in deletes:
        os.remove(p)
    for j in range(k):
        d = os.path.dirname(rng.choice(paths))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"added{j}.txt"), "wb") as f:
            f.write(source_text(rng, rng.randint(1024, 64 * 1024)))
    print(f"mutate: {k} edited, {k} appended, {k} renamed, {k} deleted, {k} added")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["small", "mixed", "mutate"])
    ap.add_argument("dir")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    {"small": lambda: small(a.dir, a.scale, a.seed), "mixed": lambda: mixed(a.dir, a.scale, a.seed), "mutate": lambda: mutate(a.dir, a.seed)}[a.kind]()


if __name__ == "__main__":
    sys.exit(main())
