"""Loopback ports for the private services the tests start."""

import random
import socket

# Linux hands out ephemeral ports from 32768 up: a fixed range below it is not taken by chance by a
# client connection between the check and the daemon's bind.
FIXED_PORT_RANGE = (20000, 32768)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(count: int, attempts: int = 200) -> int:
    """The first of `count` consecutive free loopback ports below the ephemeral range, for daemons
    that are given a port range rather than a port."""
    low, high = FIXED_PORT_RANGE
    for _ in range(attempts):
        first = random.randrange(low, high - count)
        if all(_bindable(port) for port in range(first, first + count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports between {low} and {high} on 127.0.0.1")
