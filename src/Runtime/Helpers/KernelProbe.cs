using System.Buffers.Binary;
using BpfJit.Frontend.Btf;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime;

/// <summary>
/// What a program reads through a pointer to a kernel object (the verifier's PTR_TO_BTF_ID and rdonly_untrusted_mem
/// loads, which the kernel emits as BPF_PROBE_MEM loads). BpfJit has no kernel objects: each pointer a helper gives
/// stands for an image laid out as the bundled kernel BTF (<see cref="KernelBtf"/>) describes the struct, built from
/// what BpfJit knows and 0 everywhere else (pointer members included):
/// <list type="bullet">
/// <item>a socket cast (bpf_skc_to_tcp_sock and co., whose value is the socket's <c>bpf_sock</c> block): <c>sock_common</c>'s
/// addresses, ports, family, state, bound device and cookie, <c>sock</c>'s protocol, type, mark and priority, from the socket;</item>
/// <item>bpf_get_current_task_btf's <c>task_struct</c>: <c>pid</c> (the thread id), <c>tgid</c> (the process id) and <c>comm</c>
/// of the thread running the program;</item>
/// <item>bpf_cast_to_kern_ctx's <c>bpf_sk_lookup_kern</c>: the lookup's family, protocol, ports, IPv4 addresses, ingress
/// interface and selected socket from the context (the IPv6 address pointers and <c>no_reuseport</c> read 0);</item>
/// <item>bpf_task_pt_regs's <c>pt_regs</c>: zeros.</item>
/// </list>
/// An address no image covers (NULL plus an offset, a pointer loaded from an image, a stale pointer) reads 0, as the
/// kernel's exception table makes a faulting BPF_PROBE_MEM load read 0: a verified program may load through a NULL
/// kernel pointer (a walked pointer member is not known non-NULL to the kernel either), so a fault would stop programs
/// Linux runs. The probe never reads memory outside the images it builds, whatever the address.
/// </summary>
public static unsafe class KernelProbe
{
    /// <summary>
    /// The span of a socket's kernel image from its <c>bpf_sock</c> block: at least the largest struct a socket cast
    /// returns (a test checks them against the bundled BTF). Sockets align their native block to it, so the spans of two
    /// sockets never overlap. A power of two.
    /// </summary>
    public const int SocketImageSpan = 4096;

    /// <summary>The span of the current task's image from its handle: at least <c>sizeof(struct task_struct)</c>.</summary>
    const int TaskImageSpan = 1 << 16;

    /// <summary>This thread's id (gettid), asked once per thread.</summary>
    [ThreadStatic] static int t_tid;

