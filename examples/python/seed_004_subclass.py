# Seed 004: a subclass of Process with its own run() (继承 Process 类开启进程). The
# seed's program, but for its import lines.
import os
from wasmpool import Process


class MyProcess(Process):
    def __init__(self, name):
        super().__init__()
        self.name = name

    def run(self):
        print(os.getpid())
        print(self.name)


if __name__ == '__main__':
    p1 = MyProcess('p1')
    p2 = MyProcess('p2')
    p3 = MyProcess('p3')
    # start会自动调用run
    p1.start()
    p2.start()
    p3.start()

    p1.join()
    p2.join()
    p3.join()
    print('主线程111')
