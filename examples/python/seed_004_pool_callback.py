# Seed 004: a callback for each result (回调函数). The seed's program, but for its
# import lines.
from wasmpool import Pool

def func(i):
    return i * i

def callback_func(i):
    print(i)

if __name__ == '__main__':
    pool = Pool(5)
    for i in range(1, 11):
        pool.apply_async(func, args=(i,), callback=callback_func)
    pool.close()
    pool.join()
