using System.Runtime.CompilerServices;
using BpfJit.Frontend;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// The processors per-CPU maps have slots for. <see cref="Count"/> is the number of possible CPUs
/// (Linux <c>/sys/devices/system/cpu/possible</c>, at least <see cref="Environment.ProcessorCount"/>), so
/// that every id <see cref="Thread.GetCurrentProcessorId"/> can return has its own slot even when the
/// process's affinity or CPU quota is smaller than the machine.
/// </summary>
public static class Cpu
{
    /// <summary>The number of per-CPU slots.</summary>
    public static int Count { get; } = ReadPossible();

    /// <summary>The current processor's slot, in [0, <see cref="Count"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Current()
    {
        uint id = (uint)Thread.GetCurrentProcessorId();
        return id < (uint)Count ? (int)id : (int)(id % (uint)Count);
    }

    /// <summary>
    /// The highest cpu id of a cpulist ("0-7", "0,2-5\n"): the largest number in it. Read from the bytes, not as
    /// text: File.ReadAllText's reader and decoder cost 1-3 ms of CPU at a process's first map (docs/perf.md, "Cold start").
    /// </summary>
    internal static int HighestId(ReadOnlySpan<byte> cpulist)
    {
        int highest = 0, number = 0;
        foreach (byte b in cpulist)
        {
            if (b is >= (byte)'0' and <= (byte)'9')
            {
                number = Math.Min(number * 10 + (b - '0'), 1 << 20);
                highest = Math.Max(highest, number);
            }
            else
            {
                number = 0;
            }
        }
        return highest;
    }

    static int ReadPossible()
    {
        int count = Environment.ProcessorCount;
        try
        {
            const string path = "/sys/devices/system/cpu/possible";
            if (File.Exists(path))
            {
                // InputFile reads to the end (File.ReadAllBytes takes sysfs's 4096-byte st_size as the length and fails).
                count = Math.Max(count, HighestId(InputFile.ReadBytes(path, 4096, "cpu list")) + 1);
            }
        }
        catch (BpfInputException) { }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return count;
    }
}
