using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// Issue 16 item 4: the checks of helper arguments that need more than "some bytes the program may touch"
/// (docs/reliability.md, "Helper arguments"): a spin lock is the lock field of a live map value, taken and released by
/// the same run; a timer is the timer field of a value of the map bpf_timer_init names; a ring-buffer record is released
/// once, at its start; memory a helper writes is never the context. Each on both checking engines, with the call that
/// the kernel would allow still working.
/// </summary>
[TestFixture, NonParallelizable]
public class HelperArgumentTests
{
    static BpfMap Locked(string name) => MapFactory.Create(new MapDefinition(name, MapType.Array, 4, 64, 2, SpinLockOffset: 0, TimerOffset: 16));

    // r0 = the value of key 0 of map 0, or return 0.
    const string Value0 = """
        mov %r9, %r1
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        ldmap %r1, 0
        call 1
        jne %r0, 0, found
        exit
        found:
        mov %r6, %r0
        """;

    static ulong Run(string engine, string asm, params BpfMap[] maps)
    {
        using var program = SkLookupProgram.Load("p", ProgramBinder.Bind(MapPrograms.Assemble(asm), maps).Code, FaultContainmentTests.Checking(engine));
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:80"));
        MapEpoch.Enter();
        try { return program.Run(ctx.Address); }
        finally { MapEpoch.Exit(); }
    }

