"""Python fixtures of the integration tests (tests/cli/python.rs): each task
exercises one promise of the Python guest SDK through real workers."""

import os
import sys
import time

from wasmpool_guest import TaskError, call_host, task, task_index, worker_pid


@task
def square(x):
    return x * x


@task
def echo(value):
    return value


#: Where `swap_secret` leaves its secret in the instance: a global, a buffer
#: (and the environment).
SECRET = None
SECRET_BUFFER = bytearray(32)


@task
def swap_secret(secret):
    """Says where an earlier task of this instance left its secret, then
    leaves `secret` (an int) in the same places."""
    global SECRET
    found = []
    if SECRET is not None:
        found.append(f"global {SECRET}")
    text = bytes(SECRET_BUFFER).rstrip(b"\0").decode()
    if text:
        found.append(f"buffer {text}")
    if "SECRET" in os.environ:
        found.append(f"environment {os.environ['SECRET']}")
    SECRET = secret
    written = str(secret).encode()
    SECRET_BUFFER[:] = written + bytes(len(SECRET_BUFFER) - len(written))
    os.environ["SECRET"] = str(secret)
    return found


@task
def divide(a, b):
    if b == 0:
        raise TaskError("division by zero")
    return a // b


@task
def raise_value_error(message):
    raise ValueError(message)


@task
def exit_with(code):
    sys.exit(code)


@task
def interrupt():
    raise KeyboardInterrupt


@task
def spin():
    while True:
        pass


@task
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@task
def allocate(mib):
    blocks = [bytearray(1 << 20) for _ in range(mib)]
    return len(blocks)


@task
def shout(line):
    print(f"out: {line}")
    print(f"err: {line}", file=sys.stderr)
    return len(line)


@task
def write_parts(text):
    """Writes `text` and a `!` without ending the line, to a stdout set to
    hold text back until it is flushed, as a program may set it."""
    sys.stdout.reconfigure(write_through=False)
    sys.stdout.write(text)
    sys.stdout.write("!")
    return len(text)


@task
def greet(name, greeting="Hello", times=1):
    return " ".join([f"{greeting}, {name}!"] * times)


@task
def place(value):
    return {"pid": worker_pid(), "index": task_index(), "value": value}


@task
def ask_host(name, *, arg=None):
    return call_host(name, arg)


@task
def bad_result():
    return object()


@task
def locked_increments(lock, counter, times):
    died = 0
    for _ in range(times):
        with lock:
            died += lock.previous_holder_died
            n = counter.get()
            counter.set(n + 1)
    return died


@task
def drain(queue, count):
    total = 0
    for _ in range(count):
        total += queue.get(timeout=10)
    queue.put({"total": total})
    return total


@task
def lazy_import():
    import json  # noqa: F401 - a lazy import the build does not see

    return "imported"
