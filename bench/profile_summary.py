#!/usr/bin/env python3
"""Summarise a py-spy profile in raw (collapsed) format, as written by `bench/run.py --py-spy DIR`.

    python bench/profile_summary.py DIR/posix-posix-multi.txt [--top 20] [--thread NAME]

Prints the samples per thread, and the functions with the most samples on top of the stack (self)
and anywhere in it (inclusive), as shares of all samples. The profile includes idle samples, so
shares are of wall time per thread.
"""

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?):(?P<line>\d+)\)$")


def short(frame: str) -> str:
    match = FRAME.match(frame)
    if match is None:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('function')} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--thread", help="only the threads whose name contains this")
    args = parser.parse_args()
    threads, selfs, inclusive = Counter(), Counter(), Counter()
    total = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue  # a frame name with a line break in it continues on this line
        frames = stack.split(";")
        thread = next((frame for frame in frames if frame.startswith("thread ")), "?")
        if args.thread and args.thread not in thread:
            continue
        samples = int(count)
        total += samples
        threads[re.sub(r"0x[0-9a-f]+", "", thread)] += samples
        code = [short(frame) for frame in frames if not frame.startswith(("thread ", "process "))]
        if code:
            selfs[code[-1]] += samples
        for name in set(code):
            inclusive[name] += samples
    print(f"{args.profile.name}: {total} samples")
    print("\nper thread:")
    for name, samples in threads.most_common(10):
        print(f"  {samples / total:6.1%}  {name}")
    print("\nself (top of stack):")
    for name, samples in selfs.most_common(args.top):
        print(f"  {samples / total:6.1%}  {name}")
    print("\ninclusive:")
    for name, samples in inclusive.most_common(args.top):
        print(f"  {samples / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
