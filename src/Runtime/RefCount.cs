namespace BpfJit.Runtime;

/// <summary>Reference counts as the kernel keeps them for maps and programs.</summary>
internal static class RefCount
{
    /// <summary>
    /// Adds a reference unless the count already reached zero (the kernel's <c>atomic64_inc_not_zero</c>, behind
    /// <c>bpf_map_inc_not_zero</c> and <c>bpf_prog_inc_not_zero</c>): false once the object is gone.
    /// </summary>
    public static bool TryIncrementNotZero(ref int refs)
    {
        int current = Volatile.Read(ref refs);
        while (current > 0)
        {
            int seen = Interlocked.CompareExchange(ref refs, current + 1, current);
            if (seen == current) return true;
            current = seen;
        }
        return false;
    }
}
