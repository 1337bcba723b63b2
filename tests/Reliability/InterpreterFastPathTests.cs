using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// The interpreter's cheap paths stay memory-safe (docs/reliability.md, "The interpreter"): a stack access runs
/// unchecked only when the program cannot move r10; a run does not inherit an earlier run's stack; the context block
/// a run remembers is forgotten once unregistered; a helper's key argument still has to be memory the run may touch.
/// </summary>
[TestFixture]
public unsafe class InterpreterFastPathTests
{
    [TestCase("add %r10, 1024", TestName = "a program that adds to r10 keeps its r10 accesses checked")]
    [TestCase("mov %r10, %r1", TestName = "a program that moves a value into r10 keeps its r10 accesses checked")]
    public void MovedFramePointer(string move)
    {
        // Both reads are inside r10's frame as written; after the move the second is in no frame in use.
        byte* block = stackalloc byte[16];
        ulong r1 = (ulong)block + 4096 + 1024;   // mov %r10, %r1: r10 - 8 is past the 16-byte block, on this method's stack
        var entry = MapPrograms.Prepare("interpreter", $"""
            ldxdw %r0, [%r10-8]
            {move}
            ldxdw %r0, [%r10-8]
            exit
            """);
        Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => MapPrograms.Run(entry, r1));
    }

    [Test]
    public void AnUnmovedFramePointerRunsItsFrame()
    {
        Assert.That(MapPrograms.Run("interpreter", """
            stdw [%r10-512], 7
            ldxdw %r0, [%r10-512]
            stb [%r10-1], 1
            ldxsb %r1, [%r10-1]
            add %r0, %r1
            exit
            """, 0), Is.EqualTo(8UL));
    }

    [TestCase("stdw [%r10+3584], 7", TestName = "a store just past the last frame faults (the run's registers lie there)")]
    [TestCase("ldxdw %r0, [%r10+3584]", TestName = "a load just past the last frame faults")]
    [TestCase("mov %r1, %r10\nadd %r1, %r2\nldxdw %r0, [%r1+0]", TestName = "a load past the last frame at a variable offset faults")]
    public void PastTheFramesFaults(string access)
    {
        // r10 + 3584 is the first byte past the eight frames: the run's own memory (r0-r10, the saved caller state) lies
        // there, in the same local of the interpreter's frame, and no check may treat it as stack.
        var entry = MapPrograms.Prepare("interpreter", $"mov %r0, 1\n{access}\nexit");
        var e = (BpfFaultException)Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => MapPrograms.Run(entry, 0, 3584))!;
        Assert.That(e.Disassembly, Does.Contain("r10").Or.Contain("r1 "));
    }

    [Test]
    public void AHelperCallsFaultNamesTheHelperAsWritten()
    {
        // The interpreter's own copy of the program numbers its call sites in the call's immediate; a fault still
        // describes the program as it was handed in: the third site (number 2) is bpf_map_lookup_elem, helper 1.
        using var hash = MapFactory.Create(MapType.Hash, 8, 8, 4, 0, "h");
        var entry = MapPrograms.Prepare("interpreter", """
            mov %r6, %r1
            call 7
            call 7
            mov %r2, %r6
            ldmap %r1, 0
            call 1
            mov %r0, 0
            exit
            """, hash);
        var e = (BpfFaultException)Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => MapPrograms.Run(entry, 16))!;
        Assert.That(e.Index, Is.EqualTo(6));
        Assert.That(e.Disassembly, Does.Contain("bpf_map_lookup_elem#1"));
    }

    [Test]
    public void AnEarlierRunsStackIsNoRegion()
    {
        // A run that calls a helper announces its stack block; a later run on this thread, from a shallower native
        // frame, is handed an address in that dead block (the stack it points to now belongs to whatever runs there).
        ulong deadFrame = RunDeeper(MapPrograms.Prepare("interpreter", "call 7\nmov %r0, %r10\nexit"));
        var reader = MapPrograms.Prepare("interpreter", "ldxdw %r0, [%r1-8]\nexit");
        Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => MapPrograms.Run(reader, deadFrame));
    }

    [Test]
    public void AHelperArgumentInAnEarlierRunsStackFaults()
    {
        // The earlier run calls bpf_trace_printk, which may look for its extra arguments in the registry, so its stack
        // block is announced there. The later run calls a helper with no pointer argument first (which announces
        // nothing), then passes a key in the dead block: the full check of that key must not find the earlier run's
        // stack in the registry.
        using var hash = MapFactory.Create(MapType.Hash, 8, 8, 4, 0, "h");
        ulong deadFrame = RunDeeper(MapPrograms.Prepare("interpreter", """
            stdw [%r10-8], 0
            mov %r1, %r10
            add %r1, -8
            mov %r2, 1
            call 6
            mov %r0, %r10
            exit
            """));
        var later = MapPrograms.Prepare("interpreter", """
            mov %r6, %r1
            call 7
            mov %r2, %r6
            add %r2, -8
            ldmap %r1, 0
            call 1
            mov %r0, 0
            exit
            """, hash);
        var e = Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => MapPrograms.Run(later, deadFrame));
        Assert.That(e!.Message, Does.Contain("argument r2"));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static ulong RunDeeper(BpfEntry entry)
    {
        byte* pad = stackalloc byte[16384];
        pad[0] = 1;
        ulong r10 = MapPrograms.Run(entry);
        GC.KeepAlive(pad[0]);
        return r10;
    }

    [Test]
    public void AnUnregisteredContextIsForgotten()
    {
        byte* block = (byte*)NativeMemory.AllocZeroed(64);
        try
        {
            MemoryRegions.Register((ulong)block, 64, MemoryRegionKind.Context);
            var entry = MapPrograms.Prepare("interpreter", "ldxdw %r0, [%r1+8]\nexit");
            *(ulong*)(block + 8) = 42;
            Assert.That(MapPrograms.Run(entry, (ulong)block), Is.EqualTo(42UL));
            Assert.That(MapPrograms.Run(entry, (ulong)block), Is.EqualTo(42UL), "the second run starts with the block it remembered");
            MemoryRegions.Unregister((ulong)block);
            Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => MapPrograms.Run(entry, (ulong)block));
            MemoryRegions.Register((ulong)block, 8, MemoryRegionKind.Context);
            Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => MapPrograms.Run(entry, (ulong)block));   // registered again, shorter
        }
        finally
        {
            MemoryRegions.Unregister((ulong)block);
            NativeMemory.Free(block);
        }
    }

    [Test]
    public void AKeyOutsideEveryRegionFaultsBeforeTheHelper()
    {
        using var hash = MapFactory.Create(MapType.Hash, 8, 8, 4, 0, "h");
        byte* key = (byte*)NativeMemory.AllocZeroed(8);
        try
        {
            // The same call site first with a key on the stack (the site remembers the map), then with an unregistered one.
            var entry = MapPrograms.Prepare("interpreter", """
                stdw [%r10-8], 0
                mov %r2, %r10
                add %r2, -8
                jeq %r1, 0, lookup
                mov %r2, %r1
                lookup:
                ldmap %r1, 0
                call 1
                mov %r0, 0
                exit
                """, hash);
            Assert.That(MapPrograms.Run(entry, 0), Is.EqualTo(0UL));
            var e = Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => MapPrograms.Run(entry, (ulong)key));
            Assert.That(e!.Message, Does.Contain("argument r2"));
        }
        finally
        {
            NativeMemory.Free(key);
        }
    }
}
