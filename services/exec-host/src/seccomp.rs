//! The seccomp filter every runtime process gets just before `exec`: system calls that reach
//! rarely needed kernel attack surface, or that could undo the sandbox, fail with EPERM (the
//! process is never killed, so runtimes that probe for a feature fall back cleanly).
//!
//! `socket` and `socketpair` are limited to the families runtimes use (`AF_UNIX`, `AF_INET`,
//! `AF_INET6`, and `AF_NETLINK` for `NETLINK_ROUTE` only, which `getifaddrs` needs); every other
//! family fails with EAFNOSUPPORT, what the kernel itself answers for a family it lacks, so
//! runtimes treat it as "not available". That shuts `AF_VSOCK` (the hypervisor's host side),
//! `AF_PACKET`, `AF_ALG`, `AF_XDP` and the families whose first use autoloads a kernel module.
//!
//! The BPF program is built before the fork; the child only passes it to `prctl`.
#![allow(unsafe_code)]

use std::io;

/// System calls that fail with EPERM (x86_64 numbers).
const DENIED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_userfaultfd,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_settimeofday,
    libc::SYS_syslog,
    libc::SYS_quotactl,
    libc::SYS_lookup_dcookie,
    libc::SYS_mount_setattr,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_vhangup,
    libc::SYS_uselib,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
];

/// `personality(2)` values that stay allowed (the ones Docker's default profile allows):
/// PER_LINUX, PER_LINUX32, UNAME26 variants, and the 0xffffffff query.
const PERSONALITIES: &[u32] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Namespace flags `clone` may not use.
const NS_FLAGS: u32 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u32;

/// Socket families that stay available.
const SOCKET_FAMILIES: &[i32] = &[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6];

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

// seccomp_data offsets: nr, arch, instruction pointer, args[6] (u64 each; low half first on x86_64).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0: u32 = 16;
const OFF_ARG2: u32 = 32;

// Classic BPF opcodes.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// A compiled filter, ready for `prctl(PR_SET_SECCOMP)`.
#[derive(Debug, Clone)]
pub(crate) struct Filter(Vec<libc::sock_filter>);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Next,
    Allow,
    Eperm,
    Enosys,
    Eafnosupport,
    Eprotonosupport,
    Clone,
    Personality,
    Socket,
    Netlink,
}

struct Ins {
    code: u16,
    k: u32,
    jt: Label,
    jf: Label,
}

fn stmt(code: u16, k: u32) -> Ins {
    Ins { code, k, jt: Label::Next, jf: Label::Next }
}

fn jump(code: u16, k: u32, jt: Label, jf: Label) -> Ins {
    Ins { code, k, jt, jf }
}

