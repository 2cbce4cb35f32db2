# Seed 004: a message through a Pipe (管道). The seed's program, but for its
# import lines.
from wasmpool import Process, Pipe


def f(conn):
    conn.send("from sub process")
    conn.close()


if __name__ == '__main__':
    parent_conn, child_conn = Pipe()
    p = Process(target=f, args=(child_conn,))
    p.start()
    print(parent_conn.recv())  # from sub process
    p.join()
