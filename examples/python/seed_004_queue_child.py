# Seed 004: a child puts on a Queue its parent reads (子进程与主进程通行). The seed's
# program, but for its import lines. As under CPython, it fails: the seed
# passes `args=(q)`, which is the queue itself, not a tuple, and a queue is
# not iterable.
from wasmpool import Process, Queue

def func(q, e):
    q.put('from son process')

if __name__ == '__main__':
    q = Queue(5)  # 初始化队列容量为5
    p = Process(target=func, args=(q))
    p.start()
    p.join()
    print(q.get())  # from son process
