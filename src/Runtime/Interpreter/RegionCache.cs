using System.Runtime.CompilerServices;

namespace BpfJit.Runtime;

/// <summary>
/// The interpreter's per-run memory of regions it has seen (a context block, map values, sockets, records):
/// four entries, replaced round-robin, so the registry is asked once per region and run, not once per access.
/// An entry is only ever a region the registry or a helper's typed result vouched for during this run.
/// </summary>
internal struct RegionCache
{
    Four<ulong> _start;
    Four<long> _length;
    int _next;

    [InlineArray(4)]
    struct Four<T>
    {
        T _element;
    }

    /// <summary>True when [<paramref name="address"/>, +<paramref name="size"/>) lies inside one entry.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool Hit(ulong address, int size) =>
        In(address, size, _start[0], _length[0]) || In(address, size, _start[1], _length[1])
        || In(address, size, _start[2], _length[2]) || In(address, size, _start[3], _length[3]);

    /// <summary>The entry holding [<paramref name="address"/>, +<paramref name="size"/>), if any.</summary>
    public readonly bool Find(ulong address, int size, out ulong start, out long length)
    {
        if (In(address, size, _start[0], _length[0])) { (start, length) = (_start[0], _length[0]); return true; }
        if (In(address, size, _start[1], _length[1])) { (start, length) = (_start[1], _length[1]); return true; }
        if (In(address, size, _start[2], _length[2])) { (start, length) = (_start[2], _length[2]); return true; }
        if (In(address, size, _start[3], _length[3])) { (start, length) = (_start[3], _length[3]); return true; }
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

    /// <summary>Empties the cache: an entry of length 0 holds nothing (<see cref="In"/>), whatever its start.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Clear()
    {
        _length[0] = 0;
        _length[1] = 0;
        _length[2] = 0;
        _length[3] = 0;
        _next = 0;
    }

    /// <summary>
    /// Remembers [<paramref name="start"/>, +<paramref name="length"/>) in an empty cache as its first entry. Unlike
    /// <see cref="Add"/> it reads nothing: at a run's start the cache was just cleared (<see cref="Clear"/>), and a load
    /// right after a store to the same place waits for it, on every run.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Seed(ulong start, int length)
    {
        (_start[0], _length[0]) = (start, length);
        _next = 1;
    }

    /// <summary>Remembers the region [<paramref name="start"/>, +<paramref name="length"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(ulong start, int length)
    {
        // Indexed rather than a switch: a switch here is an indirect jump the call sites' mix keeps mispredicting.
        int slot = _next++ & 3;
        _start[slot] = start;
        _length[slot] = length;
    }
}

/// <summary>What the interpreter's access checks read: where its stack block starts, how many bytes of frames are in use, the last region touched, the cache.</summary>
internal unsafe struct RunState : Checked.HelperArguments.IRegionProbe
{
    /// <summary>For helper arguments: the whole stack block (a helper may be handed any of it), then the cache.</summary>
    public readonly bool Holds(ulong address, int size) =>
        HoldsStack(address, size) || Cache.Hit(address, size);

    /// <summary>For a helper's written argument: the whole stack block only (the cache may hold a context or socket view).</summary>
    public readonly bool HoldsStack(ulong address, int size) => size <= StackBlock && address - StackStart <= (ulong)(StackBlock - size);

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
    public int Depth;          // frames in use minus one
    public ulong* Saved;       // per frame: the caller's r6-r9 and return slot
    public int* Loops;         // per frame: may_goto's remaining budget

    /// <summary>Makes [<paramref name="start"/>, +<paramref name="length"/>) the last region; one shorter than 8 bytes stays in the cache only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetLast(ulong start, long length)
    {
        if (length < 8) return;
        (LastStart, LastLength) = (start, (ulong)length);
    }
}

/// <summary>
/// A run's memory, a local of <c>Execute</c>'s frame: the stack frames (<see cref="Interpreter.StackSize"/> bytes each, the
/// only part a program may touch), then r0-r10, then per frame the caller's r6-r9 and return slot (a bpf-to-bpf call
/// saves them) and may_goto's loop budget (the kernel keeps it in a hidden slot of each frame that uses may_goto and
/// sets it when the frame is entered, so a call starts a fresh budget). Only its size is declared: the parts are
/// reached by offset from the first 64-byte boundary in it (64 bytes to spare for that).
/// </summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Size = Loops + 4 * Interpreter.MaxFrames + 64)]
internal struct RunMemory
{
    /// <summary>Offset of r0-r10.</summary>
    public const int Registers = Interpreter.StackSize * Interpreter.MaxFrames;

    /// <summary>Offset of the saved caller state, five words per frame.</summary>
    public const int Saved = Registers + 8 * 11;

    /// <summary>Offset of the loop budgets, one int per frame.</summary>
    public const int Loops = Saved + 8 * 5 * Interpreter.MaxFrames;

    // Sets the struct's alignment: the frames start 8-byte aligned, as the kernel's stack does.
    readonly long _first;
}
