using BpfJit.Frontend;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime;

/// <summary>
/// Helpers that take or return pointers to kernel objects described by kernel BTF (PTR_TO_BTF_ID): the socket casts
/// bpf_skc_to_*, and the cgroup v1 class id. A BTF pointer here is never something an engine reads through: the
/// verifier refuses loads through it (BpfJit has no kernel BTF), so it can only be kept, NULL-checked, compared and
/// passed to another helper that takes it.
/// </summary>
public static unsafe partial class KernelHelpers
{
    /// <summary>bpf_get_cgroup_classid.</summary>
    public const int GetCgroupClassidId = 17;
    /// <summary>bpf_skc_to_tcp6_sock.</summary>
    public const int SkcToTcp6SockId = 136;
    /// <summary>bpf_skc_to_tcp_sock.</summary>
    public const int SkcToTcpSockId = 137;
    /// <summary>bpf_skc_to_tcp_timewait_sock.</summary>
    public const int SkcToTcpTimewaitSockId = 138;
    /// <summary>bpf_skc_to_tcp_request_sock.</summary>
    public const int SkcToTcpRequestSockId = 139;
    /// <summary>bpf_skc_to_udp6_sock.</summary>
    public const int SkcToUdp6SockId = 140;
    /// <summary>bpf_skc_to_unix_sock.</summary>
    public const int SkcToUnixSockId = 178;
    /// <summary>bpf_skc_to_mptcp_sock.</summary>
    public const int SkcToMptcpSockId = 196;

    /// <summary>bpf_get_task_stack.</summary>
    public const int GetTaskStackId = 141;
    /// <summary>bpf_task_pt_regs.</summary>
    public const int TaskPtRegsId = 175;
    /// <summary>bpf_find_vma.</summary>
    public const int FindVmaId = 180;

    /// <summary>The tag of a <c>struct pt_regs</c> handle (bpf_task_pt_regs): the task's handle with this tag instead of <see cref="CurrentTaskTag"/>.</summary>
    public const ulong PtRegsTag = 0xBFA6_0000_0000_0000;

    /// <summary>bpf_snprintf_btf.</summary>
    public const int SnprintfBtfId = 149;
    /// <summary>bpf_per_cpu_ptr.</summary>
    public const int PerCpuPtrId = 153;
    /// <summary>bpf_this_cpu_ptr.</summary>
    public const int ThisCpuPtrId = 154;

    /// <summary>BPF_F_SKIP_FIELD_MASK: the frames to skip.</summary>
    const ulong StackSkipMask = 0xff;
    /// <summary>BPF_F_USER_STACK.</summary>
    const ulong StackUser = 1 << 8;
    /// <summary>BPF_F_USER_BUILD_ID.</summary>
    const ulong StackUserBuildId = 1 << 11;
    /// <summary>sizeof(struct bpf_stack_build_id): status, a 20-byte build id, an offset or ip.</summary>
    const ulong StackBuildIdSize = 32;

    /// <summary>BPF_TCP_TIME_WAIT.</summary>
    const uint TcpTimeWait = 6;
    /// <summary>BPF_TCP_NEW_SYN_RECV.</summary>
    const uint TcpNewSynRecv = 12;
    /// <summary>AF_UNIX.</summary>
    const uint AfUnix = 1;
    /// <summary>AF_INET6.</summary>
    const uint AfInet6 = 10;
    /// <summary>IPPROTO_TCP.</summary>
    const uint IpprotoTcp = 6;
    /// <summary>IPPROTO_UDP.</summary>
    const uint IpprotoUdp = 17;

    static Helper Cast(int id, HelperFunction function, string retStruct) =>
        new(id, HelperNames.Name(id)!, function,
            new HelperProto(RetType.PtrToBtfIdOrNull, ArgType.PtrToBtfIdSockCommon) { RetBtf = retStruct, PtrCast = true });

    /// <summary>The ids of the helpers on kernel BTF pointers (this file's), for tables that pick helpers by concern.</summary>
    public static IReadOnlySet<int> BtfHelperIds => s_btfHelperIds ??= BtfHelperIdSet();

    // Made on first use, not in the class's static constructor: that runs at a process's first program (the helper table),
    // which does not need it (docs/perf.md, "Cold start").
    static IReadOnlySet<int>? s_btfHelperIds;

    static HashSet<int> BtfHelperIdSet()
    {
        var ids = new HashSet<int>();
        foreach (var h in BtfHelpers()) ids.Add(h.Id);
        return ids;
    }

