using System.Runtime.CompilerServices;

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

    static int ReadPossible()
    {
        int count = Environment.ProcessorCount;
        try
        {
            const string path = "/sys/devices/system/cpu/possible";
            if (File.Exists(path))
            {
                // Format: "0-7" or "0,2-5": the highest id + 1 is the slot count.
                string text = File.ReadAllText(path).Trim();
                int highest = 0;
                foreach (var part in text.Split(','))
                {
                    var range = part.Split('-');
                    if (int.TryParse(range[^1], out int last)) highest = Math.Max(highest, last);
                }
                count = Math.Max(count, highest + 1);
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return count;
    }
}
