# Seed 003: map's results come back as one list, in order. As the seed has
# it, but for the import lines, which its fragment leaves out (these are its
# complete programs').
from wasmpool import Pool
import time
import wasmpool as ms
import os


# 返回结果会被组合成list
def func(args):
  ret = f"({args}:{os.getpid()})"
  return ret

ms.set_start_method('fork')
with Pool(processes=3) as pool:  # 上下文管理
  ret = pool.map(func, [1, 2, 3, 4, 5, 6, 7], 3)  # 注意参数的传递必须为元组和字典
  print(ret) # ['(1:46086)', '(2:46086)', '(3:46086)', '(4:46087)', '(5:46087)', '(6:46087)', '(7:46087)']
