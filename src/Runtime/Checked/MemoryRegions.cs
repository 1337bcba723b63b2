using System.Collections.Concurrent;
using BpfJit.Frontend;
using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime.Checked;

/// <summary>The kind of memory access checked mode guards.</summary>
public enum MemoryAccess
{
    /// <summary>LDX (and the sign-extending MEMSX forms).</summary>
    Load,
    /// <summary>ST and STX.</summary>
    Store,
    /// <summary>STX | ATOMIC.</summary>
    Atomic,
}

/// <summary>What a region of memory a program may touch holds.</summary>
public enum MemoryRegionKind
{
    /// <summary>A program context block (the 72-byte <c>bpf_sk_lookup</c>, or a test's input memory).</summary>
    Context,
    /// <summary>The eBPF stack of a running checked-mode program (all its frames).</summary>
    Stack,
    /// <summary>One live value of a map.</summary>
    MapValue,
    /// <summary>The 80-byte <c>bpf_sock</c> view of an open socket.</summary>
    Socket,
    /// <summary>A ring-buffer record reserved and not yet submitted or discarded.</summary>
    RingBufRecord,
}

/// <summary>
/// The registry checked mode consults (docs/reliability.md). Fixed blocks — context blocks and
/// socket views — are registered by their owners when allocated and removed when freed (one
/// dictionary write each, never per lookup); map values and ring-buffer records are found by asking
/// the live maps, which already know their layout; stacks are announced by each checked-mode method
/// as it starts. Nothing here runs for a program compiled without checked mode.
/// </summary>
public static class MemoryRegions
{
    static readonly ConcurrentDictionary<ulong, (int Length, MemoryRegionKind Kind)> s_blocks = new();

    /// <summary>Checked-mode stacks started on this thread, outermost first (a callback may touch its caller's stack).</summary>
    [ThreadStatic] static List<(ulong Start, int Length)>? t_stacks;

    /// <summary>Registers a fixed block of <paramref name="length"/> bytes at <paramref name="start"/>.</summary>
    public static void Register(ulong start, int length, MemoryRegionKind kind)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        s_blocks[start] = (length, kind);
    }

    /// <summary>Removes the block registered at <paramref name="start"/>.</summary>
    public static void Unregister(ulong start) => s_blocks.TryRemove(start, out _);

    /// <summary>
    /// Announces the stack block of a checked-mode method starting on this thread (length 0 when it has
    /// none). A program starting forgets every earlier block: nothing of an earlier program is reachable.
    /// A callback (of bpf_loop, bpf_for_each_map_elem) keeps the blocks of the methods that called it,
    /// which lie above it since the native stack grows down; blocks at or below it were left by
    /// callbacks that have returned.
    /// </summary>
    public static void EnterStack(ulong start, int length, bool callback)
    {
        var stacks = t_stacks ??= [];
        if (callback) stacks.RemoveAll(s => s.Start <= start);
        else stacks.Clear();
        if (length > 0) stacks.Add((start, length));
    }

    /// <summary>
    /// Throws <see cref="BpfCheckedModeException"/> unless [<paramref name="address"/>, +<paramref name="size"/>)
    /// lies inside one region: the caller's stack block, a stack of a checked method still running on
    /// this thread, a registered block, or a live map value or ring-buffer record.
    /// </summary>
    public static void Check(ulong address, int size, ulong stackStart, int stackLength, Instruction[]? program, int index, MemoryAccess access)
    {
        if (Inside(address, size, stackStart, stackLength)) return;
        if (Find(address, size, out string nearest)) return;
        string text = program != null && index >= 0 && index < program.Length ? Disassembler.Format(program, index) : "";
        throw new BpfCheckedModeException(index, text, access.ToString().ToLowerInvariant(), address, size, nearest);
    }

    /// <summary>
    /// Checked mode's test for an access the verifier proved goes to a value of one map: [<paramref name="address"/>,
    /// +<paramref name="size"/>) must lie inside a live value (or a retired one still readable) of the map whose handle
    /// is <paramref name="mapHandle"/>; any other memory, even another map's value, raises <see cref="BpfCheckedModeException"/>.
    /// </summary>
    public static void CheckMapValue(ulong address, int size, ulong mapHandle, Instruction[]? program, int index, MemoryAccess access)
    {
        var map = BpfMap.FromHandle(mapHandle);
        if (map.FindValue(address, out ulong start, out int length) && Inside(address, size, start, length)) return;
        Find(address, size, out string nearest);
        string text = program != null && index >= 0 && index < program.Length ? Disassembler.Format(program, index) : "";
        string expected = $"the verifier proved a value of {map.Type} map '{map.Name}'";
        throw new BpfCheckedModeException(index, text, access.ToString().ToLowerInvariant(), address, size,
            nearest.Length == 0 ? $"{expected}, but it is other memory" : $"{expected}; {nearest}");
    }

    /// <summary>True when [<paramref name="address"/>, +<paramref name="size"/>) lies inside a registered block, a live map value or record, or a running stack.</summary>
    public static bool Contains(ulong address, int size) => Find(address, size, out _);

    static bool Inside(ulong address, int size, ulong start, int length) =>
        length > 0 && address >= start && address - start <= (ulong)length && (ulong)size <= (ulong)length - (address - start);

    static bool Find(ulong address, int size, out string nearest)
    {
        var best = new Nearest(address);
        if (t_stacks is { } stacks)
            foreach (var (start, length) in stacks)
            {
                if (Inside(address, size, start, length)) { nearest = ""; return true; }
                best.Consider(start, length, "stack");
            }
        foreach (var (start, block) in s_blocks)
        {
            if (Inside(address, size, start, block.Length)) { nearest = ""; return true; }
            best.Consider(start, block.Length, block.Kind switch
            {
                MemoryRegionKind.Context => "context",
                MemoryRegionKind.Socket => "socket view",
                _ => block.Kind.ToString(),
            });
        }
        foreach (var map in BpfMap.LiveMaps())
        {
            if (!map.FindValue(address, out ulong start, out int length)) continue;
            string what = map.Type == MapType.RingBuf ? $"reserved record of ringbuf '{map.Name}'" : $"value of {map.Type} map '{map.Name}'";
            if (Inside(address, size, start, length)) { nearest = ""; return true; }
            best.Consider(start, length, what);
        }
        nearest = best.Describe();
        return false;
    }

    /// <summary>The region closest to an address, for the error message.</summary>
    struct Nearest(ulong address)
    {
        ulong _distance = ulong.MaxValue;
        string? _text;

        public void Consider(ulong start, int length, string what)
        {
            ulong end = start + (ulong)length;
            ulong distance;
            string where;
            if (address < start) { distance = start - address; where = $"{distance} byte(s) before it"; }
            else if (address >= end) { distance = address - end; where = $"{distance} byte(s) past its end"; }
            else { distance = 0; where = $"the access starts at +{address - start} and runs past its end"; }
            if (distance >= _distance) return;
            _distance = distance;
            _text = $"nearest region: {what} [0x{start:x}, +{length}), {where}";
        }

        public readonly string Describe() => _text ?? "no region is registered";
    }
}
