//! The second wall: once a worker has loaded its module, a seccomp filter
//! refuses what a worker never needs, so that a guest that escaped wasmtime
//! still could not act: no exec, no new processes, no sockets, no tracing,
//! no signals to other processes, and — unless the pool granted directories —
//! no opening of files.
//!
//! The process was started with no_new_privs, no core dumps, a capped number
//! of descriptors and an empty environment (see `worker::harden`).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::channel::Grants;
use crate::error::{Error, ErrorKind};

/// System calls refused outright.
const REFUSED: &[libc::c_long] = &[
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_chroot,
    libc::SYS_pivot_root,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_userfaultfd,
    libc::SYS_personality,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
];

/// System calls that open files by path, refused when no directory is granted.
const OPENING: &[libc::c_long] = &[
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_creat,
];

fn condition(
    arg: u8,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, seccompiler::Error> {
    Ok(SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Qword,
        op,
        value,
    )?)
}

fn filter(grants: &Grants) -> Result<BpfProgram, seccompiler::Error> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        REFUSED.iter().map(|call| (*call, Vec::new())).collect();
    if grants.dirs.is_empty() {
        rules.extend(OPENING.iter().map(|call| (*call, Vec::new())));
    }
    // clone3 passes its flags in memory the filter cannot read: refuse it
    // with ENOSYS, which makes the C library fall back to clone.
    let pid = u64::from(std::process::id());
    // clone without CLONE_THREAD makes a process; threads stay allowed.
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![condition(
            0,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            0,
        )?])?],
    );
    // Signals only to itself.
    rules.insert(
        libc::SYS_kill,
        vec![SeccompRule::new(vec![condition(
            0,
            SeccompCmpOp::Ne,
            pid,
        )?])?],
    );
    rules.insert(
        libc::SYS_tgkill,
        vec![SeccompRule::new(vec![condition(
            0,
            SeccompCmpOp::Ne,
            pid,
        )?])?],
    );
    let refuse = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )?;
    Ok(refuse.try_into()?)
}

fn clone3_filter() -> Result<BpfProgram, seccompiler::Error> {
    let rules = [(libc::SYS_clone3, Vec::new())].into_iter().collect();
    Ok(SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        TargetArch::x86_64,
    )?
    .try_into()?)
}

/// Installs the filters on every thread of the worker.
pub(crate) fn enter(grants: &Grants) -> Result<(), Error> {
    let failed = |err: seccompiler::Error| {
        Error::new(
            ErrorKind::Spawn,
            format!("cannot install the worker's seccomp filter: {err}"),
        )
    };
    let program = filter(grants).map_err(failed)?;
    let clone3 = clone3_filter().map_err(failed)?;
    seccompiler::apply_filter_all_threads(&program).map_err(failed)?;
    seccompiler::apply_filter_all_threads(&clone3).map_err(failed)?;
    Ok(())
}

/// Tries what the sandbox must refuse and lists what was not refused.
///
/// Each attempt is made so that it fails harmlessly whatever happens: exec of
/// a path that does not exist (refused: EPERM; not refused: ENOENT), a socket
/// that is closed at once, and — when no directory is granted — opening a
/// file that exists for reading.
pub(crate) fn probe(grants: &Grants) -> Vec<String> {
    let mut escapes = Vec::new();
    let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    // SAFETY: plain system calls on C strings that outlive them; a descriptor
    // that is returned is closed at once.
    unsafe {
        let path = c"/nonexistent/wasmpool-probe";
        let argv = [path.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
        if errno() != libc::EPERM {
            escapes.push(format!("execve was not refused (errno {})", errno()));
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd >= 0 {
            libc::close(fd);
            escapes.push("a socket could be created".to_string());
        }
        if grants.dirs.is_empty() {
            let fd = libc::open(c"/etc/passwd".as_ptr(), libc::O_RDONLY);
            if fd >= 0 {
                libc::close(fd);
                escapes.push("/etc/passwd could be opened".to_string());
            }
        }
        let pid = libc::fork();
        match pid {
            0 => libc::_exit(0),
            pid if pid > 0 => {
                libc::waitpid(pid, std::ptr::null_mut(), 0);
                escapes.push("a process could be forked".to_string());
            }
            _ => {}
        }
    }
    escapes
}