    /// <summary>The helpers of this file (SK_LOOKUP offers the casts through bpf_sk_base_func_proto).</summary>
    static IEnumerable<Helper> BtfHelpers() =>
    [
        Def(GetCgroupClassidId, GetCgroupClassid, RetType.Integer),
        Cast(SkcToTcp6SockId, SkcToTcp6Sock, "tcp6_sock"),
        Cast(SkcToTcpSockId, SkcToTcpSock, "tcp_sock"),
        Cast(SkcToTcpTimewaitSockId, SkcToTcpTimewaitSock, "tcp_timewait_sock"),
        Cast(SkcToTcpRequestSockId, SkcToTcpRequestSock, "tcp_request_sock"),
        Cast(SkcToUdp6SockId, SkcToUdp6Sock, "udp6_sock"),
        Cast(SkcToUnixSockId, SkcToUnixSock, "unix_sock"),
        Cast(SkcToMptcpSockId, SkcToMptcpSock, "mptcp_sock"),
        Def(SnprintfBtfId, SnprintfBtf, RetType.Integer, ArgType.PtrToUninitMem, ArgType.ConstSize, ArgType.PtrToMem, ArgType.ConstSize, ArgType.Anything),
        // The verifier refuses every argument BpfJit can give them (ArgType.PtrToPercpuBtfId): the result is never seen.
        Def(PerCpuPtrId, PerCpuPtr, RetType.Integer, ArgType.PtrToPercpuBtfId, ArgType.Anything),
        Def(ThisCpuPtrId, ThisCpuPtr, RetType.Integer, ArgType.PtrToPercpuBtfId),
        new Helper(GetTaskStackId, "bpf_get_task_stack", GetTaskStack,
            new HelperProto(RetType.Integer, ArgType.PtrToBtfId, ArgType.PtrToUninitMem, ArgType.ConstSizeOrZero, ArgType.Anything)
            { ArgBtf = "task_struct", RetBoundedBySize = true }),
        new Helper(TaskPtRegsId, "bpf_task_pt_regs", TaskPtRegs,
            new HelperProto(RetType.PtrToBtfId, ArgType.PtrToBtfId) { ArgBtf = "task_struct", RetBtf = "pt_regs" }),
        new Helper(FindVmaId, "bpf_find_vma", FindVma,
            new HelperProto(RetType.Integer, ArgType.PtrToBtfId, ArgType.Anything, ArgType.PtrToFunc, ArgType.PtrToStackOrNull, ArgType.Anything)
            { ArgBtf = "task_struct" }),
    ];

