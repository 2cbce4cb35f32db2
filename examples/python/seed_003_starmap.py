# Seed 003: starmap unpacks each item into the task's arguments, once. As
# the seed has it, but for the import lines, which its fragment leaves out
# (these are its complete programs'), and the line before its code, which
# describes it rather than being Python: `[(1,2), (3, 4)] results in
# [func(1,2), func(3,4)]`.
from wasmpool import Pool
import time
import wasmpool as ms
import os


def func(*args, **kwargs):
  ret = f"{args}:{os.getpid()}"
  return ret


ms.set_start_method('fork')
with Pool(processes=3) as pool:  # 上下文管理
  ret = pool.starmap(func, [[1, 2, 3, [1, 2, 3]], [4, 4, 5, 6], [43, 432]],
                     3) 
  print(ret)
