using System.Runtime.InteropServices;
using System.Text;
using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

public static unsafe partial class KernelHelpers
{
    /// <summary>bpf_get_current_pid_tgid.</summary>
    public const int GetCurrentPidTgidId = 14;
    /// <summary>bpf_get_current_uid_gid.</summary>
    public const int GetCurrentUidGidId = 15;
    /// <summary>bpf_get_current_comm.</summary>
    public const int GetCurrentCommId = 16;
    /// <summary>bpf_get_current_task.</summary>
    public const int GetCurrentTaskId = 35;
    /// <summary>bpf_get_ns_current_pid_tgid.</summary>
    public const int GetNsCurrentPidTgidId = 120;
    /// <summary>bpf_get_current_task_btf.</summary>
    public const int GetCurrentTaskBtfId = 158;
    /// <summary>bpf_probe_read_user.</summary>
    public const int ProbeReadUserId = 112;
    /// <summary>bpf_probe_read_kernel.</summary>
    public const int ProbeReadKernelId = 113;
    /// <summary>bpf_probe_read_user_str.</summary>
    public const int ProbeReadUserStrId = 114;
    /// <summary>bpf_probe_read_kernel_str.</summary>
    public const int ProbeReadKernelStrId = 115;

    /// <summary>
    /// TASK_SIZE_MAX of x86-64 with 4-level paging: user addresses are below it. The kernel refuses to read
    /// kernel memory below TASK_SIZE_MAX + PAGE_SIZE (-ERANGE) and reads user memory only below it.
    /// </summary>
    public const ulong TaskSizeMax = 0x7ffffffff000;

    const ulong PageSize = 4096;

    /// <summary>TASK_COMM_LEN: a thread name is at most 15 bytes and a NUL.</summary>
    public const int TaskCommLen = 16;

    [ThreadStatic] static ulong t_pidTgid;

    /// <summary>
    /// bpf_get_current_pid_tgid: the host process's id (the kernel's tgid) in the upper 32 bits and the calling
    /// thread's id (its pid) in the lower, as the host's pid namespace numbers them.
    /// </summary>
    public static ulong GetCurrentPidTgid(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        ulong v = t_pidTgid;
        if (v == 0) t_pidTgid = v = (ulong)(uint)Environment.ProcessId << 32 | (uint)CurrentTask.ThreadId();
        return v;
    }

