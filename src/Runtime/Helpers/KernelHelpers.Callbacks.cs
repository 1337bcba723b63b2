namespace BpfJit.Runtime;

public static partial class KernelHelpers
{
    /// <summary>BPF_MAX_LOOPS: the largest iteration count bpf_loop accepts.</summary>
    public const ulong MaxLoops = 1 << 23;

    /// <summary>
    /// bpf_loop(nr_loops, callback, ctx, flags): calls <c>callback(i, ctx)</c> for i = 0..nr_loops-1 until it
    /// returns non-zero; returns the number of calls. -EINVAL for flags, -E2BIG above <see cref="MaxLoops"/>.
    /// </summary>
    public static ulong Loop(ulong count, ulong callback, ulong ctx, ulong flags, ulong r5)
    {
        if (flags != 0) return Err(Runtime.Errno.EINVAL);
        if (count > MaxLoops) return Err(Runtime.Errno.E2BIG);
        var fn = Callbacks.FromHandle(callback);
        for (ulong i = 0; i < count; i++)
        {
            if (fn(i, ctx, 0, 0, 0) != 0) return i + 1;
        }
        return count;
    }

    /// <summary>
    /// bpf_for_each_map_elem(map, callback, ctx, flags): calls <c>callback(map, &amp;key, &amp;value, ctx)</c> per
    /// element until it returns non-zero; returns the number of calls. -EINVAL for flags or a map type
    /// that cannot be walked.
    /// </summary>
    public static ulong ForEachMapElem(ulong map, ulong callback, ulong ctx, ulong flags, ulong r5)
    {
        if (flags != 0) return Err(Runtime.Errno.EINVAL);
        var m = Maps.BpfMap.FromHandle(map);
        var fn = Callbacks.FromHandle(callback);
        int keySize = m.KeySize;
        // The element's key is the callback's to read (PTR_TO_MAP_KEY) but is no map value: lend it for the call.
        return (ulong)m.ForEachElem((r1, key, value, c, r5) =>
        {
            Checked.MemoryRegions.Lend(key, keySize);
            try
            {
                return fn(r1, key, value, c, r5);
            }
            finally
            {
                Checked.MemoryRegions.EndLend();
            }
        }, ctx);
    }
}
