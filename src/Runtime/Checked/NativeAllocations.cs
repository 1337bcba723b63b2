namespace BpfJit.Runtime.Checked;

/// <summary>
/// Counts the runtime's native blocks (map memory, context blocks, socket blocks): tests compare
/// <see cref="LiveBlocks"/> before and after a workload to show that teardown frees everything.
/// Blocks retired through <see cref="Maps.MapEpoch"/> count as live until the epoch frees them.
/// </summary>
public static class NativeAllocations
{
    static long s_live, s_total;

    /// <summary>Native blocks allocated and not yet freed.</summary>
    public static long LiveBlocks => Volatile.Read(ref s_live);

    /// <summary>Native blocks allocated since the process started.</summary>
    public static long TotalBlocks => Volatile.Read(ref s_total);

    internal static void Allocated()
    {
        Interlocked.Increment(ref s_live);
        Interlocked.Increment(ref s_total);
    }

    internal static void Freed() => Interlocked.Decrement(ref s_live);
}
