//! Seed 004, "Pipe(管道)": a child process sends its parent a message
//! through a [`Pipe`]; then "引发 EOFError": a child prints what it
//! receives until end-of-file, which comes once every holder of the other
//! end — here the main program alone — has closed it. The main program
//! closes its copy of the child's end too, as the seed does.
//!
//! Run: `cargo run --release --example pipe`

use wasmpool::{Pipe, Pool};

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let context = Pool::builder()
        .module_file(wasmpool_artifacts::PROCESSES)
        .plain_output()
        .context()?;

    println!("-- send and recv");
    let (parent_conn, child_conn) = Pipe::new(true);
    let p = context
        .process("send_from_sub")
        .args((&child_conn,))
        .start()?;
    println!("{}", parent_conn.recv::<String>()?);
    p.join();
    // from sub process

    println!("-- end of file");
    let (parent_conn, child_conn) = Pipe::new(true);
    let p = context
        .process("print_until_eof")
        .args((&child_conn,))
        .start()?;
    child_conn.close();
    parent_conn.send(&"hello")?;
    parent_conn.close();
    p.join();
    println!("the child saw end-of-file: exit code {:?}", p.exitcode());
    // hello
    // the child saw end-of-file: exit code Some(0)
    Ok(())
}
