# Seed 004: five children one at a time, under a Lock (加锁后). The seed's
# program, but for its import lines.
from wasmpool import Lock
from wasmpool import Process
import time
import os

def func(lock):
    lock.acquire()
    time.sleep(1)
    print('正在执行子进程的进程号:{},当前时间:{}'.format(os.getpid(), time.strftime("%Y-%m-%d %X")))
    lock.release()

if __name__ == '__main__':
    lock = Lock()
    for i in range(5):
        Process(target=func, args=(lock,)).start()
