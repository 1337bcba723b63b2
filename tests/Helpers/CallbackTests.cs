using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Helpers;

/// <summary>bpf_loop and bpf_for_each_map_elem calling back into the running program (BPF_PSEUDO_FUNC).</summary>
[TestFixture]
public class CallbackTests
{
    // loop(r1, cb, &sum, r2): returns (iterations << 32) | sum, or the error. cb adds i to sum and stops at i == 50.
    const string LoopSum = """
        stdw [%r10-8], 0
        mov %r4, %r2
        ldfunc %r2, cb
        mov %r3, %r10
        add %r3, -8
        call 181
        jslt %r0, 0, out
        mov %r6, %r0
        ldxdw %r0, [%r10-8]
        lsh %r6, 32
        or %r0, %r6
        out:
        exit
        cb:
        ldxdw %r3, [%r2]
        add %r3, %r1
        stxdw [%r2], %r3
        mov %r0, 0
        jne %r1, 50, done
        mov %r0, 1
        done:
        exit
        """;

    [TestCase(0ul, 0ul, 0ul)]
    [TestCase(10ul, 0ul, (10ul << 32) | 45)]
    [TestCase(100ul, 0ul, (51ul << 32) | 1275)]
    [TestCase(5ul, 1ul, unchecked((ulong)-Errno.EINVAL))]
    [TestCase((1ul << 23) + 1, 0ul, unchecked((ulong)-Errno.E2BIG))]
    public void Loop(ulong count, ulong flags, ulong expected)
    {
        foreach (var engine in Engines.Names)
            Assert.That(Run(Prepare(engine, LoopSum), count, flags), Is.EqualTo(expected), engine);
    }

    // ctx = {u64 stop_key, u64 sum}; for_each(map, cb, &ctx, 0) returns (calls << 32) | sum; cb adds *value and stops at stop_key.
    const string ForEachSum = """
        stdw [%r10-8], 0
        stxdw [%r10-16], %r1
        ldmap %r1, 0
        ldfunc %r2, cb
        mov %r3, %r10
        add %r3, -16
        mov %r4, 0
        call 164
        jslt %r0, 0, out
        mov %r6, %r0
        ldxdw %r0, [%r10-8]
        lsh %r6, 32
        or %r0, %r6
        out:
        exit
        cb:
        ldxdw %r5, [%r4+8]
        ldxdw %r0, [%r3]
        add %r5, %r0
        stxdw [%r4+8], %r5
        ldxw %r1, [%r2]
        ldxdw %r0, [%r4]
        jeq %r1, %r0, stop
        mov %r0, 0
        exit
        stop:
        mov %r0, 1
        exit
        """;

    [Test]
    public void ForEachOverAnArray([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = MapFactory.Create(MapType.Array, 4, 8, 5, 0, "arr");
        for (uint k = 0; k < 5; k++) map.Update(k, (ulong)(k + 1) * 10);
        var run = Prepare(engine, ForEachSum, map);
        Assert.Multiple(() =>
        {
            Assert.That(Run(run, 2), Is.EqualTo((3ul << 32) | 60), "stops after key 2: 10 + 20 + 30");
            Assert.That(Run(run, 99), Is.EqualTo((5ul << 32) | 150), "walks all five");
        });
    }

    [Test]
    public void ForEachOverAHash([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = MapFactory.Create(MapType.Hash, 4, 8, 64, 0, "h");
        for (uint k = 100; k < 140; k++) map.Update(k, (ulong)k);
        Assert.That(Run(Prepare(engine, ForEachSum, map), 0), Is.EqualTo((40ul << 32) | (uint)Enumerable.Range(100, 40).Sum()));
    }

    // The callback deletes each element it visits (allowed for hash maps); returns the number of calls.
    const string ForEachDelete = """
        ldmap %r1, 0
        ldfunc %r2, cb
        mov %r3, 0
        mov %r4, 0
        call 164
        exit
        cb:
        call 3
        mov %r0, 0
        exit
        """;

    [Test]
    public void CallbackMayDeleteWhatItVisits([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var map = (HashMap)MapFactory.Create(MapType.Hash, 4, 8, 64, 0, "h");
        for (uint k = 0; k < 50; k++) map.Update(k, (ulong)k);
        Assert.That(Run(Prepare(engine, ForEachDelete, map)), Is.EqualTo(50ul));
        Assert.That(map.Count, Is.EqualTo(0));
    }

    const string ForEachWithFlags = """
        ldmap %r1, 0
        ldfunc %r2, cb
        mov %r3, 0
        mov %r4, 1
        call 164
        exit
        cb:
        mov %r0, 0
        exit
        """;

    [Test]
    public void ForEachErrors([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var array = MapFactory.Create(MapType.Array, 4, 8, 2, 0, "a");
        using var trie = MapFactory.Create(MapType.LpmTrie, 8, 8, 2, MapFlags.NoPrealloc, "t");
        Assert.That((long)Run(Prepare(engine, ForEachWithFlags, array)), Is.EqualTo(-Errno.EINVAL), "flags must be 0");
        Assert.That((long)Run(Prepare(engine, ForEachDelete, trie)), Is.EqualTo(-Errno.EINVAL), "LPM tries cannot be walked");
    }

    [Test]
    public void CallbackTargetMustBeInTheProgram()
    {
        var code = Assemble("ldfunc %r2, end\nmov %r0, 0\nend:\nexit");
        code[0] = code[0] with { Imm = 50 };
        Assert.Throws<BpfRuntimeException>(() => new Interpreter(code, KernelHelpers.Table()));
    }

    [Test]
    public void DeadHandlesAreRejected()
    {
        Assert.Throws<BpfRuntimeException>(() => Callbacks.FromHandle(Callbacks.HandleTag | 0xffff_fff0));
        BpfCallback cb = (a, b, c, d, e) => a + 1;
        ulong handle = Callbacks.Register(cb);
        Assert.That(Callbacks.FromHandle(handle)(41, 0, 0, 0, 0), Is.EqualTo(42ul));
        GC.KeepAlive(cb);
    }
}
