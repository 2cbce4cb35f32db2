"""The functions the tests of the `wasmpool` package run as tasks: plain
functions, built whole into a component (every top-level function a task)."""

import os
import time


#: Set by the pool's initializer, in each worker.
BASE = 0


def set_base(base):
    global BASE
    BASE = base


def get_base():
    return BASE


def square(x):
    return x * x


def spread(*args, **kwargs):
    return args, kwargs


class Shapes:
    """Static and class methods are tasks; a bound method is not."""

    @staticmethod
    def square_area(side):
        return side * side

    @classmethod
    def named(cls, name):
        return f"{cls.__name__}:{name}"

    def area(self, side):
        return side * side


def echo(value):
    return value


def greet(name, greeting="Hello"):
    return f"{greeting}, {name}!"


def divide(a, b):
    return a / b


def look_up(key):
    return {"a": 1}[key]


class Custom(Exception):
    """An exception type that is not built in."""


def fail_custom(message):
    raise Custom(message)


def spin(seconds):
    """Busy for `seconds` of wall time."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def nap(seconds):
    time.sleep(seconds)
    return seconds


def allocate(megabytes):
    block = bytearray(megabytes << 20)
    return len(block)


def shout(text):
    print(text, end="", flush=True)
    return len(text)


def environment_size():
    return len(os.environ)
