using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using BpfJit.Verifier;
using static BpfJit.Tests.SkLookup.SkTestSupport;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Helpers;

/// <summary>
/// The helpers on kernel BTF pointers (KernelHelpers.Btf.cs) on both engines: the socket casts see a socket's kind, the
/// task helpers give the kernel's results when it cannot act, bpf_get_cgroup_classid is 0. Each program is first
/// verified with the runtime's own prototypes (the SK_LOOKUP table), then run.
/// </summary>
[TestFixture]
public class BtfHelperTests
{
    static readonly int[] s_casts =
    [
        KernelHelpers.SkcToTcp6SockId, KernelHelpers.SkcToTcpSockId, KernelHelpers.SkcToTcpTimewaitSockId, KernelHelpers.SkcToTcpRequestSockId,
        KernelHelpers.SkcToUdp6SockId, KernelHelpers.SkcToUnixSockId, KernelHelpers.SkcToMptcpSockId,
    ];

    // socket kind, the casts that return it (the rest return NULL)
    static readonly (string Kind, int[] NonNull)[] s_kinds =
    [
        ("tcp4-listen", [KernelHelpers.SkcToTcpSockId]),
        ("tcp6-dual", [KernelHelpers.SkcToTcpSockId, KernelHelpers.SkcToTcp6SockId]),
        ("tcp6-v6only", [KernelHelpers.SkcToTcpSockId, KernelHelpers.SkcToTcp6SockId]),
        ("udp4-bound", []),
        ("udp6-dual", [KernelHelpers.SkcToUdp6SockId]),
    ];

    static Sock Make(NetNamespace ns, string kind) => kind switch
    {
        "tcp4-listen" => Tcp(ns, "127.0.0.1:1001"),
        "tcp6-dual" => Tcp(ns, "[::]:1002", v6only: false),
        "tcp6-v6only" => Tcp(ns, "[fd00::1]:1003", v6only: true),
        "udp4-bound" => Udp(ns, "127.0.0.1:1004"),
        "udp6-dual" => Udp(ns, "[::]:1005", v6only: false),
        _ => throw new ArgumentException(kind),
    };

    static IEnumerable<TestCaseData> CastCases()
    {
        foreach (var engine in Engines.Names)
            foreach (var (kind, nonNull) in s_kinds)
                foreach (int id in s_casts)
                    yield return new TestCaseData(engine, kind, id, nonNull.Contains(id))
                        .SetName($"{HelperNames.Name(id)}[{engine}] of {kind} -> {(nonNull.Contains(id) ? "sk" : "NULL")}");
    }

    /// <summary>Verifies <paramref name="asm"/> as an SK_LOOKUP program with the runtime's helper table, then loads it.</summary>
    static SkLookupProgram Verified(string engine, string asm)
    {
        var code = MapPrograms.Assemble(asm);
        var r = BpfJit.Verifier.Verifier.Verify(code, new VerifierOptions { Helpers = SkLookupHelpers.CreateTable(), ProgramType = ProgramType.SkLookup });
        Assert.That(r.Accepted, Is.True, r.Log);
        return SkLookupProgram.Load("btp", code, Engines.Get(engine));
    }

    /// <summary>The cast of ctx->sk is non-NULL exactly when the socket is of the cast's kind, and is then the socket itself.</summary>
    [TestCaseSource(nameof(CastCases))]
    public void CastSeesTheSocketsKind(string engine, string kind, int id, bool nonNull)
    {
        var ns = new NetNamespace();
        var sock = Make(ns, kind);
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.2:8008", "127.0.0.1:7007"));
        ctx.SelectedSocket = sock.Handle;
        // 1 when the cast gives ctx->sk back, 0 for NULL; anything else fails the comparison below.
        using var prog = Verified(engine, $"""
            ldxdw %r6, [%r1+0]
            jeq %r6, 0, none
            mov %r1, %r6
            call {id}
            jeq %r0, 0, none
            mov %r0, 1
            exit
            none:
            mov %r0, 0
            exit
            """);
        Assert.That(prog.Run(ctx.Address), Is.EqualTo(nonNull ? 1u : 0u));
        ulong raw = RunRaw(engine, $"lddw %r1, {Hex(sock.Handle)}\ncall {id}\nexit", ctx);
        Assert.That(raw, Is.EqualTo(nonNull ? (ulong)sock.Handle : 0UL), "the cast is the socket itself");
    }

    // flags, size, the result (negated errno)
    static readonly (ulong Flags, int Size, int Errno)[] s_taskStack =
    [
        (0, 64, Errno.EFAULT),                 // a kernel stack: there is none to walk
        (1 << 8, 64, Errno.EFAULT),            // BPF_F_USER_STACK: the host's frames are not the program's
        (3, 0, Errno.EFAULT),                  // skip 3 frames, nothing asked
        (1 << 11, 64, Errno.EINVAL),           // BPF_F_USER_BUILD_ID of a kernel stack
        (1 << 8 | 1 << 11, 64, Errno.EFAULT),  // build ids: 64 is two 32-byte entries
        (1 << 8 | 1 << 11, 48, Errno.EINVAL),  // not a whole number of build-id entries
        (0, 12, Errno.EINVAL),                 // not a whole number of u64 entries
        (1 << 9, 64, Errno.EINVAL),            // an unknown flag
    ];

    static IEnumerable<TestCaseData> TaskStackCases()
    {
        foreach (var engine in Engines.Names)
            foreach (var c in s_taskStack)
                yield return new TestCaseData(engine, c.Flags, c.Size, c.Errno)
                    .SetName($"get_task_stack[{engine}] flags=0x{c.Flags:x} size={c.Size} -> {Errno.Name(c.Errno)}");
    }

