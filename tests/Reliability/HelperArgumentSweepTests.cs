using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// Issue 16 items 1, 3 and 4 (audit G0): every helper the runtime gives SK_LOOKUP and SK_REUSEPORT, called by an
/// unverified program on both checking engines with r1..r5 set to garbage (NULL, small numbers, unmapped and
/// non-canonical addresses, -1), to the context, to the bottom and top of the stack, and to live maps of several
/// types, ends in a result or a typed <see cref="BpfException"/>: never another exception, never a crashed process.
/// Before the argument checks covered every ArgType, this sweep killed the test host (an AccessViolationException in
/// the socket casts and bpf_timer_cancel, a glibc "double free" from bpf_ringbuf_discard of the context).
/// </summary>
[TestFixture, NonParallelizable]
public class HelperArgumentSweepTests
{
    /// <summary>How a register is set: a literal, the context, or the stack at r10 plus an offset.</summary>
    enum Kind : ulong { Literal, Context, Stack }

    static readonly (string Name, Kind Kind, ulong Value)[] s_garbage =
    [
        ("0", Kind.Literal, 0), ("8", Kind.Literal, 8), ("0x1000", Kind.Literal, 0x1000), ("0xdead0000", Kind.Literal, 0xdead0000),
        ("-1", Kind.Literal, ulong.MaxValue), ("0xffff000000000000", Kind.Literal, 0xffff000000000000),
        ("ctx", Kind.Context, 0), ("stack bottom", Kind.Stack, unchecked((ulong)-512)), ("stack top", Kind.Stack, unchecked((ulong)-8)),
    ];

    public static IEnumerable<TestCaseData> Cases()
    {
        foreach (var (type, table) in new[] { ("sk_lookup", SkLookupHelpers.CreateTable()), ("sk_reuseport", SkReuseportHelpers.CreateTable()) })
            foreach (var helper in table.All)
                foreach (var engine in FaultContainmentTests.CheckingEngines)
                    yield return new TestCaseData(type, helper.Id, engine).SetName($"{type} {helper.Name} ({helper.Id}) with bad arguments on {engine}");
    }

    /// <summary>
    /// The program: r1..r5 from the five (kind, value) pairs of the params map's value, then the call. One compile per
    /// helper and engine; each combination only rewrites the map value.
    /// </summary>
    static string Program(int helperId, BpfMap parameters)
    {
        var s = new System.Text.StringBuilder($"""
            mov %r9, %r1
            stw [%r10-4], 0
            mov %r2, %r10
            add %r2, -4
            lddw %r1, 0x{parameters.Handle:x}
            call 1
            jne %r0, 0, found
            exit
            found:
            mov %r7, %r0

            """);
        for (int r = 1; r <= 5; r++)
        {
            s.AppendLine($"""
                ldxdw %r6, [%r7+{16 * (r - 1)}]
                ldxdw %r{r}, [%r7+{16 * (r - 1) + 8}]
                jne %r6, {(int)Kind.Context}, notctx{r}
                mov %r{r}, %r9
                notctx{r}:
                jne %r6, {(int)Kind.Stack}, notstack{r}
                mov %r8, %r{r}
                mov %r{r}, %r10
                add %r{r}, %r8
                notstack{r}:
                """);
        }
        s.AppendLine($"call {helperId}\nmov %r0, 1\nexit");
        return s.ToString();
    }

    sealed class World : IDisposable
    {
        public readonly NetNamespace Ns = new();
        public readonly Sock A, B;
        public readonly BpfMap Parameters = MapFactory.Create(MapType.Array, 4, 80, 1, 0, "params");
        public readonly BpfMap[] Maps;

        public World()
        {
            A = Tcp(Ns, "127.0.0.1:8080", reuseport: true);
            B = Tcp(Ns, "127.0.0.1:8080", reuseport: true);
            Maps =
            [
                MapFactory.Create(new MapDefinition("locked", MapType.Array, 4, 64, 4, SpinLockOffset: 0, TimerOffset: 16)),
                MapFactory.Create(MapType.RingBuf, 0, 0, 4096, 0, "ring"),
                MapFactory.Create(MapType.Hash, 4, 8, 16, 0, "hash"),
                MapFactory.Create(MapType.SockMap, 4, 8, 4, 0, "socks"),
                MapFactory.Create(MapType.ReuseportSockArray, 4, 8, 4, 0, "group"),
            ];
            Assert.That(Maps[3].Update(BitConverter.GetBytes(0u), BitConverter.GetBytes(A.Cookie)), Is.Zero);
            Assert.That(Maps[4].Update(BitConverter.GetBytes(0u), BitConverter.GetBytes(B.Cookie)), Is.Zero);   // A is in the SOCKMAP: EBUSY
        }

