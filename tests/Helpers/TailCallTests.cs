using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Helpers;

/// <summary>bpf_tail_call through PROG_ARRAY: the 33-call chain limit, fall-through, result propagation, the userspace API.</summary>
[TestFixture]
public class TailCallTests
{
    // selftests/bpf/progs/tailcall3.c: classifier_0 counts and tail-calls itself; entry tail-calls classifier_0.
    const string Classifier0 = """
        mov %r6, %r1
        stw [%r10-4], 0
        ldmap %r1, 1
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, skip
        mov %r1, 1
        lock add [%r0+0], %r1
        skip:
        mov %r1, %r6
        ldmap %r2, 0
        mov %r3, 0
        call 12
        mov %r0, 1
        exit
        """;

    const string Entry = """
        ldmap %r2, 0
        mov %r3, %r1
        call 12
        mov %r0, 7
        exit
        """;

    const string Return42 = """
        mov %r0, 42
        exit
        """;

    [Test]
    public void ChainStopsAfter33TailCalls([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var jumps = (ProgArrayMap)MapFactory.Create(MapType.ProgArray, 4, 4, 4, 0, "jmp_table");
        using var counter = MapFactory.Create(MapType.Array, 4, 8, 1, 0, "count");
        var classifier = Prepare(engine, Classifier0, jumps, counter);
        Assert.That(jumps.SetProgram(0, new TailCallTarget(classifier, "classifier_0")), Is.EqualTo(0));
        var entry = Prepare(engine, Entry, jumps);
        Assert.That(Run(entry, 0), Is.EqualTo(1ul), "the last classifier_0 falls through and returns 1");
        Assert.That(counter.Lookup(0u, out ulong count), Is.EqualTo(0));
        Assert.That(count, Is.EqualTo((ulong)TailCallState.MaxChain));
        Assert.That(TailCallState.Depth, Is.EqualTo(0), "the chain state unwinds");
        // A second run starts a fresh chain.
        counter.Update(0u, 0ul);
        Assert.That(Run(entry, 0), Is.EqualTo(1ul));
        counter.Lookup(0u, out count);
        Assert.That(count, Is.EqualTo(33ul));
    }

    [Test]
    public void ResultOfTheTargetEndsTheCaller([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var jumps = (ProgArrayMap)MapFactory.Create(MapType.ProgArray, 4, 4, 4, 0, "jmp");
        jumps.SetProgram(2, new TailCallTarget(Prepare(engine, Return42)));
        var entry = Prepare(engine, Entry, jumps);
        Assert.Multiple(() =>
        {
            Assert.That(Run(entry, 2), Is.EqualTo(42ul), "the caller's code after the call does not run");
            Assert.That(Run(entry, 1), Is.EqualTo(7ul), "an empty slot falls through");
            Assert.That(Run(entry, 4), Is.EqualTo(7ul), "an index past the end falls through");
            Assert.That(Run(entry, 0x1_0000_0002), Is.EqualTo(42ul), "the index is a u32");
        });
    }

    [Test]
    public void UserspaceApi()
    {
        using var jumps = (ProgArrayMap)MapFactory.Create(MapType.ProgArray, 4, 4, 2, 0, "jmp");
        var target = new TailCallTarget((_, _) => 5);
        var value = new byte[4];
        Assert.Multiple(() =>
        {
            Assert.That(jumps.Update(U32(0), U32(77)), Is.EqualTo(-Errno.EBADF), "no resolver: ids are not programs");
            jumps.Resolver = id => id == 77 ? target : null;
            Assert.That(jumps.Update(U32(0), U32(78)), Is.EqualTo(-Errno.EBADF));
            Assert.That(jumps.Update(U32(0), U32(77), UpdateFlags.NoExist), Is.EqualTo(-Errno.EINVAL), "only BPF_ANY");
            Assert.That(jumps.Update(U32(2), U32(77)), Is.EqualTo(-Errno.E2BIG));
            Assert.That(jumps.Update(U32(0), U32(77)), Is.EqualTo(0));
            Assert.That(jumps.Program(0), Is.SameAs(target));
            Assert.That(jumps.Lookup(U32(0), value), Is.EqualTo(0));
            Assert.That(BitConverter.ToUInt32(value), Is.EqualTo(77u));
            Assert.That(jumps.Lookup(U32(1), value), Is.EqualTo(-Errno.ENOENT));
            Assert.That(jumps.Delete(U32(1)), Is.EqualTo(-Errno.ENOENT));
            Assert.That(jumps.Delete(U32(2)), Is.EqualTo(-Errno.E2BIG));
            Assert.That(jumps.Delete(U32(0)), Is.EqualTo(0));
            Assert.That(jumps.Program(0), Is.Null);
            Assert.That(jumps.Keys().Count(), Is.EqualTo(2));
        });
    }
}