impl Filter {
    /// Builds the sandbox filter for x86_64 (other architectures and the x32 ABI get EPERM).
    pub(crate) fn sandbox() -> Filter {
        let mut main = vec![
            stmt(LD_W_ABS, OFF_ARCH),
            jump(JEQ_K, AUDIT_ARCH_X86_64, Label::Next, Label::Eperm),
            stmt(LD_W_ABS, OFF_NR),
            jump(JGE_K, X32_SYSCALL_BIT, Label::Eperm, Label::Next),
            jump(JEQ_K, libc::SYS_clone as u32, Label::Clone, Label::Next),
            // clone3 passes its flags behind a pointer seccomp cannot read: ENOSYS makes libc
            // fall back to clone, whose flags are checked.
            jump(JEQ_K, libc::SYS_clone3 as u32, Label::Enosys, Label::Next),
            jump(JEQ_K, libc::SYS_personality as u32, Label::Personality, Label::Next),
            jump(JEQ_K, libc::SYS_socket as u32, Label::Socket, Label::Next),
            jump(JEQ_K, libc::SYS_socketpair as u32, Label::Socket, Label::Next),
        ];
        for &nr in DENIED {
            main.push(jump(JEQ_K, nr as u32, Label::Eperm, Label::Next));
        }
        main.push(stmt(RET_K, RET_ALLOW));
        // Blocks only jump forward (classic BPF has no backward jumps), so the shared returns come last.
        let blocks: Vec<(Label, Vec<Ins>)> = vec![
            (Label::Clone, vec![stmt(LD_W_ABS, OFF_ARG0), jump(JSET_K, NS_FLAGS, Label::Eperm, Label::Allow)]),
            (Label::Personality, {
                let mut v = vec![stmt(LD_W_ABS, OFF_ARG0)];
                v.extend(PERSONALITIES.iter().map(|&p| jump(JEQ_K, p, Label::Allow, Label::Next)));
                v.push(stmt(RET_K, RET_ERRNO | libc::EPERM as u32));
                v
            }),
            // The kernel reads the family and protocol as ints: the low halves are the whole value.
            (Label::Socket, {
                let mut v = vec![stmt(LD_W_ABS, OFF_ARG0)];
                v.extend(SOCKET_FAMILIES.iter().map(|&f| jump(JEQ_K, f as u32, Label::Allow, Label::Next)));
                v.push(jump(JEQ_K, libc::AF_NETLINK as u32, Label::Netlink, Label::Eafnosupport));
                v
            }),
            (
                Label::Netlink,
                vec![
                    stmt(LD_W_ABS, OFF_ARG2),
                    jump(JEQ_K, libc::NETLINK_ROUTE as u32, Label::Allow, Label::Eprotonosupport),
                ],
            ),
            (Label::Allow, vec![stmt(RET_K, RET_ALLOW)]),
            (Label::Eperm, vec![stmt(RET_K, RET_ERRNO | libc::EPERM as u32)]),
            (Label::Enosys, vec![stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32)]),
            (Label::Eafnosupport, vec![stmt(RET_K, RET_ERRNO | libc::EAFNOSUPPORT as u32)]),
            (Label::Eprotonosupport, vec![stmt(RET_K, RET_ERRNO | libc::EPROTONOSUPPORT as u32)]),
        ];
        let mut all: Vec<Ins> = main;
        let mut at: Vec<(Label, usize)> = Vec::new();
        for (label, ins) in blocks {
            at.push((label, all.len()));
            all.extend(ins);
        }
        let resolve = |label: Label, pc: usize| -> u8 {
            if label == Label::Next {
                return 0;
            }
            let target = at.iter().find(|(l, _)| *l == label).map(|(_, i)| *i).expect("every label has a block");
            u8::try_from(target - pc - 1).expect("seccomp jump fits in 8 bits")
        };
        let prog = all
            .iter()
            .enumerate()
            .map(|(pc, i)| libc::sock_filter { code: i.code, jt: resolve(i.jt, pc), jf: resolve(i.jf, pc), k: i.k })
            .collect();
        Filter(prog)
    }

    /// Installs the filter on the calling thread (needs no_new_privs or CAP_SYS_ADMIN). Only a
    /// raw syscall: safe between fork and exec.
    pub(crate) fn apply(&self) -> io::Result<()> {
        let prog = libc::sock_fprog { len: self.0.len() as libc::c_ushort, filter: self.0.as_ptr().cast_mut() };
        // SAFETY: prctl reads the program through `prog`, which points into our live Vec.
        let r = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const libc::sock_fprog as libc::c_ulong,
                0,
                0,
            )
        };
        if r != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_is_well_formed() {
        let f = Filter::sandbox();
        assert!(f.0.len() < 4096);
        for (pc, ins) in f.0.iter().enumerate() {
            assert!(pc + 1 + (ins.jt.max(ins.jf) as usize) < f.0.len() || ins.code == RET_K);
        }
        assert_eq!(f.0.last().map(|i| i.code), Some(RET_K));
    }

    /// errno of `socket(family, type, protocol)` under the filter, in a forked child (0: allowed).
    fn socket_errno_filtered(calls: &[(i32, i32, i32)]) -> Vec<i32> {
        let f = Filter::sandbox();
        calls
            .iter()
            .map(|&(family, ty, proto)| {
                // SAFETY: the child only makes raw system calls and `_exit`s.
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0, "fork");
                if pid == 0 {
                    // SAFETY: prctl/socket/_exit with plain arguments, in the child only.
                    unsafe {
                        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                        if f.apply().is_err() {
                            libc::_exit(255);
                        }
                        let fd = libc::socket(family, ty, proto);
                        libc::_exit(if fd >= 0 { 0 } else { *libc::__errno_location() });
                    }
                }
                let mut status = 0;
                // SAFETY: waits for the child forked above.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                assert!(libc::WIFEXITED(status));
                libc::WEXITSTATUS(status)
            })
            .collect()
    }

    #[test]
    fn only_unix_inet_and_route_netlink_sockets() {
        use libc::*;
        let got = socket_errno_filtered(&[
            (AF_UNIX, SOCK_STREAM, 0),
            (AF_INET, SOCK_DGRAM, 0),
            (AF_INET6, SOCK_STREAM, 0),
            (AF_NETLINK, SOCK_RAW, NETLINK_ROUTE),
            (AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG),
            (AF_VSOCK, SOCK_STREAM, 0),
            (AF_PACKET, SOCK_RAW, 0),
            (AF_ALG, SOCK_SEQPACKET, 0),
            (AF_XDP, SOCK_RAW, 0),
            (AF_INET | 0x1_0000, SOCK_STREAM, 0),
        ]);
        let want = [0, 0, 0, 0, EPROTONOSUPPORT, EAFNOSUPPORT, EAFNOSUPPORT, EAFNOSUPPORT, EAFNOSUPPORT, EAFNOSUPPORT];
        assert_eq!(got, want);
    }
}
