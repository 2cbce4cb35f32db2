# Seed 003: apply_async with a callback; it does not block. As the seed has
# it, but for the import lines, which its fragment leaves out (these are its
# complete programs'), the indentation the fragment has there, and one
# number: the seed's main thread sleeps 1 s, as long as the task, before
# leaving the `with` block, which terminates the pool. That is a race: CPython
# mostly wins it (its terminate takes a moment), sometimes loses it, and
# prints neither "in func!!!!" nor "Run !!!!"; wasmpool stops its workers
# at once and would always lose it. Here the main thread sleeps 2 s.
from wasmpool import Pool
import time
import wasmpool as ms
import os


# 回调函数，注意必须可以接收参数
def cb(*args, **kwargs):
  print("Run !!!!")

def func(*args, **kwargs):
  print(args)
  print(kwargs)
  time.sleep(1)
  print("in func!!!!")


ms.set_start_method('fork')
with Pool(processes=3) as pool:  # 上下文管理
  pool.apply_async(func, (123, 345), {'a': 1, 'b': 2}, callback=cb) # 注意参数的传递必须为元组和字典
  print('in pool!!!')
  time.sleep(2)
