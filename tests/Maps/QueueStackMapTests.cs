using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using static BpfJit.Tests.Support.MapPrograms;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Maps;

/// <summary>
/// BPF_MAP_TYPE_QUEUE and BPF_MAP_TYPE_STACK: the order values come out in, a full map (E2BIG, or the oldest value
/// dropped with BPF_EXIST), an empty one (ENOENT with the value zeroed), the operations they do not have, and the
/// helpers bpf_map_push_elem/pop_elem/peek_elem on every engine.
/// </summary>
[TestFixture]
public class QueueStackMapTests
{
    static readonly byte[] NoKey = [];

    static uint Pop(BpfMap map, out int err)
    {
        var v = new byte[4];
        err = map.LookupAndDelete(NoKey, v);
        return BitConverter.ToUInt32(v);
    }

    [TestCase(MapType.Queue, new uint[] { 1, 2, 3 })]
    [TestCase(MapType.Stack, new uint[] { 3, 2, 1 })]
    public void Values_come_out_first_in_first_out_or_last_in_first_out(MapType type, uint[] order)
    {
        using var map = MapFactory.Create(type, 0, 4, 3, 0, "qs");
        foreach (uint v in new uint[] { 1, 2, 3 }) Assert.That(map.Update(NoKey, U32(v)), Is.EqualTo(0));
        Assert.That(((QueueStackMap)map).Count, Is.EqualTo(3));
        var peek = new byte[4];
        Assert.That(map.Lookup(NoKey, peek), Is.EqualTo(0), "lookup peeks");
        Assert.That(BitConverter.ToUInt32(peek), Is.EqualTo(order[0]));
        foreach (uint expected in order)
        {
            Assert.That(Pop(map, out int err), Is.EqualTo(expected));
            Assert.That(err, Is.EqualTo(0));
        }
        Assert.That(((QueueStackMap)map).Count, Is.EqualTo(0));
    }

    [TestCase(MapType.Queue, new uint[] { 2, 3, 4 })]
    [TestCase(MapType.Stack, new uint[] { 4, 3, 2 })]
    public void A_full_map_refuses_a_push_with_E2BIG_and_BPF_EXIST_drops_the_oldest_value(MapType type, uint[] order)
    {
        using var map = MapFactory.Create(type, 0, 4, 3, 0, "qs");
        foreach (uint v in new uint[] { 1, 2, 3 }) map.Update(NoKey, U32(v));
        Assert.Multiple(() =>
        {
            Assert.That(map.Update(NoKey, U32(9), UpdateFlags.Any), Is.EqualTo(-Errno.E2BIG));
            Assert.That(map.Update(NoKey, U32(9), UpdateFlags.NoExist), Is.EqualTo(-Errno.EINVAL));
            Assert.That(map.Update(NoKey, U32(9), 3), Is.EqualTo(-Errno.EINVAL));
            Assert.That(map.Update(NoKey, U32(9), UpdateFlags.Lock), Is.EqualTo(-Errno.EINVAL), "no bpf_spin_lock in the value");
            Assert.That(map.Update(NoKey, U32(4), UpdateFlags.Exist), Is.EqualTo(0));
        });
        foreach (uint expected in order) Assert.That(Pop(map, out _), Is.EqualTo(expected));
    }

    [TestCase(MapType.Queue)]
    [TestCase(MapType.Stack)]
    public void An_empty_map_gives_ENOENT_and_has_no_keys_to_delete_or_walk(MapType type)
    {
        using var map = MapFactory.Create(type, 0, 4, 2, 0, "qs");
        var value = new byte[] { 1, 2, 3, 4 };
        Assert.Multiple(() =>
        {
            Assert.That(map.Lookup(NoKey, value), Is.EqualTo(-Errno.ENOENT));
            Assert.That(map.LookupAndDelete(NoKey, value), Is.EqualTo(-Errno.ENOENT));
            Assert.That(value, Is.EqualTo(new byte[] { 1, 2, 3, 4 }), "userspace's buffer is not written on ENOENT");
            Assert.That(map.LookupAndDelete(NoKey, value, UpdateFlags.Lock), Is.EqualTo(-Errno.EINVAL), "any flag on a QUEUE/STACK");
            Assert.That(map.Delete(NoKey), Is.EqualTo(-Errno.EINVAL));
            Assert.That(map.GetNextKey(NoKey, []), Is.EqualTo(-Errno.EINVAL));
            Assert.That(map.Keys(), Is.Empty);
        });
    }

    [Test]
    public void Lookup_and_delete_of_a_type_without_it_is_ENOTSUPP_and_needs_read_and_write_access()
    {
        using var array = MapFactory.Create(MapType.Array, 4, 4, 2, 0, "a");
        Assert.That(array.LookupAndDelete(U32(0), new byte[4]), Is.EqualTo(-Errno.ENOTSUPP));
        using var ro = MapFactory.Create(MapType.Queue, 0, 4, 2, MapFlags.ReadOnly, "ro");
        using var wo = MapFactory.Create(MapType.Queue, 0, 4, 2, MapFlags.WriteOnly, "wo");
        Assert.Multiple(() =>
        {
            Assert.That(ro.LookupAndDelete(NoKey, new byte[4]), Is.EqualTo(-Errno.EPERM));
            Assert.That(wo.LookupAndDelete(NoKey, new byte[4]), Is.EqualTo(-Errno.EPERM));
            Assert.That(ro.LookupAndDelete(NoKey, new byte[4], 8), Is.EqualTo(-Errno.EINVAL), "unknown flags first");
        });
    }