        /// <summary>Every combination: (description, five (kind, value) pairs).</summary>
        public IEnumerable<(string Name, (Kind, ulong)[] Registers)> Combinations()
        {
            var values = s_garbage.Concat(Maps.Select(m => ($"map '{m.Name}'", Kind.Literal, m.Handle))).ToArray();
            (Kind, ulong)[] Default() => [(Kind.Context, 0), (Kind.Literal, 0), (Kind.Literal, 0), (Kind.Literal, 0), (Kind.Literal, 0)];
            foreach (var (name, kind, value) in values)
            {
                for (int r = 0; r < 5; r++)
                {
                    var regs = Default();
                    regs[r] = (kind, value);
                    yield return ($"r{r + 1} = {name}", regs);
                }
                yield return ($"r1..r5 = {name}", [.. Enumerable.Repeat((kind, value), 5)]);
            }
            // A valid map first, so that the checks and the helper get past it to the other arguments.
            foreach (var map in Maps)
                foreach (var (name, kind, value) in s_garbage)
                {
                    var regs = Default();
                    regs[0] = (Kind.Literal, map.Handle);
                    for (int r = 1; r < 5; r++) regs[r] = (kind, value);
                    yield return ($"r1 = map '{map.Name}', r2..r5 = {name}", regs);
                    regs = Default();
                    regs[0] = (Kind.Literal, map.Handle);
                    regs[1] = (kind, value);
                    yield return ($"r1 = map '{map.Name}', r2 = {name}", regs);
                }
        }

        public void Set((Kind Kind, ulong Value)[] registers)
        {
            var bytes = new byte[80];
            for (int r = 0; r < 5; r++)
            {
                BitConverter.TryWriteBytes(bytes.AsSpan(16 * r), (ulong)registers[r].Kind);
                BitConverter.TryWriteBytes(bytes.AsSpan(16 * r + 8), registers[r].Value);
            }
            Assert.That(Parameters.Update(BitConverter.GetBytes(0u), bytes), Is.Zero);
        }

        public void Dispose()
        {
            foreach (var m in Maps) m.Dispose();
            Parameters.Dispose();
            Ns.Dispose();
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void EveryCallEndsInAResultOrATypedFault(string type, int helperId, string engine)
    {
        using var w = new World();
        var code = Assembler.Assemble(Program(helperId, w.Parameters));
        Func<ulong> run;
        var owned = new List<IDisposable>();
        if (type == "sk_lookup")
        {
            var p = SkLookupProgram.Load("sweep", code, FaultContainmentTests.Checking(engine));
            var ctx = new SkLookupContext();
            ctx.Fill(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:8080"));
            run = () =>
            {
                MapEpoch.Enter();
                try { return p.Run(ctx.Address); }
                finally { MapEpoch.Exit(); }
            };
            owned.AddRange([ctx, p]);
        }
        else
        {
            var p = SkReuseportProgram.Load("sweep", code, FaultContainmentTests.Checking(engine));
            run = () => p.TestRun(w.A.ReuseportGroup!, w.A, Pkt("tcp", "127.0.0.9:40000", "127.0.0.1:8080")).Retval;
            owned.Add(p);
        }
        try
        {
            var failures = new List<string>();
            int results = 0, faults = 0;
            foreach (var (name, registers) in w.Combinations())
            {
                w.Set(registers);
                try
                {
                    run();
                    results++;
                }
                catch (BpfException)
                {
                    faults++;
                }
                catch (Exception e)
                {
                    failures.Add($"{name}: {e.GetType().Name}: {e.Message}");
                }
            }
            TestContext.Out.WriteLine($"{results} result(s), {faults} typed fault(s)");
            Assert.That(failures, Is.Empty, "a run ended in an exception that is no BpfException");
            Assert.That(results + faults, Is.GreaterThan(0));
        }
        finally
        {
            foreach (var d in owned) d.Dispose();
        }
    }
}
