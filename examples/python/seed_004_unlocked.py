# Seed 004: five children at once, without a lock (未加锁). The seed's program,
# but for its import lines.
from wasmpool import Process
import time
import os

def func():
    time.sleep(1)
    print('正在执行子进程的进程号:{},当前时间:{}'.format(os.getpid(), time.strftime("%Y-%m-%d %X")))

if __name__ == '__main__':
    for i in range(5):
        Process(target=func).start()
