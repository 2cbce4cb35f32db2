# Seed 003: map in chunks of 3, each task printing its item and its
# worker's pid: three workers take the chunks 1-3, 4-6 and 7. As the seed
# has it, but for the import lines, which its fragment leaves out (these are
# its complete programs').
from wasmpool import Pool
import time
import wasmpool as ms
import os


def func(args):
  print(args, ":", os.getpid())


ms.set_start_method('fork')
with Pool(processes=3) as pool:  # 上下文管理
  pool.map(func, [1, 2, 3, 4, 5, 6, 7], 3)  # 注意参数的传递必须为元组和字典
