using System.Buffers.Binary;
using KernelBtf = BpfJit.Frontend.Btf.KernelBtf;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using BpfJit.Verifier;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.Helpers;

/// <summary>
/// Loads through kernel BTF pointers at run time (KernelProbe): a program reads a socket cast's <c>tcp_sock</c>, the current
/// <c>task_struct</c>, the kernel context and <c>pt_regs</c> on every engine, and gets what BpfJit's socket, the host
/// thread and the lookup say; a pointer without an image (NULL, a loaded pointer member) reads 0. Each program is verified
/// first and loaded with the verifier's facts, which mark the loads the engines read through the probe.
/// </summary>
[TestFixture]
public class KernelBtfReadTests
{
    /// <summary>A helper id no helper has: the assembled call that becomes the bpf_cast_to_kern_ctx kfunc call.</summary>
    const int KernToCtxMarker = 0x7ff0;

    /// <summary>Verifies <paramref name="asm"/> and runs it once on <paramref name="ctx"/>; the program returns 1 when every compare held.</summary>
    static ulong Run(string engine, string asm, SkLookupContext ctx)
    {
        var code = MapPrograms.Assemble(asm.Replace("kcall bpf_cast_to_kern_ctx", $"call {KernToCtxMarker}", StringComparison.Ordinal));
        for (int i = 0; i < code.Length; i++)
            if (code[i].Opcode == BpfJit.Frontend.Op.Call && code[i].Imm == KernToCtxMarker)
                code[i] = code[i] with { Src = (byte)BpfJit.Frontend.CallKind.Kfunc, Imm = KfuncTable.CastToKernCtxId };
        var r = BpfJit.Verifier.Verifier.Verify(code, new VerifierOptions { Helpers = SkLookupHelpers.CreateTable(), ProgramType = ProgramType.SkLookup });
        Assert.That(r.Accepted, Is.True, r.Log);
        using var prog = SkLookupProgram.Load("kbtf", code, Engines.Get(engine), null, r.ToProgramFacts(code));
        return prog.Run(ctx.Address);
    }

    /// <summary>A compare of r2 with <paramref name="expected"/> (any 32-bit value) that jumps to <c>bad</c> when it differs.</summary>
    static string Expect(uint expected) => $"mov32 %r3, {(int)expected}\njne %r2, %r3, bad";

    static string Load(int size) => size switch { 1 => "ldxb", 2 => "ldxh", 4 => "ldxw", _ => "ldxdw" };

    // socket, field (struct, member), size, what BpfJit's socket says it holds
    static IEnumerable<TestCaseData> SocketFieldCases()
    {
        var fields = new (string Kind, string Struct, string Member, int Size, Func<Sock, uint> Expected)[]
        {
            ("tcp4", "sock_common", "skc_family", 2, _ => 2),
            ("tcp4", "sock_common", "skc_num", 2, s => (uint)s.Local!.Value.Port),
            ("tcp4", "sock_common", "skc_rcv_saddr", 4, s => s.Local!.Value.Address.Ip4Raw),
            ("tcp4", "sock_common", "skc_state", 1, _ => BpfSockLayout.TcpListen),
            ("tcp4", "sock_common", "skc_cookie", 4, s => (uint)s.Cookie),
            ("tcp4", "sock", "sk_protocol", 2, _ => 6),
            ("tcp4", "sock", "sk_type", 2, _ => BpfSockLayout.SockStream),
            ("tcp6", "sock_common", "skc_family", 2, _ => 10),
            ("tcp6", "sock_common", "skc_v6_rcv_saddr", 4, _ => 0xfd),
        };
        foreach (var engine in Engines.Names)
            foreach (var f in fields)
                yield return new TestCaseData(engine, f.Kind, f.Struct, f.Member, f.Size, f.Expected).SetName($"tcp_sock[{engine}] {f.Kind} {f.Member}");
    }

