using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Checked;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Helpers;

/// <summary>
/// Dynptrs made on the program's stack: bpf_dynptr_from_mem over a map value, bpf_dynptr_write into it, and a ring-buffer
/// record through bpf_ringbuf_reserve_dynptr / submit_dynptr / discard_dynptr, on every engine, with the kernel's results;
/// and a dynptr forged on the stack faults in the engines that check memory instead of leading a helper elsewhere.
/// </summary>
[TestFixture]
public class DynptrHelperTests
{
    // dynptr_from_mem(&value, 16, fromFlags, fp-24), then dynptr_write(fp-24, offset, fp-40 (16 bytes), len, flags): its result.
    static string Write(string offset, uint len, uint flags, uint fromFlags = 0) => $"""
        stw [%r10-4], 0
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, fail
        mov %r1, %r0
        mov %r2, 16
        mov %r3, {fromFlags}
        mov %r4, %r10
        add %r4, -24
        call 197
        stdw [%r10-40], 0x11223344
        stdw [%r10-32], 0x55667788
        mov %r1, %r10
        add %r1, -24
        {offset}
        mov %r3, %r10
        add %r3, -40
        mov %r4, {len}
        mov %r5, {flags}
        call 202
        exit
        fail:
        mov %r0, 99
        exit
        """;

    [TestCase("mov %r2, 0", 8u, 0u, 0, 0, TestName = "dynptr_write of 8 bytes at 0")]
    [TestCase("mov %r2, 8", 8u, 0u, 0, 8, TestName = "dynptr_write of the last 8 bytes")]
    [TestCase("mov %r2, 0", 16u, 0u, 0, 0, TestName = "dynptr_write of all 16 bytes")]
    [TestCase("mov %r2, 16", 0u, 0u, 0, -1, TestName = "dynptr_write of 0 bytes at the end")]
    [TestCase("mov %r2, 9", 8u, 0u, -Errno.E2BIG, -1, TestName = "dynptr_write past the end is E2BIG")]
    [TestCase("mov %r2, 0", 17u, 0u, -Errno.E2BIG, -1, TestName = "dynptr_write longer than the data is E2BIG")]
    [TestCase("mov %r2, 17", 0u, 0u, -Errno.E2BIG, -1, TestName = "dynptr_write at an offset past the end is E2BIG")]
    [TestCase("mov %r2, 9", 8u, 1u, -Errno.E2BIG, -1, TestName = "dynptr_write checks the range before the flags")]
    [TestCase("mov %r2, 0", 8u, 1u, -Errno.EINVAL, -1, TestName = "dynptr_write with flags is EINVAL")]
    [TestCase("lddw %r2, 0x100000008", 8u, 0u, 0, 8, TestName = "dynptr_write takes a u32 offset")]
    public void DynptrWrite(string offset, uint len, uint flags, int expected, int at)
    {
        foreach (var engine in Engines.Names)
        {
            using var array = MapFactory.Create(MapType.Array, 4, 16, 1, 0, "a");
            Assert.That((long)Run(engine, Write(offset, len, flags), 0, array), Is.EqualTo(expected), engine);
            var value = new byte[16];
            array.Lookup(U32(0), value);
            if (at >= 0) Assert.That(BitConverter.ToUInt32(value, at), Is.EqualTo(0x11223344u), engine);
            else Assert.That(value, Is.All.EqualTo((byte)0), $"{engine}: nothing written");
        }
    }

