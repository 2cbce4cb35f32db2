# Seed 004: a child that is not daemonic outlives its parent's code (非守护进程).
# The seed's program, but for its import lines, and a bound on the child's
# loop, which the seed runs for ever (`while True`: here, 8 rounds).
import time
from wasmpool import Process

def func():
    for _ in range(8):
        print('我还活着')
        time.sleep(0.5)

if __name__ == "__main__":
    p = Process(target=func)
    # p.daemon = True  # 设置子进程为守护进程
    p.start()
    i = 2
    while i > 0:
        print('主进程执行')
        time.sleep(1)
        i -= 1
    print('主进程执行完毕')