    static BpfFaultException Faults(string engine, string asm, params BpfMap[] maps) =>
        (BpfFaultException)Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => Run(engine, asm, maps))!;

    [TestCaseSource(typeof(FaultContainmentTests), nameof(FaultContainmentTests.CheckingEngines))]
    public void ALockHeldAtExitFaultsAndIsReleased(string engine)
    {
        using var map = Locked("locked");
        string lockOnly = Value0 + "\nmov %r1, %r6\ncall 93\nmov %r0, 1\nexit";
        string lockUnlock = Value0 + "\nmov %r1, %r6\ncall 93\nmov %r1, %r6\ncall 94\nmov %r0, 2\nexit";
        for (int round = 0; round < 2; round++)
            Assert.That(Faults(engine, lockOnly, map).Message, Does.Contain("exited holding the bpf_spin_lock"));
        // Released by the fault: a well-behaved program takes it again on this thread, and so does another thread.
        Assert.That(Run(engine, lockUnlock, map), Is.EqualTo(2));
        Assert.That(Task.Run(() => Run(engine, lockUnlock, map)).Wait(TimeSpan.FromSeconds(30)), Is.True);
    }

    [TestCaseSource(typeof(FaultContainmentTests), nameof(FaultContainmentTests.CheckingEngines))]
    public void AnUnlockWithoutTheLockFaults(string engine)
    {
        using var map = Locked("locked");
        Assert.That(Faults(engine, Value0 + "\nmov %r1, %r6\ncall 94\nmov %r0, 1\nexit", map).Message, Does.Contain("holds no lock"));
        // Not the lock field: 4 bytes into the value.
        Assert.That(Faults(engine, Value0 + "\nmov %r1, %r6\nadd %r1, 4\ncall 93\nmov %r0, 1\nexit", map).Message,
            Does.Contain("whose bpf_spin_lock is at +0"));
    }

    [TestCaseSource(typeof(FaultContainmentTests), nameof(FaultContainmentTests.CheckingEngines))]
    public void ATimerMustBeInAValueOfTheMapItIsInitialisedWith(string engine)
    {
        using var a = Locked("a");
        using var b = Locked("b");
        string init(string map) => Value0 + $"\nmov %r1, %r6\nadd %r1, 16\nldmap %r2, {map}\nmov %r3, 1\ncall 169\nmov %r0, 1\nexit";
        Assert.That(Faults(engine, init("1"), a, b).Message, Does.Contain("the timer in r1 is in a value of map 'a'"));
        Assert.That(Run(engine, init("0"), a, b), Is.EqualTo(1));
        // Not the timer field: the lock's offset.
        Assert.That(Faults(engine, Value0 + "\nmov %r1, %r6\ncall 172\nmov %r0, 1\nexit", a).Message, Does.Contain("whose bpf_timer is at +16"));
    }

    [TestCaseSource(typeof(FaultContainmentTests), nameof(FaultContainmentTests.CheckingEngines))]
    public void ARecordIsReleasedOnceAndOnlyAtItsStart(string engine)
    {
        using var ring = MapFactory.Create(MapType.RingBuf, 0, 0, 4096, 0, "ring");
        string reserve = "ldmap %r1, 0\nmov %r2, 16\nmov %r3, 0\ncall 131\njne %r0, 0, got\nexit\ngot:\nmov %r6, %r0\n";
        Assert.That(Run(engine, reserve + "mov %r1, %r6\nmov %r2, 0\ncall 132\nmov %r0, 1\nexit", ring), Is.EqualTo(1));
        Assert.That(Faults(engine, reserve + "mov %r1, %r6\nmov %r2, 0\ncall 132\nmov %r1, %r6\nmov %r2, 0\ncall 133\nmov %r0, 1\nexit", ring).Message,
            Does.Contain("is not the start of a ring-buffer record reserved"));
        Assert.That(Faults(engine, reserve + "mov %r1, %r6\nadd %r1, 8\nmov %r2, 0\ncall 133\nmov %r0, 1\nexit", ring).Message,
            Does.Contain("is not the start of a ring-buffer record reserved"));
    }

    [TestCaseSource(typeof(FaultContainmentTests), nameof(FaultContainmentTests.CheckingEngines))]
    public void AHelperNeverWritesTheContext(string engine)
    {
        using var program = SkLookupProgram.Load("p", MapPrograms.Assemble("mov %r2, 16\ncall 16\nmov %r0, 1\nexit"), FaultContainmentTests.Checking(engine));
        using var ctx = new SkLookupContext();
        ctx.Fill(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:80"));
        var before = ctx.Visible.ToArray();
        MapEpoch.Enter();
        try
        {
            var e = (BpfFaultException)Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => program.Run(ctx.Address))!;
            Assert.That(e.Message, Does.Contain("bpf_get_current_comm: argument r1").And.Contain("the program may write"));
        }
        finally
        {
            MapEpoch.Exit();
        }
        Assert.That(ctx.Visible.ToArray(), Is.EqualTo(before), "the context block is unchanged");
        // The stack is the program's to write.
        Assert.That(Run(engine, "mov %r1, %r10\nadd %r1, -16\nmov %r2, 16\ncall 16\nmov %r0, 3\nexit"), Is.EqualTo(3));
    }

    [TestCaseSource(typeof(FaultContainmentTests), nameof(FaultContainmentTests.CheckingEngines))]
    public void TheSocketCastsTakeALiveSocketAndNothingElse(string engine)
    {
        using var ns = new NetNamespace();
        var listener = Tcp(ns, "127.0.0.1:80");
        using var socks = MapFactory.Create(MapType.SockMap, 4, 8, 1, 0, "socks");
        Assert.That(socks.Update(BitConverter.GetBytes(0u), BitConverter.GetBytes(listener.Cookie)), Is.Zero);
        // bpf_skc_to_tcp_sock of the listener a lookup returned is the listener; of its address plus one, a fault.
        string cast(string adjust) => Value0 + $"\nmov %r1, %r6\n{adjust}\ncall 137\njeq %r0, 0, none\nmov %r0, 5\nexit\nnone:\nmov %r0, 6\nexit";
        Assert.That(Run(engine, cast(""), socks), Is.EqualTo(5));
        Assert.That(Faults(engine, cast("add %r1, 1"), socks).Message, Does.Contain("is not a socket"));
    }
    /// <summary>
    /// A store to <c>ctx-&gt;sk</c> (the kernel's verifier refuses any write to the SK_LOOKUP context; the checking engines
    /// let a program store into its context block) is no selection: the verdict is what bpf_sk_assign selected. Before,
    /// the hook followed the stored value as a socket block (an AccessViolationException in Sock.FromHandle killed the
    /// process for 0xdead0000).
    /// </summary>
    [TestCaseSource(typeof(FaultContainmentTests), nameof(FaultContainmentTests.CheckingEngines))]
    public void AStoreToCtxSkIsNoSelection(string engine)
    {
        using var ns = new NetNamespace();
        var regular = Tcp(ns, "127.0.0.1:80");
        var steered = Tcp(ns, "127.0.0.1:81");
        using var socks = MapFactory.Create(MapType.SockMap, 4, 8, 1, 0, "socks");
        Assert.That(socks.Update(BitConverter.GetBytes(0u), BitConverter.GetBytes(steered.Cookie)), Is.Zero);
        const string forge = "lddw %r2, 0xdead0000\nstxdw [%r9+0], %r2\n";
        string[] programs =
        [
            "mov %r9, %r1\n" + forge + "mov %r0, 1\nexit",
            Value0 + "\nmov %r1, %r9\nmov %r2, %r6\nmov %r3, 0\ncall 124\n" + forge + "mov %r0, 1\nexit",
        ];
        var expected = new[] { regular, steered };
        for (int n = 0; n < programs.Length; n++)
        {
            using var program = SkLookupProgram.Load("forge", ProgramBinder.Bind(MapPrograms.Assemble(programs[n]), [socks]).Code,
                FaultContainmentTests.Checking(engine));
            var link = ns.SkLookup.Attach(program);
            var result = ns.Lookup(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:80"));
            link.Detach();
            Assert.That(result.Outcome, Is.EqualTo(LookupOutcome.Socket), programs[n]);
            Assert.That(result.Socket, Is.SameAs(expected[n]), programs[n]);
        }
    }
    /// <summary>
    /// SK_REUSEPORT: the helpers follow the context's data, data_end, len and sk as the runtime filled them, never what
    /// the program stored there (each store below made bpf_skb_load_bytes or bpf_sk_select_reuseport read 0xdead0000:
    /// an AccessViolationException killed the process on both engines); a map of a type the kernel refuses there faults.
    /// </summary>
    [TestCaseSource(typeof(FaultContainmentTests), nameof(FaultContainmentTests.CheckingEngines))]
    public void ReuseportHelpersFollowTheContextAsFilled(string engine)
    {
        using var ns = new NetNamespace();
        var a = Tcp(ns, "127.0.0.1:8080", reuseport: true);
        Tcp(ns, "127.0.0.1:8080", reuseport: true);
        var stranger = Tcp(ns, "127.0.0.1:9090", reuseport: true);
        using var group = MapFactory.Create(MapType.ReuseportSockArray, 4, 8, 1, 0, "group");
        using var array = MapFactory.Create(MapType.Array, 4, 8, 1, 0, "plain");
        Assert.That(group.Update(BitConverter.GetBytes(0u), BitConverter.GetBytes(stranger.Cookie)), Is.Zero);
        uint Run(string asm)
        {
            using var p = BpfJit.Runtime.SkReuseport.SkReuseportProgram.Load("forge", BpfJit.Frontend.Assembler.Assemble(asm), FaultContainmentTests.Checking(engine));
            return p.TestRun(a.ReuseportGroup!, a, Pkt("tcp", "127.0.0.9:40000", "127.0.0.1:8080")).Retval;
        }
        const string forge = "mov %r6, %r1\nlddw %r2, 0xdead0000\nstxdw [%r6+0], %r2\nstxdw [%r6+8], %r2\nstw [%r6+16], 4096\nstxdw [%r6+40], %r2\n";
        string load = forge + "mov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 8\ncall 26\nexit";
        Assert.That(Run(load), Is.Zero, "8 bytes of the real packet");
        Assert.That(Run(load.Replace("call 26", "mov %r5, 1\ncall 68")), Is.Zero, "from the network header");
        string select(BpfMap map) => forge + $"stw [%r10-4], 0\nmov %r1, %r6\nlddw %r2, 0x{map.Handle:x}\nmov %r3, %r10\nadd %r3, -4\nmov %r4, 0\ncall 82\nexit";
        Assert.That(Run(select(group)), Is.EqualTo(unchecked((uint)-Errno.EBADFD)), "another group's socket, compared with the real ctx->sk");
        Assert.That(Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => Run(select(array)))!.Message, Does.Contain("not a REUSEPORT_SOCKARRAY"));
    }
    /// <summary>
    /// The iterator kfuncs (bpf_iter_num_new/next/destroy) read and write their iterator: it must be 8 writable, aligned
    /// bytes (the stack), also on the checked JIT, which did not check kfunc arguments; 0x1000 killed the process.
    /// </summary>
    [TestCaseSource(typeof(FaultContainmentTests), nameof(FaultContainmentTests.CheckingEngines))]
    public void AnIteratorMustBeWritableStack(string engine)
    {
        ulong RunIter(string it)
        {
            var code = MapPrograms.Assemble($"{it}\nmov %r2, 0\nmov %r3, 5\ncall 1\n{it}\ncall 1\n{it}\ncall 1\nmov %r0, 7\nexit");
            int[] ids = [KfuncTable.IterNumNewId, KfuncTable.IterNumNextId, KfuncTable.IterNumDestroyId];
            for (int i = 0, k = 0; i < code.Length; i++)
                if (code[i].IsCall) code[i] = code[i] with { Src = (byte)BpfJit.Frontend.CallKind.Kfunc, Imm = ids[k++] };
            using var program = SkLookupProgram.Load("iter", code, FaultContainmentTests.Checking(engine));
            using var ctx = new SkLookupContext();
            ctx.Fill(Pkt("tcp", "127.0.0.9:1000", "127.0.0.1:80"));
            MapEpoch.Enter();
            try { return program.Run(ctx.Address); }
            finally { MapEpoch.Exit(); }
        }
        Assert.That(RunIter("mov %r1, %r10\nadd %r1, -8"), Is.EqualTo(7));
        // Unmapped, misaligned stack, the context (r1 as the run starts).
        foreach (var bad in new[] { "lddw %r1, 0x1000", "mov %r1, %r10\nadd %r1, -12", "" })
            Assert.That(Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => RunIter(bad))!.Message, Does.Contain("bpf_iter_num_new"), bad);
    }
}
