# Seed 004: EOFError once every end is closed (引发 EOFError). The seed's
# program, but for its import lines.
from wasmpool import Process, Pipe

def f(child_conn):
    while True:
        try:
            print(child_conn.recv())
        except EOFError:
            child_conn.close()
            break

if __name__ == '__main__':
    parent_conn, child_conn = Pipe()
    p = Process(target=f, args=(child_conn,))
    p.start()
    child_conn.close()
    parent_conn.send('hello')
    parent_conn.close()
    p.join()
