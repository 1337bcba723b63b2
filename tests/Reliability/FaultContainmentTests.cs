using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// Issue 16, fault containment: unverified programs, one per kind of bad access, fault with a typed exception
/// on both checking engines (the interpreter, the JIT in checked mode) from the library, count as SK_DROP
/// through the hook (the process alive, the next lookup served), and a wrong verifier fact about a divisor
/// faults instead of throwing <see cref="DivideByZeroException"/>.
/// </summary>
[TestFixture, NonParallelizable]
public class FaultContainmentTests
{
    /// <summary>The engines that run unverified code: every access checked.</summary>
    static readonly Dictionary<string, IBpfEngine> s_checking = new()
    {
        ["interpreter"] = InterpreterEngine.Instance,
        ["jit-checked"] = new JitEngine(new JitOptions { Checked = true }),
    };

    public static IEnumerable<string> CheckingEngines => s_checking.Keys;

    /// <summary>The checking engine named <paramref name="name"/> (one of <see cref="CheckingEngines"/>), for the other issue-16 fixtures.</summary>
    internal static IBpfEngine Checking(string name) => s_checking[name];

    /// <summary>The port a case's program faults on; any other local port passes.</summary>
    const int FaultPort = 8008, OtherPort = 9009;

    // Each body runs only when local_port is FaultPort and must fault there; it falls through to SK_PASS otherwise.
    static string Wrap(string body) => $"""
        ldxw %r6, [%r1+{SkLookupLayout.LocalPort}]
        jne %r6, {FaultPort}, pass
        {body}
        pass:
        mov %r0, 1
        exit
        """;

    /// <summary>Name, faulting code, the access it makes.</summary>
    static readonly (string Name, string Body, string Access)[] s_cases =
    [
        ("stack below the frame, constant offset", "stdw [%r10-520], 1", "store"),
        ("stack above the frame, constant offset", "ldxdw %r0, [%r10+0]", "load"),
        ("stack below the frame, variable offset", "mov %r3, %r10\nsub %r3, %r6\nldxb %r0, [%r3+0]", "load"),
        ("stack above the frame, variable offset", "mov %r3, %r10\nadd %r3, %r6\nstb [%r3+0], 1", "store"),
        ("context past its end", "stw [%r1+72], 1", "store"),
        ("map value overrun", "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nldmap %r1, 0\ncall 1\njeq %r0, 0, pass\nldxdw %r0, [%r0+8]", "load"),
        ("stale socket read", "lddw %r2, STALE\nldxw %r0, [%r2+4]", "load"),
        ("stale socket to bpf_sk_assign", "lddw %r2, STALE\nmov %r3, 0\ncall 124", "helper argument"),
        ("bad map to bpf_map_lookup_elem", "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, 0x1000\ncall 1", "helper argument"),
        // Audit G0: each of these crashed the process (AccessViolation, glibc "double free") or leaked another exception type.
        ("bad socket to bpf_skc_to_tcp6_sock", "lddw %r1, 0x1000\ncall 136", "helper argument"),
        ("bad socket to bpf_skc_to_unix_sock", "lddw %r1, 0xdead0000\ncall 178", "helper argument"),
        ("bad timer to bpf_timer_cancel", "lddw %r1, 0x1000\ncall 172", "helper argument"),
        ("context to bpf_ringbuf_submit", "mov %r2, 0\ncall 132", "helper argument"),
        ("context to bpf_ringbuf_discard", "mov %r2, 0\ncall 133", "helper argument"),
        ("context to bpf_spin_lock", "call 93", "helper argument"),
        ("context written by bpf_get_current_comm", "mov %r2, 16\ncall 16", "helper argument"),
    ];

    public static IEnumerable<TestCaseData> Cases() =>
        from engine in CheckingEngines
        from c in s_cases
        select new TestCaseData(engine, c.Name).SetName($"{c.Name} faults on {engine}");

    /// <summary>The maps and the stale socket a case may use; disposed with the namespace.</summary>
    sealed class World : IDisposable
    {
        public readonly NetNamespace Ns = new();
        public readonly BpfMap Array = MapFactory.Create(MapType.Array, 4, 8, 1, 0, "values");
        public readonly nint Stale;
        public readonly Sock Listener, Other;