    /// <summary>
    /// bpf_get_cgroup_classid: the net_cls class id of <c>current</c>, which the kernel's task_cls_classid gives as 0 in
    /// interrupt context, where SK_LOOKUP runs (the packet's softirq), and for a task whose net_cls cgroup sets none (the
    /// only answer on a cgroup v2 host). A lookup here stands for a packet, not for the host thread that asks: 0.
    /// </summary>
    public static ulong GetCgroupClassid(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => 0;

    // The casts see a socket through its bpf_sock block (every socket pointer a program holds is one); the block holds
    // a full socket (sk_fullsock) whose protocol, type, family and state are the kernel's.
    static uint SockField(ulong sk, int offset) => *(uint*)(sk + (ulong)offset);

    /// <summary>bpf_skc_to_tcp6_sock(sk): sk when it is a full TCP socket of family AF_INET6, else NULL.</summary>
    public static ulong SkcToTcp6Sock(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        r1 != 0 && SockField(r1, BpfSockLayout.Protocol) == IpprotoTcp && SockField(r1, BpfSockLayout.Family) == AfInet6 ? r1 : 0;

    /// <summary>bpf_skc_to_tcp_sock(sk): sk when it is a full TCP socket, else NULL.</summary>
    public static ulong SkcToTcpSock(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        r1 != 0 && SockField(r1, BpfSockLayout.Protocol) == IpprotoTcp ? r1 : 0;

    /// <summary>
    /// bpf_skc_to_tcp_timewait_sock(sk): sk when it is a TCP socket in TIME_WAIT, else NULL. The sockets a host registers
    /// are listeners and bound UDP sockets, so this is NULL here, as it is in the kernel for every socket SK_LOOKUP sees.
    /// </summary>
    public static ulong SkcToTcpTimewaitSock(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        r1 != 0 && SockField(r1, BpfSockLayout.Protocol) == IpprotoTcp && SockField(r1, BpfSockLayout.State) == TcpTimeWait ? r1 : 0;

    /// <summary>bpf_skc_to_tcp_request_sock(sk): sk when it is a TCP request socket (NEW_SYN_RECV), else NULL (as above).</summary>
    public static ulong SkcToTcpRequestSock(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        r1 != 0 && SockField(r1, BpfSockLayout.Protocol) == IpprotoTcp && SockField(r1, BpfSockLayout.State) == TcpNewSynRecv ? r1 : 0;

    /// <summary>bpf_skc_to_udp6_sock(sk): sk when it is a full UDP datagram socket of family AF_INET6, else NULL.</summary>
    public static ulong SkcToUdp6Sock(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        r1 != 0 && SockField(r1, BpfSockLayout.Protocol) == IpprotoUdp && SockField(r1, BpfSockLayout.Type) == BpfSockLayout.SockDgram
            && SockField(r1, BpfSockLayout.Family) == AfInet6 ? r1 : 0;

    /// <summary>bpf_skc_to_unix_sock(sk): sk when it is an AF_UNIX socket, else NULL (always NULL here: sockets are inet).</summary>
    public static ulong SkcToUnixSock(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        r1 != 0 && SockField(r1, BpfSockLayout.Family) == AfUnix ? r1 : 0;

    /// <summary>
    /// bpf_skc_to_mptcp_sock(sk): the MPTCP connection of an MPTCP subflow, else NULL. No socket here is an MPTCP
    /// subflow (sk_is_mptcp), so NULL; the kernel returns a different object (the connection), which this runtime does not have.
    /// </summary>
    public static ulong SkcToMptcpSock(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => 0;

    /// <summary>
    /// bpf_get_task_stack(task, buf, size, flags): the kernel's __bpf_get_stack argument checks, each failure zeroing buf:
    /// -EINVAL for unknown flags, a build id asked of a kernel stack, or a size not a multiple of the entry (8 bytes, 32 with
    /// BPF_F_USER_BUILD_ID). Then the stack itself: BpfJit walks no stack (the host's frames are not the program's to see,
    /// and there is no kernel stack), which is the kernel's answer when it gets no call chain: buf zeroed, -EFAULT.
    /// </summary>
    public static ulong GetTaskStack(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        new Span<byte>((byte*)r2, (int)r3).Clear();
        bool user = (r4 & StackUser) != 0, buildId = (r4 & StackUserBuildId) != 0;
        if ((r4 & ~(StackSkipMask | StackUser | StackUserBuildId)) != 0 || !user && buildId) return Err(Errno.EINVAL);
        if (r3 % (buildId ? StackBuildIdSize : sizeof(ulong)) != 0) return Err(Errno.EINVAL);
        return Err(Errno.EFAULT);
    }

    /// <summary>
    /// bpf_task_pt_regs(task): the task's saved user registers in Linux. The verifier lets a program keep and compare the
    /// pointer but not read through it (no kernel BTF), and no SK_LOOKUP helper takes one, so the value is a handle: the
    /// task's thread id tagged <see cref="PtRegsTag"/>, non-zero and no address of anything.
    /// </summary>
    public static ulong TaskPtRegs(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => PtRegsTag | (uint)r1;

    /// <summary>
    /// bpf_find_vma(task, addr, callback, ctx, flags): -EINVAL for flags other than 0; otherwise -ENOENT and the callback
    /// does not run, the kernel's answer for a task without an address space (task-&gt;mm NULL: the kernel thread an
    /// SK_LOOKUP program often runs on). The host's address space is not the program's to inspect, as for probe_read_user.
    /// </summary>
    public static ulong FindVma(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => r5 != 0 ? Err(Errno.EINVAL) : Err(Errno.ENOENT);

    /// <summary>
    /// bpf_snprintf_btf(str, str_size, ptr, btf_ptr_size, flags): -EINVAL, str not written. The kernel checks the flags
    /// (BTF_F_ALL) and the size of <c>struct btf_ptr</c> (16), each -EINVAL, then needs its own BTF (vmlinux) to find the
    /// type id's layout; a kernel without it answers -EINVAL, and BpfJit has none.
    /// </summary>
    public static ulong SnprintfBtf(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => Err(Errno.EINVAL);

    /// <summary>
    /// bpf_per_cpu_ptr(percpu_ptr, cpu): the kernel gives NULL for a cpu at or past nr_cpu_ids, else the variable's copy
    /// on that CPU. The verifier refuses every call here (no register is a per-CPU variable without typed ksyms), so this
    /// runs only unverified: NULL for a CPU past <see cref="Maps.Cpu.Count"/>, else the pointer as given.
    /// </summary>
    public static ulong PerCpuPtr(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => r2 >= (ulong)Maps.Cpu.Count ? 0 : r1;

    /// <summary>bpf_this_cpu_ptr(percpu_ptr): the current CPU's copy; as <see cref="PerCpuPtr"/>, the pointer as given.</summary>
    public static ulong ThisCpuPtr(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => r1;
}
