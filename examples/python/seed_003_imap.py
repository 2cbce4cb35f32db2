# Seed 003: imap, map's iterator, read twice. As the seed has it, but for
# the import lines.
from wasmpool import Pool
import time
import wasmpool as ms
import os


def func(args):
  ret = f"{args}:{os.getpid()}"
  return ret


ms.set_start_method('fork')
with Pool(processes=3) as pool:  # 上下文管理
  ret = pool.imap(func, [1, 2, 3, 4, 5, 6, 7], 3)  # 注意参数的传递必须为元组和字典
  print(ret.__next__())
  print(ret.__next__())
