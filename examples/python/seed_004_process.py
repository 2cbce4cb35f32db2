# Seed 004: a child process (创建子进程). The seed's program, but for its import
# lines.
import time
from wasmpool import Process


def f(name):
    print('hello', name)
    print('我是子进程')


if __name__ == '__main__':
    p = Process(target=f, args=('bob',))
    p.start()
    time.sleep(1)
    print('执行主进程的内容了')
