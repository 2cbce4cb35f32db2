# Seed 004: join() waits for the child (join). The seed's program, but for its
# import lines.
import time
from wasmpool import Process


def f(name):
    print('hello', name)
    time.sleep(2)
    print('我是子进程')


if __name__ == '__main__':
    p = Process(target=f, args=('bob',))
    p.start()
    time.sleep(1)
    p.join()
    print('执行主进程的内容了')
