# Seed 003: the same map in one chunk of 7 ("设置chunksize=7", the seed says
# of the program before): one worker runs every task. As the seed has it,
# with 7 for 3, but for the import lines, which its fragment leaves out
# (these are its complete programs').
from wasmpool import Pool
import time
import wasmpool as ms
import os


def func(args):
  print(args, ":", os.getpid())


ms.set_start_method('fork')
with Pool(processes=3) as pool:  # 上下文管理
  pool.map(func, [1, 2, 3, 4, 5, 6, 7], 7)  # 注意参数的传递必须为元组和字典
