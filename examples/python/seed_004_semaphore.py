# Seed 004: two children at a time, under a Semaphore (信号量). The seed's
# program, but for its import lines.
from wasmpool import Process, Semaphore
import time


def func(num, s):
    s.acquire()
    print('编号:{} 正在执行,'.format(num), time.strftime("%Y-%m-%d %X"))
    time.sleep(1)
    s.release()


if __name__ == '__main__':
    s = Semaphore(2)
    for i in range(10):
        p = Process(target=func, args=(i, s))
        p.start()