    /// <summary>The BPF_PROBE_MEM load of <paramref name="size"/> bytes (1, 2, 4 or 8) at <paramref name="address"/>, zero-extended.</summary>
    public static ulong Load(ulong address, int size)
    {
        Span<byte> bytes = stackalloc byte[8];
        bytes.Clear();
        if (size is 1 or 2 or 4 or 8 && address + (ulong)size >= address) Read(address, bytes[..size]);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    /// <summary>The sign-extending BPF_PROBE_MEMSX load of <paramref name="size"/> bytes (1, 2 or 4).</summary>
    public static ulong LoadSigned(ulong address, int size)
    {
        ulong v = Load(address, size);
        int shift = 64 - size * 8;
        return (ulong)((long)(v << shift) >> shift);
    }

    static void Read(ulong address, Span<byte> into)
    {
        // The current task's handle (KernelHelpers.CurrentTaskTag | thread id): the running thread's task, no other.
        if (t_tid == 0) t_tid = KernelHelpers.CurrentTask.ThreadId();
        ulong task = KernelHelpers.CurrentTaskTag | (uint)t_tid;
        if (address - task <= (ulong)(TaskImageSpan - into.Length))
        {
            TaskImage((int)(address - task), into);
            return;
        }
        if (SocketImages.Find(address, into.Length) is { } block)
        {
            SocketImage(block, (int)(address - block), into);
            return;
        }
        if (MemoryRegions.TryFind(address, into.Length, false, out ulong start, out int length)
            && length == SkLookup.SkLookupLayout.Size && MemoryRegions.BlockAt(start) is { Kind: MemoryRegionKind.Context })
            SkLookupKernImage(start, (int)(address - start), into);
    }

    /// <summary>Copies the part of a field of <paramref name="value"/> bytes at <paramref name="fieldOffset"/> that [<paramref name="offset"/>, +into) covers.</summary>
    static void Put(int fieldOffset, ReadOnlySpan<byte> value, int offset, Span<byte> into)
    {
        int from = Math.Max(fieldOffset, offset), to = Math.Min(fieldOffset + value.Length, offset + into.Length);
        if (from < to) value[(from - fieldOffset)..(to - fieldOffset)].CopyTo(into[(from - offset)..]);
    }

    static void TaskImage(int offset, Span<byte> into)
    {
        var l = Layout.Instance;
        Span<byte> v = stackalloc byte[KernelHelpers.TaskCommLen];
        BinaryPrimitives.WriteInt32LittleEndian(v, t_tid);
        Put(l.TaskPid, v[..4], offset, into);
        BinaryPrimitives.WriteInt32LittleEndian(v, Environment.ProcessId);
        Put(l.TaskTgid, v[..4], offset, into);
        KernelHelpers.CurrentTask.Comm(v);
        Put(l.TaskComm, v, offset, into);
    }

    static void SocketImage(ulong block, int offset, Span<byte> into)
    {
        var l = Layout.Instance;
        var view = new ReadOnlySpan<byte>((void*)block, BpfSockLayout.BlockSize);
        Put(l.SkcDaddr, view.Slice(BpfSockLayout.DstIp4, 4), offset, into);
        Put(l.SkcRcvSaddr, view.Slice(BpfSockLayout.SrcIp4, 4), offset, into);
        Put(l.SkcDport, view.Slice(BpfSockLayout.DstPort, 2), offset, into);
        Put(l.SkcNum, view.Slice(BpfSockLayout.SrcPort, 2), offset, into);
        Put(l.SkcFamily, view.Slice(BpfSockLayout.Family, 2), offset, into);
        Put(l.SkcState, view.Slice(BpfSockLayout.State, 1), offset, into);
        Put(l.SkcBoundDevIf, view.Slice(BpfSockLayout.BoundDevIf, 4), offset, into);
        Put(l.SkcV6Daddr, view.Slice(BpfSockLayout.DstIp6, 16), offset, into);
        Put(l.SkcV6RcvSaddr, view.Slice(BpfSockLayout.SrcIp6, 16), offset, into);
        Put(l.SkcCookie, view.Slice(BpfSockLayout.Cookie, 8), offset, into);
        Put(l.SkProtocol, view.Slice(BpfSockLayout.Protocol, 2), offset, into);
        Put(l.SkType, view.Slice(BpfSockLayout.Type, 2), offset, into);
        Put(l.SkMark, view.Slice(BpfSockLayout.Mark, 4), offset, into);
        Put(l.SkPriority, view.Slice(BpfSockLayout.Priority, 4), offset, into);
    }

    static void SkLookupKernImage(ulong ctx, int offset, Span<byte> into)
    {
        var l = Layout.Instance;
        var uapi = new ReadOnlySpan<byte>((void*)ctx, SkLookup.SkLookupLayout.Size);
        Put(l.KernFamily, uapi.Slice(SkLookup.SkLookupLayout.Family, 2), offset, into);
        Put(l.KernProtocol, uapi.Slice(SkLookup.SkLookupLayout.Protocol, 2), offset, into);
        Put(l.KernSport, uapi.Slice(SkLookup.SkLookupLayout.RemotePort, 2), offset, into);
        Put(l.KernDport, uapi.Slice(SkLookup.SkLookupLayout.LocalPort, 2), offset, into);
        Put(l.KernV4Saddr, uapi.Slice(SkLookup.SkLookupLayout.RemoteIp4, 4), offset, into);
        Put(l.KernV4Daddr, uapi.Slice(SkLookup.SkLookupLayout.LocalIp4, 4), offset, into);
        // The selected socket is its bpf_sock block, whose image is the socket's struct sock.
        Put(l.KernSelectedSk, uapi.Slice(SkLookup.SkLookupLayout.Sk, 8), offset, into);
        Put(l.KernIngressIfindex, uapi.Slice(SkLookup.SkLookupLayout.IngressIfindex, 4), offset, into);
    }

    /// <summary>The offsets of the fields the images fill, from the bundled kernel BTF (read at the first probe load).</summary>
    sealed class Layout
    {
        public static readonly Layout Instance = new();

        public readonly int TaskPid = KernelBtf.Offset("task_struct", "pid"), TaskTgid = KernelBtf.Offset("task_struct", "tgid"),
            TaskComm = KernelBtf.Offset("task_struct", "comm");
        public readonly int SkcDaddr = KernelBtf.Offset("sock_common", "skc_daddr"), SkcRcvSaddr = KernelBtf.Offset("sock_common", "skc_rcv_saddr"),
            SkcDport = KernelBtf.Offset("sock_common", "skc_dport"), SkcNum = KernelBtf.Offset("sock_common", "skc_num"),
            SkcFamily = KernelBtf.Offset("sock_common", "skc_family"), SkcState = KernelBtf.Offset("sock_common", "skc_state"),
            SkcBoundDevIf = KernelBtf.Offset("sock_common", "skc_bound_dev_if"), SkcV6Daddr = KernelBtf.Offset("sock_common", "skc_v6_daddr"),
            SkcV6RcvSaddr = KernelBtf.Offset("sock_common", "skc_v6_rcv_saddr"), SkcCookie = KernelBtf.Offset("sock_common", "skc_cookie");
        public readonly int SkProtocol = KernelBtf.Offset("sock", "sk_protocol"), SkType = KernelBtf.Offset("sock", "sk_type"),
            SkMark = KernelBtf.Offset("sock", "sk_mark"), SkPriority = KernelBtf.Offset("sock", "sk_priority");
        public readonly int KernFamily = KernelBtf.Offset("bpf_sk_lookup_kern", "family"), KernProtocol = KernelBtf.Offset("bpf_sk_lookup_kern", "protocol"),
            KernSport = KernelBtf.Offset("bpf_sk_lookup_kern", "sport"), KernDport = KernelBtf.Offset("bpf_sk_lookup_kern", "dport"),
            KernV4Saddr = KernelBtf.Offset("bpf_sk_lookup_kern", "v4", "saddr"), KernV4Daddr = KernelBtf.Offset("bpf_sk_lookup_kern", "v4", "daddr"),
            KernSelectedSk = KernelBtf.Offset("bpf_sk_lookup_kern", "selected_sk"),
            KernIngressIfindex = KernelBtf.Offset("bpf_sk_lookup_kern", "ingress_ifindex");
    }
}

/// <summary>
/// The sockets whose kernel images <see cref="KernelProbe"/> serves: each <c>bpf_sock</c> block and the
/// <see cref="KernelProbe.SocketImageSpan"/> bytes from it (blocks are aligned to the span, so spans never overlap). A sorted array,
/// replaced whole on each change (sockets are created and closed far less often than programs read them).
/// </summary>
internal static class SocketImages
{
    static readonly Lock s_gate = new();
    static ulong[] s_starts = [];

