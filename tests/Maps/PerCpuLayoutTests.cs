using BpfJit.Runtime.Maps;

namespace BpfJit.Tests.Maps;

/// <summary>
/// PERCPU_ARRAY slots of different CPUs never share a cache line (programs on two processors update
/// their own slots of one element without bouncing a line; the kernel's per-CPU areas are separate).
/// A layout check, no timing.
/// </summary>
[TestFixture]
public class PerCpuLayoutTests
{
    const ulong Line = 64;

    [TestCase(4, 1)]
    [TestCase(8, 64)]
    [TestCase(24, 1002)]    // the dispatcher's destination_metrics
    [TestCase(100, 7)]
    public void SlotsOfDifferentCpusShareNoLine(int valueSize, int entries)
    {
        if (Cpu.Count < 2) Assert.Ignore("one CPU slot: nothing to share");
        using var map = (PerCpuArrayMap)MapFactory.Create(MapType.PerCpuArray, 4, valueSize, entries, 0, "pc");
        var owner = new Dictionary<ulong, int>();
        for (int cpu = 0; cpu < Cpu.Count; cpu++)
            for (uint i = 0; i < (uint)entries; i++)
            {
                ulong slot = map.SlotAddress(i, cpu);
                Assert.That(slot, Is.EqualTo(map.Data + i * (ulong)map.ElementStride + (ulong)cpu * (ulong)map.SlotStride),
                    "the address the JIT's inlined lookup computes");
                for (ulong line = slot / Line; line <= (slot + (ulong)valueSize - 1) / Line; line++)
                {
                    if (owner.TryGetValue(line, out int other))
                        Assert.That(other, Is.EqualTo(cpu), $"element {i}: CPU {cpu}'s slot shares line {line:x} with CPU {other}'s slots");
                    else owner[line] = cpu;
                }
            }
    }
}
