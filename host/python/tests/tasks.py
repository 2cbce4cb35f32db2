"""The functions the tests of the `wasmpool` package run as tasks: plain
functions, built whole into a component (every top-level function a task)."""

import os
import sys
import time

import wasmpool


#: Set by the pool's initializer, in each worker.
BASE = 0


def set_base(base):
    global BASE
    BASE = base


def get_base():
    return BASE


#: What `swap_secret` left in this instance.
SECRET = None


def swap_secret(secret):
    """The secret an earlier task left in this instance, if any; leaves its own."""
    global SECRET
    found, SECRET = SECRET, secret
    return found


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


# Shared objects, as a Python host hands them.


def count_under(lock, counter, times):
    """Adds 1 to `counter` `times` times, each under `lock`."""
    for _ in range(times):
        with lock:
            counter.value = counter.value + 1
    return times


def hold(lock, holding):
    """Takes `lock`, says so, and waits to be stopped."""
    lock.acquire()
    holding.set()
    time.sleep(600)


def take_back(lock):
    """Takes `lock`, waiting at most 5 s, and lets it go; whether it got it."""
    got = lock.acquire(timeout=5)
    if got:
        lock.release()
    return got


def produce(queue, items):
    for item in items:
        queue.put(item)
    return len(items)


def consume(queue, n):
    return [queue.get(timeout=10) for _ in range(n)]


def drain(queue):
    """Takes items until `None`, each marked done."""
    taken = []
    while True:
        item = queue.get(timeout=10)
        queue.task_done()
        if item is None:
            return taken
        taken.append(item)


def answer(conn):
    """Sends back what it receives, doubled, until end-of-file."""
    answered = 0
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return answered
        conn.send([message, message])
        answered += 1


def count_down(shared):
    shared["count"] -= 1
    shared.setdefault("seen", 0)
    return shared["count"]


def wait_for(event, seconds):
    return event.wait(seconds)


def forged(kind, ident):
    """Uses a handle it was not handed: kind `kind`, id `ident`."""
    # The guest SDK's own handles, which only the component has.
    import wasmpool_guest.objects as guest_objects

    lock = guest_objects.Lock(kind, ident)
    try:
        lock.acquire(timeout=1)
    except guest_objects.ObjectError as err:
        return f"refused: {err}"
    return "used"


# Processes.


def leave(code):
    sys.exit(code)


def report(text, seconds):
    time.sleep(seconds)
    print(text, flush=True)


class Greeter(wasmpool.Process):
    """A process whose `run` is its own, using its attributes."""

    def __init__(self, greeting, whom):
        super().__init__()
        self.greeting = greeting
        self.whom = whom

    def run(self):
        print(f"{self.greeting}, {self.whom}! ({self.name}, {os.getpid() != os.getppid()})")


def count_under_lock(shared, lock):
    with lock:
        shared["count"] -= 1


def read_text(path):
    with open(path) as file:
        return file.read()


def write_text(path, text):
    with open(path, "w") as file:
        return file.write(text)