    [Test]
    public void Creation_is_checked_as_the_kernel_and_charges_max_entries_plus_one_values()
    {
        Assert.Multiple(() =>
        {
            Assert.That(CreateErrno(() => MapFactory.Create(MapType.Queue, 4, 4, 2)), Is.EqualTo(Errno.EINVAL), "key_size must be 0");
            Assert.That(CreateErrno(() => MapFactory.Create(MapType.Stack, 0, 0, 2)), Is.EqualTo(Errno.EINVAL), "value_size 0");
            Assert.That(CreateErrno(() => MapFactory.Create(MapType.Stack, 0, 4, 0)), Is.EqualTo(Errno.EINVAL), "max_entries 0");
            Assert.That(CreateErrno(() => MapFactory.Create(MapType.Queue, 0, 4, 2, MapFlags.NoPrealloc)), Is.EqualTo(Errno.EINVAL));
            Assert.That(CreateErrno(() => MapFactory.Create(MapType.Queue, 0, (4 << 20) + 1, 1)), Is.EqualTo(Errno.E2BIG), "above KMALLOC_MAX_SIZE");
        });
        var attributes = new MapAttributes(MapType.Queue, 0, 12, 100);
        Assert.That(MapMemory.Footprint(attributes), Is.EqualTo((ulong)(BpfMap.HeaderSize + 101 * 12)));
        long before = MapMemory.Charged;
        using (MapFactory.Create(MapType.Queue, 0, 12, 100, 0, "charged"))
            Assert.That(MapMemory.Charged - before, Is.GreaterThanOrEqualTo(BpfMap.HeaderSize + 101 * 12));
    }

    static int CreateErrno(Action create)
    {
        var e = Assert.Throws<MapCreateException>(() => create())!;
        Assert.That(e.Message, Does.StartWith("map "));
        return e.Errno;
    }

    // push(map, &r1, flags r2); peek into fp-16; pop into fp-8: r0 = (push << 48) | (peek << 32) | (pop result << 16) | popped,
    // each 16 bits wide (negated errnos truncated).
    const string PushPeekPop = """
        stxw [%r10-4], %r1
        mov %r3, %r2
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -4
        call 87
        mov %r6, %r0
        and %r6, 0xffff
        lsh %r6, 48
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -16
        call 89
        ldxw %r7, [%r10-16]
        and %r7, 0xffff
        lsh %r7, 32
        or %r6, %r7
        ldmap %r1, 0
        mov %r2, %r10
        add %r2, -8
        call 88
        and %r0, 0xffff
        lsh %r0, 16
        or %r6, %r0
        ldxw %r7, [%r10-8]
        and %r7, 0xffff
        or %r6, %r7
        mov %r0, %r6
        exit
        """;

    static (short Push, ushort Peek, short Pop, ushort Popped) Decode(ulong r0) =>
        ((short)(r0 >> 48), (ushort)(r0 >> 32), (short)(r0 >> 16), (ushort)r0);

    [Test]
    public void Helpers_push_peek_and_pop_on_every_engine([ValueSource(typeof(Engines), nameof(Engines.Names))] string engine)
    {
        using var queue = MapFactory.Create(MapType.Queue, 0, 4, 2, 0, "q");
        using var stack = MapFactory.Create(MapType.Stack, 0, 4, 2, 0, "s");
        Assert.That(queue.Update(NoKey, U32(7)), Is.EqualTo(0));
        Assert.That(stack.Update(NoKey, U32(7)), Is.EqualTo(0));
        var onQueue = Prepare(engine, PushPeekPop, queue);
        var onStack = Prepare(engine, PushPeekPop, stack);
        Assert.Multiple(() =>
        {
            // The queue gives back its oldest value (7), the stack the one just pushed (8).
            Assert.That(Decode(Run(onQueue, 8)), Is.EqualTo(((short)0, (ushort)7, (short)0, (ushort)7)));
            Assert.That(Decode(Run(onStack, 8)), Is.EqualTo(((short)0, (ushort)8, (short)0, (ushort)8)));
            // One value left in each (8 in the queue, 7 in the stack); two more pushes fill it: the second one fails.
            Assert.That(Decode(Run(onQueue, 9)).Push, Is.EqualTo((short)0));
            Assert.That(((QueueStackMap)queue).Count, Is.EqualTo(1));
            Assert.That(queue.Update(NoKey, U32(10)), Is.EqualTo(0));
            Assert.That(Decode(Run(onQueue, 11)).Push, Is.EqualTo((short)-Errno.E2BIG));
            Assert.That(Decode(Run(onQueue, 11, UpdateFlags.Exist)).Push, Is.EqualTo((short)0), "BPF_EXIST drops the oldest");
            Assert.That(Decode(Run(onQueue, 11, UpdateFlags.NoExist)).Push, Is.EqualTo((short)-Errno.EINVAL));
        });
        // Emptied: peek and pop give ENOENT and zero the value.
        while (((QueueStackMap)stack).Count > 0) Pop(stack, out _);
        var empty = Prepare(engine, """
            stdw [%r10-8], -1
            ldmap %r1, 0
            mov %r2, %r10
            add %r2, -8
            call 88
            ldxw %r1, [%r10-8]
            jne %r1, 0, bad
            exit
            bad:
            mov %r0, 1
            exit
            """, stack);
        Assert.That((long)Run(empty), Is.EqualTo(-Errno.ENOENT));
    }
}