    /// <summary>bpf_get_task_stack fails as the kernel's __bpf_get_stack, and zeroes the buffer whatever the failure.</summary>
    [TestCaseSource(nameof(TaskStackCases))]
    public void GetTaskStackFailsAsTheKernel(string engine, ulong flags, int size, int errno)
    {
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.2:8008", "127.0.0.1:7007"));
        // The buffer is filled with 0x5a first; r0 = result (low 32 bits) | the buffer's bytes OR-ed, shifted up.
        var sb = new System.Text.StringBuilder();
        for (int off = 8; off <= 64; off += 8) sb.Append($"lddw %r1, 0x5a5a5a5a5a5a5a5a\nstxdw [%r10-{off}], %r1\n");
        sb.Append($"""
            call {KernelHelpers.GetCurrentTaskBtfId}
            mov %r1, %r0
            mov %r2, %r10
            add %r2, -64
            mov %r3, {size}
            lddw %r4, 0x{flags:x}
            call {KernelHelpers.GetTaskStackId}
            mov %r6, %r0
            mov %r7, 0

            """);
        for (int off = 8; off <= 64; off += 8) sb.Append($"ldxdw %r1, [%r10-{off}]\nor %r7, %r1\n");
        sb.Append("mov %r0, %r6\nexit\n");
        // A size of 0 leaves the buffer as it was; otherwise the first size bytes are zeroed.
        ulong r0 = RunRaw(engine, sb.ToString(), ctx);
        Assert.That((long)r0, Is.EqualTo(-errno));
        var after = RunRaw(engine, sb.ToString().Replace("mov %r0, %r6\nexit", "mov %r0, %r7\nexit"), ctx);
        if (size == 64) Assert.That(after, Is.EqualTo(0UL), "the whole buffer is zeroed");
        else Assert.That(after, Is.EqualTo(0x5a5a5a5a5a5a5a5aUL), "bytes past the size are untouched");
    }

    /// <summary>bpf_task_pt_regs gives a non-NULL handle that is no address; bpf_find_vma never runs its callback.</summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void TaskPtRegsAndFindVma(string engine)
    {
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.2:8008", "127.0.0.1:7007"));
        ulong regs = RunRaw(engine, $"call {KernelHelpers.GetCurrentTaskBtfId}\nmov %r1, %r0\ncall {KernelHelpers.TaskPtRegsId}\nexit", ctx);
        Assert.That(regs & 0xffff_0000_0000_0000, Is.EqualTo(KernelHelpers.PtRegsTag));
        Assert.That((uint)regs, Is.Not.EqualTo(0u));
        // r0 = find_vma's result in the low half, the ctx slot the callback would set in the high half.
        string findVma(ulong flags) => $"""
            stdw [%r10-8], 0
            call {KernelHelpers.GetCurrentTaskBtfId}
            mov %r1, %r0
            mov %r2, 0
            ldfunc %r3, cb
            mov %r4, %r10
            add %r4, -8
            mov %r5, {flags}
            call {KernelHelpers.FindVmaId}
            ldxdw %r1, [%r10-8]
            jne %r1, 0, ran
            jne %r0, -{Errno.ENOENT}, other
            mov %r0, 1
            exit
            other:
            mov %r0, 0
            exit
            ran:
            mov %r0, 0
            exit
            cb:
            stdw [%r3+0], 1
            mov %r0, 0
            exit
            """;
        using var prog = Verified(engine, findVma(0));
        Assert.That(prog.Run(ctx.Address), Is.EqualTo(1u), "-ENOENT, the callback not run");
        using var withFlags = Verified(engine, findVma(1));
        Assert.That(withFlags.Run(ctx.Address), Is.EqualTo(0u), "-EINVAL for flags");
        Assert.That((long)RunRaw(engine, $"call {KernelHelpers.GetCurrentTaskBtfId}\nmov %r1, %r0\nmov %r5, 1\ncall {KernelHelpers.FindVmaId}\nexit", ctx),
            Is.EqualTo(-Errno.EINVAL));
    }

    /// <summary>bpf_snprintf_btf: -EINVAL (no vmlinux BTF), whatever the flags and size; str is not written.</summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void SnprintfBtfIsEinvalAndWritesNothing(string engine)
    {
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.2:8008", "127.0.0.1:7007"));
        foreach (var (size, flags) in new[] { (16, 0), (16, 0xf), (16, 0x10), (8, 0) })
        {
            // r0 = the result, or 7 when the 0x5a bytes of str changed.
            string asm = $"""
                lddw %r1, 0x5a5a5a5a5a5a5a5a
                stxdw [%r10-8], %r1
                stdw [%r10-32], 0
                stdw [%r10-24], 0
                mov %r1, %r10
                add %r1, -8
                mov %r2, 8
                mov %r3, %r10
                add %r3, -32
                mov %r4, {size}
                mov %r5, {flags}
                call {KernelHelpers.SnprintfBtfId}
                ldxdw %r1, [%r10-8]
                lddw %r2, 0x5a5a5a5a5a5a5a5a
                jeq %r1, %r2, out
                mov %r0, 7
                out:
                exit
                """;
            Assert.That((long)RunRaw(engine, asm, ctx), Is.EqualTo(-Errno.EINVAL), $"size {size} flags {flags}");
        }
    }

    /// <summary>bpf_get_cgroup_classid: 0, the kernel's class id in the packet's (softirq) context.</summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void CgroupClassidIsZero(string engine)
    {
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.2:8008", "127.0.0.1:7007"));
        using var prog = Verified(engine, $"call {KernelHelpers.GetCgroupClassidId}\nmov %r6, %r0\nmov %r0, 0\njne %r6, 0, out\nmov %r0, 1\nout:\nexit");
        Assert.That(prog.Run(ctx.Address), Is.EqualTo(1u));
    }
}
