# Seed 004: ten children count down a Manager's dict (Manager). The seed's
# program, but for its import lines.
from wasmpool import Manager, Process, Lock

def work(d, lock):
    # with lock:
        d['count'] -= 1

if __name__ == '__main__':
    with Manager() as m:
        lock = Lock()
        dic = m.dict({'count': 100})
        p_l = []
        for i in range(10):
            p = Process(target=work, args=(dic, lock))
            p_l.append(p)
            p.start()
        for p in p_l: p.join()

        print(dic)  # {'count': 91}
