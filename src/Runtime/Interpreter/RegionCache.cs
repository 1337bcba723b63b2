using System.Runtime.CompilerServices;

namespace BpfJit.Runtime;

/// <summary>
/// The interpreter's per-run memory of regions it has seen (a context block, map values, sockets, records):
/// four entries, replaced round-robin, so the registry is asked once per region and run, not once per access.
/// An entry is only ever a region the registry or a helper's typed result vouched for during this run.
/// </summary>
internal struct RegionCache
{
    ulong _start0, _start1, _start2, _start3;
    long _length0, _length1, _length2, _length3;
    int _next;

    /// <summary>True when [<paramref name="address"/>, +<paramref name="size"/>) lies inside one entry.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool Hit(ulong address, int size) =>
        In(address, size, _start0, _length0) || In(address, size, _start1, _length1)
        || In(address, size, _start2, _length2) || In(address, size, _start3, _length3);

    /// <summary>The entry holding [<paramref name="address"/>, +<paramref name="size"/>), if any.</summary>
    public readonly bool Find(ulong address, int size, out ulong start, out long length)
    {
        if (In(address, size, _start0, _length0)) { (start, length) = (_start0, _length0); return true; }
        if (In(address, size, _start1, _length1)) { (start, length) = (_start1, _length1); return true; }
        if (In(address, size, _start2, _length2)) { (start, length) = (_start2, _length2); return true; }
        if (In(address, size, _start3, _length3)) { (start, length) = (_start3, _length3); return true; }
        (start, length) = (0, 0);
        return false;
    }

    // room < 0 (an empty entry, or one shorter than the access) never holds it
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool In(ulong address, int size, ulong start, long length)
    {
        long room = length - size;
        return room >= 0 && address - start <= (ulong)room;
    }

    /// <summary>Remembers the region [<paramref name="start"/>, +<paramref name="length"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(ulong start, int length)
    {
        switch (_next++ & 3)
        {
            case 0: (_start0, _length0) = (start, length); break;
            case 1: (_start1, _length1) = (start, length); break;
            case 2: (_start2, _length2) = (start, length); break;
            default: (_start3, _length3) = (start, length); break;
        }
    }
}

/// <summary>What the interpreter's access checks read: where its stack block starts, how many bytes of frames are in use, the last region touched, the cache.</summary>
internal struct RunState : Checked.HelperArguments.IRegionProbe
{
    /// <summary>For helper arguments: the whole stack block (a helper may be handed any of it), then the cache.</summary>
    public readonly bool Holds(ulong address, int size) =>
        (size <= StackBlock && address - StackStart <= (ulong)(StackBlock - size)) || Cache.Hit(address, size);

    const int StackBlock = Interpreter.StackSize * Interpreter.MaxFrames;

    public ulong StackStart;
    public ulong FrameBytes;   // at least 512
    public ulong LastStart;    // the region the run touched last, at least 8 bytes long (the inline check subtracts the size from it)
    public ulong LastLength;
    public ulong Context;      // r1 at the start of a run from outside (0 in a callback)
    public RegionCache Cache;
    public ulong LastSocket;   // a socket view a helper returned in this run (0: none)
    public bool Callback;      // the run is a callback's (bpf_loop, bpf_for_each_map_elem): its callers' stacks are regions too
    public bool Announced;     // the stack block is announced to the registry (MemoryRegions.EnterStack)

    /// <summary>Makes [<paramref name="start"/>, +<paramref name="length"/>) the last region; one shorter than 8 bytes stays in the cache only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetLast(ulong start, long length)
    {
        if (length < 8) return;
        (LastStart, LastLength) = (start, (ulong)length);
    }
}
