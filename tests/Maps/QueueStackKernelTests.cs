using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Maps;

/// <summary>
/// Userspace operations on QUEUE and STACK maps (update = push, lookup = peek, lookup_and_delete = pop, delete,
/// get_next_key, freeze) with every flag, on full and empty maps, read-only, write-only and frozen: the same sequence
/// runs on a kernel map and on a BpfJit map, and every step must give the same errno and the same value bytes.
/// </summary>
[TestFixture, Category(KernelOracle.Category)]
public class QueueStackKernelTests
{
    enum Op { Push, Peek, Pop, Delete, NextKey, Freeze }

    sealed record Step(Op Op, uint Value = 0, ulong Flags = 0)
    {
        public override string ToString() => $"{Op}{(Op == Op.Push ? $" {Value}" : "")}{(Flags != 0 ? $" flags 0x{Flags:x}" : "")}";
    }

    static IEnumerable<Step> Steps()
    {
        yield return new(Op.Peek);
        yield return new(Op.Pop);
        yield return new(Op.Peek, Flags: UpdateFlags.Lock);
        yield return new(Op.Peek, Flags: 1);
        yield return new(Op.Pop, Flags: UpdateFlags.Lock);
        yield return new(Op.Pop, Flags: 8);
        foreach (ulong f in new ulong[] { UpdateFlags.NoExist, 3, 8, UpdateFlags.Lock, UpdateFlags.Lock | UpdateFlags.Exist })
            yield return new(Op.Push, 100, f);
        for (uint v = 1; v <= 4; v++) yield return new(Op.Push, v);
        yield return new(Op.Push, 5, UpdateFlags.Exist);
        yield return new(Op.Push, 6, UpdateFlags.Exist);
        yield return new(Op.Peek);
        yield return new(Op.Delete);
        yield return new(Op.NextKey);
        yield return new(Op.Pop);
        yield return new(Op.Peek);
        yield return new(Op.Push, 7);
        yield return new(Op.Pop);
        yield return new(Op.Pop);
        yield return new(Op.Freeze);
        yield return new(Op.Push, 8);
        yield return new(Op.Pop);
        yield return new(Op.Peek);
        yield return new(Op.Freeze);
        yield return new(Op.Pop);
        yield return new(Op.Pop);
    }

    [Test]
    public void Every_operation_and_flag_gets_the_kernels_errno_and_value()
    {
        KernelBpf.RequireAvailable();
        var differences = new List<string>();
        int compared = 0;
        foreach (var type in new[] { MapType.Queue, MapType.Stack })
        foreach (uint access in new[] { 0u, MapFlags.ReadOnly, MapFlags.WriteOnly, MapFlags.ReadOnlyProg })
        {
            const int max = 4;
            int fd = KernelBpf.CreateMap((uint)type, 0, 4, max, access);
            Assert.That(fd, Is.GreaterThanOrEqualTo(0), $"kernel {type} flags 0x{access:x}: {Errno.Name(fd)}");
            using var map = MapFactory.Create(type, 0, 4, max, access, "qs");
            try
            {
                foreach (var step in Steps())
                {
                    var (kernel, kernelValue) = RunKernel(fd, step);
                    var (ours, ourValue) = RunBpfJit(map, step);
                    compared++;
                    if (kernel != ours || kernelValue != ourValue)
                        differences.Add($"{type} flags 0x{access:x}: {step}: kernel {Errno.Name(kernel)} value {kernelValue}, BpfJit {Errno.Name(ours)} value {ourValue}");
                }
            }
            finally { KernelBpf.Close(fd); }
        }
        TestContext.Out.WriteLine($"{compared} operations compared with the kernel");
        if (differences.Count > 0)
            KernelOracle.Differs(KernelOracle.RecordedRelease, $"{differences.Count} of {compared} operations:\n" + string.Join("\n", differences));
    }

    // The value buffer starts as 0xeeeeeeee: an operation that fails without touching it leaves that.
    static (int Errno, uint Value) RunKernel(int fd, Step s)
    {
        var value = BitConverter.GetBytes(s.Op == Op.Push ? s.Value : 0xeeeeeeee);
        int r = s.Op switch
        {
            Op.Push => KernelBpf.Update(fd, [], value, s.Flags),
            Op.Peek => KernelBpf.Lookup(fd, [], value, s.Flags),
            Op.Pop => KernelBpf.LookupAndDelete(fd, [], value, s.Flags),
            Op.Delete => KernelBpf.Delete(fd, []),
            Op.NextKey => KernelBpf.GetNextKey(fd, [], new byte[8]),
            _ => KernelBpf.Freeze(fd),
        };
        return (r, BitConverter.ToUInt32(value));
    }

    static (int Errno, uint Value) RunBpfJit(BpfMap map, Step s)
    {
        var value = BitConverter.GetBytes(s.Op == Op.Push ? s.Value : 0xeeeeeeee);
        int r = s.Op switch
        {
            Op.Push => map.Update([], value, s.Flags),
            Op.Peek => map.Lookup([], value, s.Flags),
            Op.Pop => map.LookupAndDelete([], value, s.Flags),
            Op.Delete => map.Delete([]),
            Op.NextKey => map.GetNextKey([], []),
            _ => map.Freeze(),
        };
        return (r, BitConverter.ToUInt32(value));
    }
}
