# Seed 003: apply, which blocks until its task returns, in a pool started
# at the top level with the fork start method, as the seed has it (no
# `__main__` guard), but for the import lines; the seed's fragment leaves
# them out, and these are its complete programs' (`from multiprocessing
# import Pool`, `time`, `multiprocessing as ms`, `os`).
from wasmpool import Pool
import time
import wasmpool as ms
import os


def func(*args, **kwargs):
  print(args)
  print(kwargs)
  time.sleep(1)
  print("in func!!!!")


ms.set_start_method('fork')
with Pool(processes=3) as pool:  # 上下文管理
  pool.apply(func, (123, 345), {'a': 1, 'b': 2}) # 注意参数的传递必须为元组和字典
  print('in pool!!!')