        public World()
        {
            Listener = Tcp(Ns, $"127.0.0.1:{FaultPort}");
            Other = Tcp(Ns, $"127.0.0.1:{OtherPort}");
            var gone = Tcp(Ns, "127.0.0.1:7007");
            Stale = gone.Handle;
            gone.Close();
            MapEpoch.Collect();   // the socket block is freed: its address is no region any more
        }

        public SkLookupProgram Load(string engine, string caseName)
        {
            var c = s_cases.Single(x => x.Name == caseName);
            var code = ProgramBinder.Bind(MapPrograms.Assemble(Wrap(c.Body.Replace("STALE", Hex(Stale)))), [Array]).Code;
            return SkLookupProgram.Load(caseName, code, s_checking[engine]);
        }

        public void Dispose()
        {
            Ns.Dispose();
            Array.Dispose();
        }
    }

    static LookupResult Lookup(NetNamespace ns, int port) => ns.Lookup(Pkt("tcp", "127.0.0.9:1000", $"127.0.0.1:{port}"));

    [TestCaseSource(nameof(Cases))]
    public void FaultsFromTheLibrary(string engine, string caseName)
    {
        using var w = new World();
        var program = w.Load(engine, caseName);
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.9:1000", $"127.0.0.1:{FaultPort}"));
        MapEpoch.Enter();
        try
        {
            var e = Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => program.Run(ctx.Address)) as BpfFaultException;
            Assert.That(e!.Program, Is.EqualTo(caseName));
            Assert.That(e.Access, Is.EqualTo(s_cases.Single(x => x.Name == caseName).Access));
            Assert.That(e.Index, Is.InRange(2, program.Instructions.Length - 1));
            Assert.That(e.Disassembly, Is.EqualTo(Disassembler.Format(program.Instructions, e.Index)));
            Assert.That(e.Message, Does.StartWith($"program {caseName}: instruction {e.Index} ({e.Disassembly})"));
            ctx.Fill(Pkt("tcp", "127.0.0.9:1000", $"127.0.0.1:{OtherPort}"));
            Assert.That(program.Run(ctx.Address), Is.EqualTo(SkLookupLayout.SkPass), "the next run is unaffected");
        }
        finally
        {
            MapEpoch.Exit();
        }
        Assert.That(program.FaultCount, Is.EqualTo(1));
        Assert.That(program.LastFault, Is.InstanceOf<BpfFaultException>());
    }

    [TestCaseSource(nameof(Cases))]
    public void ThroughTheHookAFaultIsADropAndTheNextLookupIsServed(string engine, string caseName)
    {
        using var w = new World();
        var program = w.Load(engine, caseName);
        w.Ns.SkLookup.Attach(program);
        for (int round = 1; round <= 2; round++)
        {
            Assert.That(Lookup(w.Ns, FaultPort).Outcome, Is.EqualTo(LookupOutcome.Refused), "fail closed: the faulting run counts as SK_DROP");
            Assert.That(program.FaultCount, Is.EqualTo(round));
            var next = Lookup(w.Ns, OtherPort);
            Assert.That(next.Outcome, Is.EqualTo(LookupOutcome.Socket));
            Assert.That(next.Socket, Is.SameAs(w.Other));
        }
    }

    /// <summary>A later program's selection still wins over the faulting program's implied SK_DROP, as over a real one.</summary>
    [TestCaseSource(typeof(FaultContainmentTests), nameof(CheckingEngines))]
    public void AFaultIsExactlyADropInTheRunArray(string engine)
    {
        using var w = new World();
        w.Ns.SkLookup.Attach(w.Load(engine, "context past its end"));
        w.Ns.SkLookup.Attach(SkLookupProgram.Load("select", MapPrograms.Assemble($"lddw %r2, {Hex(w.Other.Handle)}\nmov %r3, 0\ncall 124\nmov %r0, 1\nexit"), s_checking[engine]));
        Assert.That(Lookup(w.Ns, FaultPort).Socket, Is.SameAs(w.Other));
    }

    // r0 = local_port / r2 and local_port % r2 with r2 = 0, where made-up facts say the divisor is never zero.
    [TestCase("div", 3, "division")]
    [TestCase("mod", 3, "modulo")]
    [TestCase("div32", 3, "division")]
    [TestCase("mod32", 3, "modulo")]
    public void ADivisionByZeroBehindAWrongFactFaultsOnTheJit(string op, int slot, string access)
    {
        var code = MapPrograms.Assemble($"mov %r2, 0\nldxw %r0, [%r1+{SkLookupLayout.LocalPort}]\nmov %r3, %r0\n{op} %r0, %r2\nexit");
        var slots = Enumerable.Range(0, code.Length).Select(i => i == slot ? new SlotFacts { DivisorNonZero = true } : SlotFacts.Unknown).ToList();
        var facts = new ProgramFacts(code, slots, mayReadUninitStack: true, stackDepths: [0]);
        using var ns = new NetNamespace();
        Tcp(ns, $"127.0.0.1:{FaultPort}");
        var jit = SkLookupProgram.Load("wrong-fact", code, JitEngine.Instance, null, facts);
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.9:1000", $"127.0.0.1:{FaultPort}"));
        var e = Assert.Throws<BpfFaultException>(() => jit.Run(ctx.Address))!;
        Assert.That(e.Index, Is.EqualTo(slot));
        Assert.That(e.Access, Is.EqualTo(access));
        Assert.That(e.Message, Does.Contain($"instruction {slot} (").And.Contain("by zero"));
        ns.SkLookup.Attach(jit);
        Assert.That(ns.Lookup(Pkt("tcp", "127.0.0.9:1000", $"127.0.0.1:{FaultPort}")).Outcome, Is.EqualTo(LookupOutcome.Refused));
        Assert.That(jit.FaultCount, Is.EqualTo(2));
        // The interpreter ignores facts and computes eBPF's x / 0 = 0, x % 0 = x.
        var interpreter = SkLookupProgram.Load("wrong-fact", code, InterpreterEngine.Instance, null, facts);
        Assert.That(interpreter.Run(ctx.Address), Is.EqualTo(op.StartsWith("div", StringComparison.Ordinal) ? 0u : FaultPort));
    }

    /// <summary>
    /// bpf_trace_printk("%s|%pI4|%d", r3, r4, r5) with r3 and r4 no pointers: a program the kernel accepts (the
    /// varargs are unchecked), printed as the kernel prints a failed nofault read, on every engine and on the
    /// JIT compiled from the verifier's facts, which passes r3-r5 too.
    /// </summary>
    [TestCase("interpreter")]
    [TestCase("jit")]
    [TestCase("jit-checked")]
    public void PrintkWithBadPointersPrintsWhatTheKernelPrints(string engine)
    {
        // "%s|%pI4|%d\0" on the stack, then the call.
        var fmt = System.Text.Encoding.ASCII.GetBytes("%s|%pI4|%d\0\0\0\0\0\0");
        var asm = new System.Text.StringBuilder();
        for (int i = 0; i < 16; i += 4) asm.AppendLine($"stw [%r10{i - 16}], {BitConverter.ToInt32(fmt, i)}");
        asm.AppendLine("mov %r1, %r10\nadd %r1, -16\nmov %r2, 16\nmov %r3, 0xdead\nmov %r4, 1\nmov %r5, 42\ncall 6\nmov %r0, 1\nexit");
        var code = MapPrograms.Assemble(asm.ToString());
        var helpers = SkLookupHelpers.CreateTable();
        var result = BpfJit.Verifier.Verifier.Verify(code, new BpfJit.Verifier.VerifierOptions { Helpers = helpers });
        Assert.That(result.Accepted, Is.True, result.Log);
        if (KernelBpf.Available) Assert.That(KernelBpf.Load(code, []).Accepted, Is.True, "the kernel accepts it too");
        var facts = BpfJit.Verifier.ProgramFactsBuilder.ToProgramFacts(result, code, []);
        var e = engine == "jit" ? JitEngine.Instance : s_checking[engine];
        var program = SkLookupProgram.Load("printk", code, e, helpers, facts);
        var lines = new List<string>();
        TracePipe.Sink = lines.Add;
        try
        {
            using var ctx = new SkLookupContext();
            ctx.Fill(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:80"));
            program.Run(ctx.Address);
        }
        finally
        {
            TracePipe.Sink = null;
        }
        Assert.That(lines, Is.EqualTo(new[] { "|0.0.0.0|42" }));
    }

    static readonly string[] s_cliCases =
    [
        "stack below the frame, constant offset", "stack above the frame, constant offset", "stack below the frame, variable offset",
        "stack above the frame, variable offset", "context past its end", "bad map to bpf_map_lookup_elem",
        "bad socket to bpf_skc_to_tcp6_sock", "bad timer to bpf_timer_cancel", "context to bpf_ringbuf_discard", "context to bpf_spin_lock",
    ];

    public static IEnumerable<TestCaseData> CliCases() =>
        from engine in new[] { "interpreter", "jit" }
        from c in s_cliCases
        select new TestCaseData(engine, c).SetName($"bpfjit run --no-verify: {c} on {engine}");

    /// <summary><c>bpfjit run --no-verify</c>: the fault is one line on stderr naming the instruction, exit 1; without the flag the verifier refuses.</summary>
    [TestCaseSource(nameof(CliCases))]
    public void FromTheCliAFaultIsOneLineAndExitOne(string engine, string caseName)
    {
        string file = Path.Combine(Path.GetTempPath(), $"bpfjit-fault-{Guid.NewGuid():n}.asm");
        File.WriteAllText(file, Wrap(s_cases.Single(x => x.Name == caseName).Body));
        try
        {
            string[] packet = ["--proto", "tcp", "--from", "127.0.0.9:1000", "--to", $"127.0.0.1:{FaultPort}", "--engine", engine];
            var (code, output, err) = BpfJit.Tests.Cli.CliHarness.Run(["run", file, "--no-verify", .. packet]);
            Assert.That(code, Is.EqualTo(1), output + err);
            Assert.That(err.TrimEnd('\n').Split('\n'), Has.Length.EqualTo(1), err);
            Assert.That(err, Does.Contain(": fault: program ").And.Match(@"instruction \d+ \("));
            var refused = BpfJit.Tests.Cli.CliHarness.Run(["run", file, .. packet]);
            Assert.That(refused.Code, Is.EqualTo(1));
            Assert.That(refused.Err, Does.Contain("verifier rejected"));
            var other = BpfJit.Tests.Cli.CliHarness.Run(["run", file, "--no-verify", "--proto", "tcp", "--from", "127.0.0.9:1000", "--to", $"127.0.0.1:{OtherPort}", "--engine", engine]);
            Assert.That(other.Code, Is.EqualTo(0), other.Err);
            Assert.That(other.Out, Does.Contain("retval 1 (SK_PASS)"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>
    /// Several programs attached; one (unverified, on a checking engine) faults on every lookup to one port while
    /// values are replaced and deleted, the link swaps programs and the redirect socket is closed and reopened.
    /// Bounded by lookup count. Every fault is counted, none escapes, and a faulting lookup never reaches the
    /// listener of its port (fail closed): it is refused or goes to the socket another program selected.
    /// </summary>
    [TestCase("interpreter")]
    [TestCase("jit")]
    public void OneProgramFaultsOnSomeLookupsWhileMapsAndSocketsChurn(string engine)
    {
        using var ns = new NetNamespace();
        var regular = Tcp(ns, "127.0.0.1:7007");
        var guarded = Tcp(ns, "127.0.0.1:7008");
        using var values = MapFactory.Create(MapType.Hash, 4, 8, 64, 0, "values");
        using var map = (SockMap)MapFactory.Create(MapType.SockMap, 4, 8, 1, 0, "redir_map");
        for (uint k = 0; k < 64; k += 2) values.Update(BitConverter.GetBytes(k), BitConverter.GetBytes((ulong)k));
        // Redirects to redir_map[0] when values[remote port & 63] holds an odd number.
        string redirect = $"""
            mov %r6, %r1
            ldxw %r2, [%r6+{SkLookupLayout.RemotePort}]
            and %r2, 63
            stxw [%r10-4], %r2
            mov %r2, %r10
            add %r2, -4
            lddw %r1, 0x{values.Handle:x}
            call 1
            jeq %r0, 0, pass
            ldxdw %r3, [%r0+0]
            and %r3, 1
            jeq %r3, 0, pass
            stw [%r10-4], 0
            lddw %r1, 0x{map.Handle:x}
            mov %r2, %r10
            add %r2, -4
            call 1
            jeq %r0, 0, pass
            mov %r7, %r0
            mov %r1, %r6
            mov %r2, %r7
            mov %r3, 0
            call 124
            mov %r1, %r7
            call 86
            pass:
            mov %r0, 1
            exit
            """;
        var redirecting = Load(engine, redirect, "redirect");
        var plain = Load(engine, "mov %r0, 1\nexit", "pass");
        var faulting = SkLookupProgram.Load("faulting", MapPrograms.Assemble($"""
            ldxw %r2, [%r1+{SkLookupLayout.LocalPort}]
            jne %r2, 7008, pass
            stw [%r1+72], 1
            pass:
            mov %r0, 1
            exit
            """), s_checking[engine == "jit" ? "jit-checked" : engine]);
        var link = ns.SkLookup.Attach(redirecting);
        ns.SkLookup.Attach(SkLookupProgram.Load("pass2", MapPrograms.Assemble("mov %r0, 1\nexit"), Engines.Get(engine)));
        ns.SkLookup.Attach(faulting);
        Sock current = Tcp(ns, "127.0.0.2:8008");
        Assert.That(map.Update(0, current), Is.Zero);

        const int Threads = 2, PerThread = 4000;
        long expectedFaults = 0, updates = 0, reopens = 0;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        int running = Threads;
        var readers = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            for (int i = 0; i < PerThread; i++)
            {
                bool faults = i % 4 == 0;
                if (faults) Interlocked.Increment(ref expectedFaults);
                try
                {
                    var r = ns.Lookup(Pkt("tcp", $"10.0.{t}.1:{i % 60000 + 1}", faults ? "127.0.0.1:7008" : "127.0.0.1:7007"));
                    if (faults && r.Socket == guarded) failures.Enqueue($"a faulting lookup reached the listener (thread {t}, lookup {i})");
                    if (!faults && r.Outcome == LookupOutcome.None) failures.Enqueue("a lookup found nothing although its listener exists");
                }
                catch (Exception e)
                {
                    failures.Enqueue($"a lookup threw {e.GetType().Name}: {e.Message}");
                }
            }
            Interlocked.Decrement(ref running);
        })).ToList();
        var churn = new Thread(() =>
        {
            var rng = new Random(16);
            for (long i = 0; Volatile.Read(ref running) > 0; i++)
            {
                var key = BitConverter.GetBytes((uint)rng.Next(64));
                switch (i % 8)
                {
                    case 0 or 1 or 2: values.Update(key, BitConverter.GetBytes((ulong)rng.NextInt64())); updates++; break;
                    case 3: values.Delete(key); break;
                    case 5: link.Update(i % 16 == 5 ? plain : redirecting); break;
                    case 6 when i % 64 == 6:
                        current.Close();
                        current = Tcp(ns, "127.0.0.2:8008");
                        map.Update(0, current);
                        reopens++;
                        break;
                }
            }
        });
        foreach (var th in readers.Append(churn)) th.Start();
        foreach (var th in readers.Append(churn)) Assert.That(th.Join(TimeSpan.FromMinutes(5)), "thread finished");
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(10)));
        Assert.That(faulting.FaultCount, Is.EqualTo(expectedFaults));
        Assert.That(expectedFaults, Is.EqualTo(Threads * PerThread / 4));
        Assert.That(redirecting.FaultCount + plain.FaultCount, Is.Zero);
        Assert.That(updates, Is.GreaterThan(0));
        TestContext.Out.WriteLine($"{Threads * PerThread} lookups, {expectedFaults} faults contained, {updates} updates, {reopens} socket reopens");
    }
}