    /// <summary>Adds the socket whose block starts at <paramref name="block"/>.</summary>
    public static void Register(ulong block)
    {
        lock (s_gate)
        {
            var starts = s_starts;
            int i = Array.BinarySearch(starts, block);
            if (i >= 0) return;
            i = ~i;
            var next = new ulong[starts.Length + 1];
            Array.Copy(starts, next, i);
            next[i] = block;
            Array.Copy(starts, i, next, i + 1, starts.Length - i);
            Volatile.Write(ref s_starts, next);
        }
    }

    /// <summary>Removes the socket whose block starts at <paramref name="block"/> (before the block is freed).</summary>
    public static void Unregister(ulong block)
    {
        lock (s_gate)
        {
            var starts = s_starts;
            int i = Array.BinarySearch(starts, block);
            if (i < 0) return;
            var next = new ulong[starts.Length - 1];
            Array.Copy(starts, next, i);
            Array.Copy(starts, i + 1, next, i, starts.Length - i - 1);
            Volatile.Write(ref s_starts, next);
        }
    }

    /// <summary>The block whose image span holds [<paramref name="address"/>, +<paramref name="size"/>), or null.</summary>
    public static ulong? Find(ulong address, int size)
    {
        var starts = Volatile.Read(ref s_starts);
        int i = Array.BinarySearch(starts, address);
        if (i < 0) i = ~i - 1;
        if (i < 0) return null;
        ulong start = starts[i];
        return address - start <= (ulong)(KernelProbe.SocketImageSpan - size) ? start : null;
    }
}
