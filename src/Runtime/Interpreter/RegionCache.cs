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

    // room < 0 (an empty entry, or one shorter than the access) never holds it
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool In(ulong address, int size, ulong start, long length)
    {
        long room = length - size;
        return room >= 0 && address - start <= (ulong)room;
    }

    /// <summary>Remembers the region [<paramref name="start"/>, +<paramref name="length"/>).</summary>
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

/// <summary>What the interpreter's access checks read: where its stack block starts, how many bytes of frames are in use, the cache.</summary>
internal struct RunState : Checked.HelperArguments.IRegionProbe
{
    /// <summary>For helper arguments: the whole stack block (a helper may be handed any of it), then the cache.</summary>
    public readonly bool Holds(ulong address, int size) =>
        (size <= StackBlock && address - StackStart <= (ulong)(StackBlock - size)) || Cache.Hit(address, size);

    const int StackBlock = Interpreter.StackSize * Interpreter.MaxFrames;

    public ulong StackStart;
    public ulong FrameBytes;
    public RegionCache Cache;
    public ulong LastSocket;   // a socket view a helper returned in this run (0: none)
}