    /// <summary>bpf_skc_to_tcp_sock(ctx->sk)-&gt;member is the socket's own value, read at the bundled BTF's offset.</summary>
    [TestCaseSource(nameof(SocketFieldCases))]
    public void SocketCastReadsTheSocket(string engine, string kind, string structName, string member, int size, Func<Sock, uint> expected)
    {
        var ns = new NetNamespace();
        var sock = kind == "tcp4" ? Tcp(ns, "127.0.0.1:1001") : Tcp(ns, "[fd00::1]:1003", v6only: true);
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.2:8008", "127.0.0.1:7007"));
        ctx.SelectedSocket = sock.Handle;
        int off = KernelBtf.Offset(structName, member);
        Assert.That(Run(engine, $"""
            ldxdw %r1, [%r1+0]
            jeq %r1, 0, bad
            call {KernelHelpers.SkcToTcpSockId}
            jeq %r0, 0, bad
            {Load(size)} %r2, [%r0+{off}]
            {Expect(expected(sock))}
            mov %r0, 1
            exit
            bad:
            mov %r0, 0
            exit
            """, ctx), Is.EqualTo(1UL), $"{structName}.{member} at {off}");
    }

    /// <summary>The current task's pid, tgid and comm are what bpf_get_current_pid_tgid and bpf_get_current_comm give.</summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void CurrentTaskIsTheHostThread(string engine)
    {
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.2:8008", "127.0.0.1:7007"));
        Assert.That(Run(engine, $"""
            call 14
            mov %r7, %r0
            mov %r1, %r10
            add %r1, -16
            mov %r2, 16
            call 16
            call 158
            ldxw %r2, [%r0+{KernelBtf.Offset("task_struct", "pid")}]
            mov32 %r3, %r7
            jne %r2, %r3, bad
            ldxw %r2, [%r0+{KernelBtf.Offset("task_struct", "tgid")}]
            rsh %r7, 32
            jne %r2, %r7, bad
            jeq %r2, 0, bad
            ldxdw %r2, [%r0+{KernelBtf.Offset("task_struct", "comm")}]
            ldxdw %r3, [%r10-16]
            jne %r2, %r3, bad
            mov %r0, 1
            exit
            bad:
            mov %r0, 0
            exit
            """, ctx), Is.EqualTo(1UL));
    }

    /// <summary>
    /// Pointers without an image read 0 (the kernel's BPF_PROBE_MEM on a fault): the task's mm (a pointer member, 0 in
    /// the image) and what lies behind it, and pt_regs.
    /// </summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void PointersWithoutAnImageReadZero(string engine)
    {
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.2:8008", "127.0.0.1:7007"));
        Assert.That(Run(engine, $"""
            call 158
            mov %r6, %r0
            ldxdw %r1, [%r6+{KernelBtf.Offset("task_struct", "mm")}]
            jne %r1, 0, bad
            ldxdw %r2, [%r1+{KernelBtf.Offset("mm_struct", "mmap_base")}]
            jne %r2, 0, bad
            ldxdw %r1, [%r6+{KernelBtf.Offset("task_struct", "real_parent")}]
            ldxw %r2, [%r1+{KernelBtf.Offset("task_struct", "pid")}]
            jne %r2, 0, bad
            mov %r1, %r6
            call {KernelHelpers.TaskPtRegsId}
            ldxdw %r2, [%r0+0]
            jne %r2, 0, bad
            ldxdw %r2, [%r0+160]
            jne %r2, 0, bad
            mov %r0, 1
            exit
            bad:
            mov %r0, 0
            exit
            """, ctx), Is.EqualTo(1UL));
    }

    /// <summary>bpf_cast_to_kern_ctx's struct bpf_sk_lookup_kern holds the lookup the uapi context describes, and its selected socket's image.</summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void KernelContextIsTheLookup(string engine)
    {
        var ns = new NetNamespace();
        var sock = Tcp(ns, "127.0.0.1:1001");
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.2:8008", "127.0.0.1:7007", ifindex: 3));
        ctx.SelectedSocket = sock.Handle;
        string K(string member) => KernelBtf.Offset("bpf_sk_lookup_kern", member).ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(Run(engine, $"""
            mov %r6, %r1
            kcall bpf_cast_to_kern_ctx
            ldxh %r2, [%r0+{K("family")}]
            {Expect(2)}
            ldxh %r2, [%r0+{K("protocol")}]
            {Expect(6)}
            ldxh %r2, [%r0+{K("sport")}]
            {Expect(BinaryPrimitives.ReverseEndianness((ushort)8008))}
            ldxh %r2, [%r0+{K("dport")}]
            {Expect(7007)}
            ldxw %r2, [%r0+{KernelBtf.Offset("bpf_sk_lookup_kern", "v4", "saddr")}]
            ldxw %r3, [%r6+16]
            jne %r2, %r3, bad
            ldxw %r2, [%r0+{K("ingress_ifindex")}]
            {Expect(3)}
            ldxdw %r1, [%r0+{K("selected_sk")}]
            ldxh %r2, [%r1+{KernelBtf.Offset("sock_common", "skc_num")}]
            {Expect(1001)}
            mov %r0, 1
            exit
            bad:
            mov %r0, 0
            exit
            """, ctx), Is.EqualTo(1UL));
    }

