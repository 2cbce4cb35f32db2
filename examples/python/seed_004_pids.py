# Seed 004: process ids, the child's and its parent's (查看进程号). The seed's
# program, but for its import lines.
import os
from wasmpool import Process

def f(x):
    print('子进程id :',os.getpid(),'父进程id :',os.getppid())
    return x*x

if __name__ == '__main__':
    print('主进程id :', os.getpid())
    p_lst = []
    for i in range(5):
        p = Process(target=f, args=(i,))
        p.start()
