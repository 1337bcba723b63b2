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
    /// <summary>The packet bytes an SK_REUSEPORT context's <c>data</c> points into.</summary>
    Packet,
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
    static readonly ConcurrentDictionary<ulong, RegionBlock> s_blocks = new();

    /// <summary>Checked-mode stacks started on this thread, outermost first (a callback may touch its caller's stack).</summary>
    [ThreadStatic] static List<(ulong Start, int Length)>? t_stacks;

    /// <summary>Bumped whenever a block is removed: a cached hit on a block is good while it is unchanged.</summary>
    static int s_generation;

    /// <summary>The fixed block this thread last found (its generation, start and length): the hook's context block, mostly.</summary>
    [ThreadStatic] static (int Generation, ulong Start, int Length) t_lastBlock;

    /// <summary>Registers a fixed block of <paramref name="length"/> bytes at <paramref name="start"/>.</summary>
    public static void Register(ulong start, int length, MemoryRegionKind kind)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        var block = new RegionBlock(start, length, kind);
        s_blocks.AddOrUpdate(start, block, (_, old) =>
        {
            // The block registered here before is gone: whoever remembered it must look again.
            old.Removed = true;
            Interlocked.Increment(ref s_generation);
            return block;
        });
    }

    /// <summary>Removes the block registered at <paramref name="start"/>.</summary>
    public static void Unregister(ulong start)
    {
        if (!s_blocks.TryRemove(start, out var block)) return;
        block.Removed = true;
        Interlocked.Increment(ref s_generation);
    }

    /// <summary>The fixed block registered at exactly <paramref name="start"/>, or null.</summary>
    internal static RegionBlock? BlockAt(ulong start) => s_blocks.TryGetValue(start, out var block) ? block : null;

    /// <summary>The block this thread last confirmed with <see cref="IsBlockStart"/> (a program passes the same socket again and again).</summary>
    [ThreadStatic] static (int Generation, ulong Start, MemoryRegionKind Kind) t_lastStart;

    /// <summary>True when a block of <paramref name="kind"/> is registered at exactly <paramref name="start"/> (a context or socket pointer as helpers take it).</summary>
    public static bool IsBlockStart(ulong start, MemoryRegionKind kind)
    {
        int generation = Volatile.Read(ref s_generation);
        var last = t_lastStart;
        if (last.Start == start && last.Kind == kind && last.Generation == generation && start != 0) return true;
        if (!s_blocks.TryGetValue(start, out var block) || block.Kind != kind) return false;
        t_lastStart = (generation, start, kind);
        return true;
    }

    /// <summary>
    /// The region holding all of [<paramref name="address"/>, +<paramref name="size"/>): a running stack of this
    /// thread, a registered block, a live map value or a reserved ring-buffer record. The interpreter's slow path
    /// (after its own stack and cache missed); it caches the fixed block it finds per thread, so the context
    /// block of the hook costs a dictionary walk once per thread, not once per run.
    /// </summary>
    public static bool TryFind(ulong address, int size, out ulong start, out int length) => TryFind(address, size, true, out start, out length);

    /// <summary><see cref="TryFind(ulong, int, out ulong, out int)"/>, looking at this thread's running stacks only when <paramref name="stacks"/>.</summary>
    internal static bool TryFind(ulong address, int size, bool stacks, out ulong start, out int length)
    {
        var last = t_lastBlock;
        if (last.Length > 0 && last.Generation == Volatile.Read(ref s_generation) && Inside(address, size, last.Start, last.Length))
        {
            (start, length) = (last.Start, last.Length);
            return true;
        }
        int generation = Volatile.Read(ref s_generation);
        if (!Find(address, size, stacks, out _, out start, out length, out bool fixedBlock)) return false;
        if (fixedBlock) t_lastBlock = (generation, start, length);
        return true;
    }

    /// <summary>The memory fault of instruction <paramref name="index"/>: [<paramref name="address"/>, +<paramref name="size"/>) is in no region.</summary>
    public static BpfCheckedModeException Fault(ulong address, int size, Instruction[]? program, int index, MemoryAccess access) =>
        Fault(address, size, true, program, index, access);

    /// <summary><see cref="Fault(ulong, int, Instruction[], int, MemoryAccess)"/>, naming a running stack as the nearest region only when <paramref name="stacks"/>.</summary>
    internal static BpfCheckedModeException Fault(ulong address, int size, bool stacks, Instruction[]? program, int index, MemoryAccess access)
    {
        Find(address, size, stacks, out string nearest, out _, out _, out _);
        return new BpfCheckedModeException(index, BpfFaultException.Describe(program, index), access.ToString().ToLowerInvariant(), address, size, nearest);
    }

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

    /// <summary>Regions lent to a callback for the duration of its call (the key bpf_for_each_map_elem passes), innermost last.</summary>
    [ThreadStatic] static List<(ulong Start, int Length)>? t_lent;

    /// <summary>
    /// Lends [<paramref name="start"/>, +<paramref name="length"/>) to the callback about to run on this thread (the
    /// key bpf_for_each_map_elem hands it, which no map lists as a value) until <see cref="EndLend"/>.
    /// </summary>
    public static void Lend(ulong start, int length)
    {
        if (length > 0) (t_lent ??= []).Add((start, length));
    }

    /// <summary>Ends the latest <see cref="Lend"/>.</summary>
    public static void EndLend()
    {
        if (t_lent is { Count: > 0 } lent) lent.RemoveAt(lent.Count - 1);
    }

    /// <summary>A callback method returning: its stack block (and any below it) is no longer a region.</summary>
    public static void ExitStack(ulong start) => t_stacks?.RemoveAll(s => s.Start <= start);

    /// <summary>
    /// Throws <see cref="BpfCheckedModeException"/> unless [<paramref name="address"/>, +<paramref name="size"/>)
    /// lies inside one region: the caller's stack block, a stack of a checked method still running on
    /// this thread, a registered block, or a live map value or ring-buffer record.
    /// </summary>
    public static void Check(ulong address, int size, ulong stackStart, int stackLength, Instruction[]? program, int index, MemoryAccess access)
    {
        if (Inside(address, size, stackStart, stackLength)) return;
        if (Find(address, size, true, out string nearest, out _, out _, out _)) return;
        throw new BpfCheckedModeException(index, BpfFaultException.Describe(program, index), access.ToString().ToLowerInvariant(), address, size, nearest);
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
        Find(address, size, true, out string nearest, out _, out _, out _);
        string text = BpfFaultException.Describe(program, index);
        string expected = $"the verifier proved a value of {map.Type} map '{map.Name}'";
        throw new BpfCheckedModeException(index, text, access.ToString().ToLowerInvariant(), address, size,
            nearest.Length == 0 ? $"{expected}, but it is other memory" : $"{expected}; {nearest}");
    }

    /// <summary>True when [<paramref name="address"/>, +<paramref name="size"/>) lies inside a registered block, a live map value or record, or a running stack.</summary>
    public static bool Contains(ulong address, int size) => TryFind(address, size, out _, out _);

    /// <summary>
    /// True when [<paramref name="address"/>, +<paramref name="size"/>) lies inside memory a helper may write for the program:
    /// a running stack of this thread, a live map value or a reserved ring-buffer record. Never a registered block (a context,
    /// a socket view, a packet: the host reads them back and trusts what it finds) nor a key lent to a callback.
    /// </summary>
    public static bool ContainsWritable(ulong address, int size)
    {
        if (t_stacks is { } stacks)
            foreach (var (s, l) in stacks)
                if (Inside(address, size, s, l)) return true;
        foreach (var map in BpfMap.LiveMaps())
            if (map.FindValue(address, out ulong s, out int l) && Inside(address, size, s, l)) return true;
        return false;
    }

    static bool Inside(ulong address, int size, ulong start, int length) =>
        length > 0 && address >= start && address - start <= (ulong)length && (ulong)size <= (ulong)length - (address - start);

    static bool Find(ulong address, int size, bool withStacks, out string nearest, out ulong start, out int length, out bool fixedBlock)
    {
        var best = new Nearest(address);
        fixedBlock = false;
        if (withStacks && t_stacks is { } stacks)
            foreach (var (s, l) in stacks)
            {
                if (Inside(address, size, s, l)) return Hit(s, l, out nearest, out start, out length);
                best.Consider(s, l, MemoryRegionKind.Stack, null);
            }
        if (t_lent is { } lent)
            foreach (var (s, l) in lent)
            {
                if (Inside(address, size, s, l)) return Hit(s, l, out nearest, out start, out length);
                best.Consider(s, l, MemoryRegionKind.MapValue, null);
            }
        foreach (var (s, block) in s_blocks)
        {
            if (block.Removed) continue;
            if (Inside(address, size, s, block.Length))
            {
                fixedBlock = true;
                return Hit(s, block.Length, out nearest, out start, out length);
            }
            best.Consider(s, block.Length, block.Kind, null);
        }
        foreach (var map in BpfMap.LiveMaps())
        {
            if (!map.FindValue(address, out ulong s, out int l)) continue;
            if (Inside(address, size, s, l)) return Hit(s, l, out nearest, out start, out length);
            best.Consider(s, l, MemoryRegionKind.MapValue, map);
        }
        nearest = best.Describe();
        (start, length) = (0, 0);
        return false;
    }

    static bool Hit(ulong s, int l, out string nearest, out ulong start, out int length)
    {
        nearest = "";
        (start, length) = (s, l);
        return true;
    }

    /// <summary>The region closest to an address, for the error message (described only when a fault needs it).</summary>
    struct Nearest(ulong address)
    {
        ulong _distance = ulong.MaxValue, _start;
        int _length;
        MemoryRegionKind _kind;
        BpfMap? _map;

        public void Consider(ulong start, int length, MemoryRegionKind kind, BpfMap? map)
        {
            ulong end = start + (ulong)length;
            ulong distance = address < start ? start - address : address >= end ? address - end : 0;
            if (distance >= _distance) return;
            (_distance, _start, _length, _kind, _map) = (distance, start, length, kind, map);
        }

        public readonly string Describe()
        {
            if (_distance == ulong.MaxValue) return "no region is registered";
            string what = _map is { } map
                ? map.Type == MapType.RingBuf ? $"reserved record of ringbuf '{map.Name}'" : $"value of {map.Type} map '{map.Name}'"
                : _kind switch
                {
                    MemoryRegionKind.Context => "context",
                    MemoryRegionKind.Socket => "socket view",
                    MemoryRegionKind.Stack => "stack",
                    MemoryRegionKind.Packet => "packet",
                    _ => _kind.ToString(),
                };
            ulong end = _start + (ulong)_length;
            string where = address < _start ? $"{_start - address} byte(s) before it"
                : address >= end ? $"{address - end} byte(s) past its end"
                : $"the access starts at +{address - _start} and runs past its end";
            return $"nearest region: {what} [0x{_start:x}, +{_length}), {where}";
        }
    }
}

/// <summary>
/// A fixed block of <see cref="MemoryRegions"/> (a context block, a socket view): one object per registration, so that a
/// reader may remember it (the interpreter remembers the block its runs' r1 points to) and later ask, with one read,
/// whether it is still registered.
/// </summary>
internal sealed class RegionBlock(ulong start, int length, MemoryRegionKind kind)
{
    /// <summary>The block's first byte.</summary>
    public ulong Start { get; } = start;

    /// <summary>Its length in bytes.</summary>
    public int Length { get; } = length;

    /// <summary>What it holds.</summary>
    public MemoryRegionKind Kind { get; } = kind;

    /// <summary>True once the block was unregistered (or registered anew at the same address): it may no longer be touched.</summary>
    public bool Removed { get => Volatile.Read(ref _removed); set => Volatile.Write(ref _removed, value); }

    bool _removed;
}