    [Test]
    public void A_failed_dynptr_from_mem_leaves_a_NULL_dynptr_that_refuses_writes([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var array = MapFactory.Create(MapType.Array, 4, 16, 1, 0, "a");
        // from_mem with flags 1 is EINVAL (not checked here) and leaves the dynptr NULL: the write is then EINVAL.
        Assert.That((long)Run(engine, Write("mov %r2, 0", 8, 0, fromFlags: 1), 0, array), Is.EqualTo(-Errno.EINVAL));
        // A size above DYNPTR_MAX_SIZE (which no verified program can pass with memory that large) is E2BIG, the dynptr NULL.
        var dynptr = new ulong[] { 1, 1 };
        var data = new byte[1];
        unsafe
        {
            fixed (ulong* d = dynptr)
            fixed (byte* p = data)
                Assert.That((long)KernelHelpers.DynptrFromMem((ulong)p, 1u << 24, 0, (ulong)d, 0), Is.EqualTo(-Errno.E2BIG));
        }
        Assert.That(dynptr, Is.EqualTo(new ulong[] { 0, 0 }));
    }

    // ringbuf_reserve_dynptr(ring, size, flags, fp-16); dynptr_write(fp-16, 0, fp-24, 8, 0); then submit (199) or discard (200).
    static string Reserve(string size, uint flags, int release) => $"""
        ldmap %r1, 0
        {size}
        mov %r3, {flags}
        mov %r4, %r10
        add %r4, -16
        call 198
        mov %r6, %r0
        stdw [%r10-24], 0x5a5a
        mov %r1, %r10
        add %r1, -16
        mov %r2, 0
        mov %r3, %r10
        add %r3, -24
        mov %r4, 8
        mov %r5, 0
        call 202
        mov %r7, %r0
        mov %r1, %r10
        add %r1, -16
        mov %r2, 0
        call {release}
        mov %r0, %r6
        lsh %r0, 16
        and %r7, 0xffff
        or %r0, %r7
        exit
        """;

    [TestCase("mov %r2, 8", 0u, 199, 0, 0, true, TestName = "a reserved dynptr's record is written and submitted")]
    [TestCase("mov %r2, 8", 0u, 200, 0, 0, false, TestName = "a reserved dynptr's record is discarded")]
    [TestCase("mov %r2, 8", 1u, 199, -Errno.EINVAL, -Errno.EINVAL, false, TestName = "ringbuf_reserve_dynptr with flags is EINVAL, the dynptr NULL")]
    [TestCase("lddw %r2, 0x1000000", 0u, 199, -Errno.E2BIG, -Errno.EINVAL, false, TestName = "ringbuf_reserve_dynptr above DYNPTR_MAX_SIZE is E2BIG")]
    [TestCase("mov %r2, 8192", 0u, 199, -Errno.EINVAL, -Errno.EINVAL, false, TestName = "ringbuf_reserve_dynptr without room is EINVAL")]
    public void RingbufDynptr(string size, uint flags, int release, int reserved, int written, bool record)
    {
        foreach (var engine in Engines.Names)
        {
            using var ring = (RingBufMap)MapFactory.Create(MapType.RingBuf, 0, 0, 4096, 0, "rb");
            ulong r0 = Run(engine, Reserve(size, flags, release), 0, ring);
            Assert.That(((long)r0 >> 16, (short)r0), Is.EqualTo(((long)reserved, (short)written)), engine);
            Assert.That(ring.TryRead(out var data), Is.EqualTo(record), engine);
            if (record) Assert.That(BitConverter.ToUInt64(data), Is.EqualTo(0x5a5aul), engine);
        }
    }

    [Test]
    public void A_forged_dynptr_faults_in_the_checking_engines([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        // A LOCAL dynptr of 64 bytes at address 0x1000 built by hand on the stack, then dynptr_read from it.
        var code = Assemble("""
            lddw %r1, 0x1000
            stxdw [%r10-16], %r1
            stdw [%r10-8], 0x10000040
            mov %r1, %r10
            add %r1, -32
            mov %r2, 8
            mov %r3, %r10
            add %r3, -16
            mov %r4, 0
            mov %r5, 0
            call 201
            exit
            """);
        var entry = BpfEngines.Checking(engine).Prepare(code, KernelHelpers.Table());
        var e = Assert.Throws(Is.InstanceOf<BpfFaultException>(), () => Run(entry))!;
        Assert.That(e.Message, Does.Contain("is a dynptr whose data [0x1000, +64)"));
    }
}
