# Seed 004: a producer and a consumer on a JoinableQueue (生产者和消费者模型). The
# seed's program, but for its import lines.
from wasmpool import JoinableQueue, Process
import time
import random


def producer(name, q):
    for i in range(1, 11):
        time.sleep(random.randint(1, 2))
        s = '{}生产的第{}个苹果'.format(name, i)
        q.put(s)
        print(s)
    q.join()  # 生产完毕,使用此方法进行阻塞,直到队列中所有苹果都被吃完。


def consumer(name, q):
    while True:
        time.sleep(random.randint(2, 3))
        s = q.get()
        print('{}吃了{}'.format(name, s))
        q.task_done()  # 向q.join()发送一次信号,证明一个数据已经被取走了


if __name__ == '__main__':
    q = JoinableQueue(10)
    producer_task = Process(target=producer, args=('bob', q))
    producer_task.start()
    consumer_task = Process(target=consumer, args=('tom', q))
    consumer_task.daemon = True  # 设置为守护进程 随主进程代码执行完而结束
    consumer_task.start()

    producer_task.join()  # 等待至生产完且生产的苹果都被吃完时继续执行即主进程代码结束
