# Seed 004: several children, joined (执行多个子进程). The seed's program, but for
# its import lines.
import time
from wasmpool import Process


def f(name):
    print('hello', name)
    time.sleep(1)


if __name__ == '__main__':
    p_lst = []
    for i in range(5):
        p = Process(target=f, args=('bob%s'%i,))
        p.start()
        p_lst.append(p)
    [p.join() for p in p_lst]
    print('父进程在执行')
