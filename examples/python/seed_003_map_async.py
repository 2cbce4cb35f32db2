# Seed 003: map_async in chunks of 5, its result got at once. As the seed
# has it, but for the import lines and one number: the seed's tasks sleep
# 11 s each, and a chunk's tasks run one after another in its worker, so the
# program took 55 s; here they sleep 1 s (5 s in all).
from wasmpool import Pool
import time
import wasmpool as ms
import os


# 回调函数，注意必须可以接收参数
def cb(*args, **kwargs):
  print("Run !!!!")


def func(args):
  time.sleep(1)

  ret = f"{args}:{os.getpid()}"
  return ret


ms.set_start_method('fork')
with Pool(processes=3) as pool:  # 上下文管理
  ret = pool.map_async(func, [1, 2, 3, 4, 5, 6, 7], 5)  # 注意参数的传递必须为元组和字典
  print(ret.get())  # 阻塞的获取结果(这里是主线程，因此阻塞的是组线程)
