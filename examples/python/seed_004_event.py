# Seed 004: an Event lets a child go on after five seconds (事件). The seed's
# program, but for its import lines.
from wasmpool import Process, Event
import time


# 获取指定秒数后的时间
def get_addsec_time(sec=0):
    return time.strftime("%Y-%m-%d %X", time.localtime(time.time() + sec))


def func(e):
    print('func准备执行')
    e.wait()  # 当e.is_set()为True时执行后面代码
    print('执行了,当前时间:{}'.format(time.strftime("%Y-%m-%d %X")))


if __name__ == '__main__':
    e = Event()
    print(e.is_set())  # False 初始是阻塞状态
    e.set()
    print(e.is_set())  # True 不阻塞
    e.clear()
    print(e.is_set())  # False 恢复阻塞
    after_five_sec = get_addsec_time(5)  # 5秒后的时间
    Process(target=func, args=(e,)).start()
    while True:
        print('当前时间:{}'.format(time.strftime("%Y-%m-%d %X")))
        time.sleep(1)
        if time.strftime("%Y-%m-%d %X") == after_five_sec:
            print('5秒过去了')
            e.set()
            break;