    /// <summary>bpf_get_current_uid_gid: the host process's real group id in the upper 32 bits and its real user id in the lower.</summary>
    public static ulong GetCurrentUidGid(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        (ulong)CurrentTask.GroupId() << 32 | CurrentTask.UserId();

    /// <summary>
    /// bpf_get_current_comm(buf, size): the calling thread's name (<c>/proc/thread-self/comm</c>) copied as the
    /// kernel's strscpy_pad does: at most size - 1 bytes, then NULs to the end of the buffer. Returns 0.
    /// </summary>
    public static ulong GetCurrentComm(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        var buf = new Span<byte>((byte*)r1, (int)r2);
        Span<byte> comm = stackalloc byte[TaskCommLen];
        int length = CurrentTask.Comm(comm);
        buf.Clear();
        if (buf.Length > 0) comm[..Math.Min(length, buf.Length - 1)].CopyTo(buf);
        return 0;
    }

    /// <summary>
    /// bpf_get_ns_current_pid_tgid(dev, ino, nsdata, size): when (dev, ino) name the host process's pid namespace (the
    /// st_dev and st_ino of <c>/proc/self/ns/pid</c>), writes <c>struct bpf_pidns_info { u32 pid; u32 tgid; }</c> as that
    /// namespace numbers the thread and the process, and returns 0. Otherwise -EINVAL with nsdata zeroed, as the kernel
    /// for a size other than 8, a dev wider than the kernel's 32-bit dev_t, or another namespace.
    /// </summary>
    public static ulong GetNsCurrentPidTgid(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        var info = new Span<byte>((byte*)r3, (int)r4);
        if (r4 != 8 || r1 != (uint)r1 || CurrentTask.PidNamespace() is not { } ns || ns.Dev != r1 || ns.Ino != r2)
        {
            info.Clear();
            return Err(Errno.EINVAL);
        }
        ulong pidTgid = GetCurrentPidTgid(0, 0, 0, 0, 0);
        *(uint*)r3 = (uint)pidTgid;
        *(uint*)(r3 + 4) = (uint)(pidTgid >> 32);
        return 0;
    }

    /// <summary>
    /// bpf_get_current_task: the kernel's task_struct address, which a program can only hand to bpf_probe_read_kernel.
    /// BpfJit has no kernel memory, so it returns 0, which bpf_probe_read_kernel refuses (-ERANGE), as any read through it would fail.
    /// </summary>
    public static ulong GetCurrentTask(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => 0;

    /// <summary>The tag of the value bpf_get_current_task_btf returns: a handle, never an address.</summary>
    public const ulong CurrentTaskTag = 0xBFA5_0000_0000_0000;

    /// <summary>
    /// bpf_get_current_task_btf: a trusted, never-NULL pointer to the current task_struct in Linux. The verifier lets a
    /// program keep, compare and pass it but not read through it (BpfJit has no kernel BTF), so the value is a handle,
    /// <see cref="CurrentTaskTag"/> | the thread id: non-zero, distinct per thread, and no address of anything.
    /// </summary>
    public static ulong GetCurrentTaskBtf(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => CurrentTaskTag | (uint)CurrentTask.ThreadId();

    /// <summary>
    /// bpf_probe_read_user(dst, size, ptr): BpfJit does not read the host's memory on a program's behalf, so every read
    /// of at least one byte fails as the kernel's does at an unmapped address: dst zeroed, -EFAULT. An empty read of
    /// a user address succeeds (0) and of a kernel address is -EFAULT, as copy_from_user_nofault's access_ok decides.
    /// </summary>
    public static ulong ProbeReadUser(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (r2 == 0) return r3 < TaskSizeMax ? 0 : Err(Errno.EFAULT);
        new Span<byte>((byte*)r1, (int)r2).Clear();
        return Err(Errno.EFAULT);
    }

    /// <summary>
    /// bpf_probe_read_kernel(dst, size, ptr): a user address is refused (-ERANGE, copy_from_kernel_nofault_allowed);
    /// a kernel address reads nothing here (BpfJit has no kernel memory): -EFAULT, as at an unmapped one. dst is zeroed
    /// on failure; an empty read of a kernel address succeeds.
    /// </summary>
    public static ulong ProbeReadKernel(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        int err = r3 < TaskSizeMax + PageSize ? Errno.ERANGE : r2 == 0 ? 0 : Errno.EFAULT;
        if (err == 0) return 0;
        new Span<byte>((byte*)r1, (int)r2).Clear();
        return Err(err);
    }

    /// <summary>
    /// bpf_probe_read_user_str(dst, size, ptr): as <see cref="ProbeReadUser"/>, except that an empty read succeeds at
    /// any address (strncpy_from_user_nofault returns 0 for a count of 0 before it checks the address).
    /// </summary>
    public static ulong ProbeReadUserStr(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (r2 == 0) return 0;
        new Span<byte>((byte*)r1, (int)r2).Clear();
        return Err(Errno.EFAULT);
    }

    /// <summary>
    /// bpf_probe_read_kernel_str(dst, size, ptr): an empty read succeeds at any address; otherwise a user address is
    /// -ERANGE and a kernel address -EFAULT (nothing to read here), with dst zeroed.
    /// </summary>
    public static ulong ProbeReadKernelStr(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (r2 == 0) return 0;
        new Span<byte>((byte*)r1, (int)r2).Clear();
        return Err(r3 < TaskSizeMax + PageSize ? Errno.ERANGE : Errno.EFAULT);
    }

    /// <summary>The calling thread and process as the kernel's <c>current</c> describes them, through libc on Linux.</summary>
    internal static class CurrentTask
    {
        static readonly delegate* unmanaged[Cdecl, SuppressGCTransition]<int> s_gettid = (delegate* unmanaged[Cdecl, SuppressGCTransition]<int>)Export("gettid");
        static readonly delegate* unmanaged[Cdecl, SuppressGCTransition]<uint> s_getuid = (delegate* unmanaged[Cdecl, SuppressGCTransition]<uint>)Export("getuid");
        static readonly delegate* unmanaged[Cdecl, SuppressGCTransition]<uint> s_getgid = (delegate* unmanaged[Cdecl, SuppressGCTransition]<uint>)Export("getgid");
        /// <summary>prctl(PR_GET_NAME, buf): the thread's 16-byte name, the kernel's task->comm.</summary>
        static readonly delegate* unmanaged[Cdecl, SuppressGCTransition]<int, byte*, ulong, ulong, ulong, int> s_prctl =
            (delegate* unmanaged[Cdecl, SuppressGCTransition]<int, byte*, ulong, ulong, ulong, int>)Export("prctl");

        const int PrGetName = 16;

        /// <summary>stat(path, buf), or glibc's older __xstat(_STAT_VER, path, buf): st_dev and st_ino lead struct stat on 64-bit Linux.</summary>
        static readonly delegate* unmanaged[Cdecl]<byte*, byte*, int> s_stat = (delegate* unmanaged[Cdecl]<byte*, byte*, int>)Export("stat");
        static readonly delegate* unmanaged[Cdecl]<int, byte*, byte*, int> s_xstat = (delegate* unmanaged[Cdecl]<int, byte*, byte*, int>)Export("__xstat");

        static readonly Lazy<(ulong Dev, ulong Ino)?> s_pidNamespace = new(ReadPidNamespace);

        /// <summary>The device and inode of the process's pid namespace (<c>/proc/self/ns/pid</c>); null where there is none.</summary>
        public static (ulong Dev, ulong Ino)? PidNamespace() => s_pidNamespace.Value;

        static (ulong Dev, ulong Ino)? ReadPidNamespace() => Stat("/proc/self/ns/pid");

        /// <summary>stat(2) of <paramref name="file"/>: its st_dev and st_ino; null where it fails or there is no stat.</summary>
        public static (ulong Dev, ulong Ino)? Stat(string file)
        {
            if (s_stat == null && s_xstat == null) return null;
            byte[] path = Encoding.UTF8.GetBytes(file + "\0");
            ulong* buf = stackalloc ulong[64];      // 512 bytes: larger than struct stat on every 64-bit ABI
            fixed (byte* p = path)
            {
                // _STAT_VER is 1 on x86-64 and 0 on the generic ABIs (aarch64).
                int rc = s_stat != null ? s_stat(p, (byte*)buf) : s_xstat(RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 1 : 0, p, (byte*)buf);
                return rc == 0 ? (buf[0], buf[1]) : null;
            }
        }

        static nint Export(string name)
        {
            if (!OperatingSystem.IsLinux()) return 0;
            foreach (var lib in new[] { "libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libc" })
            {
                if (NativeLibrary.TryLoad(lib, out var handle) && NativeLibrary.TryGetExport(handle, name, out var fn)) return fn;
            }
            return 0;
        }

        /// <summary>The thread id (the kernel's pid of the task); the process id where libc has no gettid.</summary>
        public static int ThreadId() => s_gettid != null ? s_gettid() : Environment.ProcessId;

        /// <summary>The real user id; 0 where there is none to ask (not Linux).</summary>
        public static uint UserId() => s_getuid != null ? s_getuid() : 0;

        /// <summary>The real group id; 0 where there is none to ask (not Linux).</summary>
        public static uint GroupId() => s_getgid != null ? s_getgid() : 0;

        /// <summary>Writes the thread's name (without NUL) into <paramref name="comm"/> and returns its length.</summary>
        public static int Comm(Span<byte> comm)
        {
            comm.Clear();
            if (s_prctl != null)
            {
                fixed (byte* p = comm)
                {
                    if (s_prctl(PrGetName, p, 0, 0, 0) == 0)
                    {
                        int n = comm[..(TaskCommLen - 1)].IndexOf((byte)0);
                        return n >= 0 ? n : TaskCommLen - 1;
                    }
                }
            }
            // Elsewhere the process name stands for the thread's, cut as the kernel cuts a comm.
            byte[] name = Encoding.UTF8.GetBytes(Environment.ProcessPath is { } path ? Path.GetFileName(path) : "bpfjit");
            int length = Math.Min(name.Length, TaskCommLen - 1);
            name.AsSpan(0, length).CopyTo(comm);
            return length;
        }
    }
}
