using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Loader;

/// <summary>
/// A C program using libbpf-style bpf_for and bpf_repeat loops (open-coded numeric iterators) inside an RCU
/// read section (tests/Loader/objects/kfunc_iter.c): BpfJit verifies it, both engines run it, and the live
/// kernel, given the same object with its kfuncs resolved through vmlinux BTF, returns the same verdicts.
/// </summary>
[TestFixture]
public class KfuncProgramTests
{
    static string Object => Path.Combine(Corpus.RepoRoot, "tests", "Loader", "objects", "kfunc_iter.o");

    /// <summary>Local ports covering empty loops (n = 0), one element, and the widest range (n = 31).</summary>
    static readonly int[] s_ports = [0, 1, 2, 3, 5, 8, 13, 31, 32, 7007, 8080, 65535];

    /// <summary>The program's verdict: n = port % 32, sum = 0 + ... + (n - 1) + n; SK_DROP (0) when the sum is odd.</summary>
    static uint Expected(int port)
    {
        int n = port & 31;
        int sum = n * (n - 1) / 2 + n;
        return (sum & 1) != 0 ? SkLookupLayout.SkDrop : SkLookupLayout.SkPass;
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void BpfForAndBpfRepeatRunOnEveryEngine(string engine)
    {
        var collection = ObjectFile.Load(Object);
        var program = collection.Programs["iter_sum"];
        Assert.That(program.KernelFunctions, Is.EquivalentTo(new[] { "bpf_rcu_read_lock", "bpf_rcu_read_unlock", "bpf_iter_num_new", "bpf_iter_num_next", "bpf_iter_num_destroy" }));
        var helpers = BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable();
        var maps = collection.Maps.Select(m => MapFactory.Create(new MapDefinition(
            m.Name, (MapType)(int)m.Type, (int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries, m.Flags))).ToList();
        try
        {
            var facts = new SkLookupProgramVerifier().VerifyWithFacts(program, maps, helpers);
            var code = ProgramBinder.Bind(program, maps).Code;
            Assert.That(code.Where(i => i.IsCall && i.Src == (byte)CallKind.Kfunc).Select(i => i.Imm), Is.All.GreaterThanOrEqualTo(KfuncTable.FirstId), "kfunc calls are bound to BpfJit's ids");
            var loaded = SkLookupProgram.Load(program.Name, code, Engines.Get(engine), helpers, facts);
            using var ctx = new SkLookupContext();
            foreach (int port in s_ports)
            {
                ctx.Fill(new Packet(SocketProtocol.Tcp, InetEndPoint.From(System.Net.IPEndPoint.Parse("127.0.0.2:40000")),
                    InetEndPoint.From(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port)), 1));
                Assert.That(loaded.Run(ctx.Address), Is.EqualTo(Expected(port)), $"local port {port}");
            }
        }
        finally
        {
            foreach (var m in maps) m.Dispose();
        }
    }

    /// <summary>Without the binding step the loader's kfunc indexes are no function an engine runs.</summary>
    [Test]
    public void AnUnboundKfuncCallIsRefusedByTheEngines()
    {
        var program = ObjectFile.Load(Object).Programs["iter_sum"];
        foreach (var engine in Engines.ByName.Values)
            Assert.Throws<BpfRuntimeException>(() => engine.Prepare(program.Instructions.Select(i => i.IsLdImm64 && i.Src != 0 ? i with { Src = 0 } : i).ToArray(),
                BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable()));
    }

    [Test]
    [Category(KernelOracle.Category)]
    public void TheKernelReturnsTheSameVerdicts()
    {
        KernelBpf.RequireAvailable();
        var program = ObjectFile.Load(Object).Programs["iter_sum"];
        int fd = KernelBpf.CreateMap((uint)MapType.Array, 4, 4, 1, 0);
        Assert.That(fd, Is.GreaterThanOrEqualTo(0), $"BPF_MAP_CREATE: errno {-fd}");
        try
        {
            var slots = KernelBtf.ResolveKfuncs(program.Instructions, program.KernelFunctions);
            var load = KernelBpf.Load(slots, [fd]);
            Assert.That(load.Accepted, Is.True, load.Log);
            foreach (int port in s_ports)
            {
                var ctx = new byte[72];
                ctx[8] = 2;                                   // family AF_INET
                ctx[12] = 6;                                  // protocol TCP
                BitConverter.GetBytes((uint)port).CopyTo(ctx, 60);
                var r = KernelBpf.TestRun(slots, [fd], ctx);
                Assert.That((r.Errno, r.Retval), Is.EqualTo((0, Expected(port))), $"local port {port}");
            }
        }
        finally
        {
            KernelBpf.Close(fd);
        }
    }
}