    static string KernelBtfObject => Path.Combine(Paths.RepoRoot, "tests", "programs", "kernel-btf", "kernel_btf.o");

    /// <summary>
    /// A clang-compiled program (tests/programs/kernel-btf/kernel_btf.c) declares only the kernel members it reads, CO-RE
    /// style; the loader relocates them against the bundled kernel BTF, and the reads give the task's and the socket's values.
    /// </summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void CoreRelocatedProgramReadsKernelStructs(string engine)
    {
        var collection = BpfJit.Frontend.Elf.ObjectFile.Load(KernelBtfObject);
        var spec = collection.Programs["kernel_btf"];
        var result = ObjectVerification.Verify(collection, spec, SkLookupHelpers.CreateTable());
        Assert.That(result.Accepted, Is.True, result.Log);
        using var prog = SkLookupProgram.Load("kernel_btf", spec.Instructions, Engines.Get(engine), null, result.ToProgramFacts(spec.Instructions));
        var ns = new NetNamespace();
        var sock = Tcp(ns, "127.0.0.1:1001");
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.2:8008", "127.0.0.1:7007"));
        ctx.SelectedSocket = sock.Handle;
        Assert.That(prog.Run(ctx.Address), Is.EqualTo(1UL), "the task's pid, tgid, comm and the socket's port, family and protocol");
    }

    /// <summary>
    /// The relocated program reads task_struct.pid where Linux 6.18 has it, and the live kernel (given BpfJit's relocated
    /// instructions, its own offsets) accepts it.
    /// </summary>
    [Test]
    [Category(KernelOracle.Category)]
    public void CoreRelocationsUseTheKernelsLayout()
    {
        var spec = BpfJit.Frontend.Elf.ObjectFile.Load(KernelBtfObject).Programs["kernel_btf"];
        Assert.That(spec.Instructions[3].Offset, Is.EqualTo(KernelBtf.Offset("task_struct", "pid")), "task->pid, relocated");
        KernelBpf.RequireAvailable();
        var k = KernelBpf.Load(spec.Instructions, []);
        KernelOracle.Agrees(k.Accepted, () => $"the kernel rejects kernel_btf:\n{k.Log}");
    }

    /// <summary>Every struct a socket cast returns fits in the span a socket's image has (KernelProbe.SocketImageSpan).</summary>
    [Test]
    public void SocketImagesHoldEveryCastStruct()
    {
        foreach (var s in new[] { "tcp_sock", "tcp6_sock", "udp6_sock", "tcp_timewait_sock", "tcp_request_sock", "unix_sock", "mptcp_sock", "sock" })
            Assert.That(KernelBtf.Size(s), Is.LessThanOrEqualTo(KernelProbe.SocketImageSpan), s);
    }

    /// <summary>The bundled kernel BTF is the recording tool's output from the build it names (tools/kernel-btf/record.sh).</summary>
    [Test]
    public void BundledBtfNamesItsKernel()
    {
        string recorded = File.ReadAllText(Path.Combine(Paths.RepoRoot, "src/Frontend/Btf/Kernel/RECORDED_ON")).Trim();
        Assert.That(recorded, Is.EqualTo(KernelBtf.RecordedOn));
        Assert.That(KernelBtf.Size("task_struct"), Is.GreaterThan(KernelBtf.Offset("task_struct", "comm")));
    }
}
