# Seed 004: a pool against a process per task (效率对比). The seed's program, but
# for its import lines.
from wasmpool import Pool, Process
import time

def func(n):
    for i in range(100):
        n += i

if __name__ == '__main__':
    pool = Pool(5)
    start = time.time()
    pool.map(func, range(100))
    print('进程池执行耗时:{}'.format(time.time() - start))
    p_list = []
    start = time.time()
    for i in range(100):
        p = Process(target=func, args=(i,))
        p.start()
        p_list.append(p)
    for p in p_list: p.join()
    print('多进程执行耗时:{}'.format(time.time() - start))
