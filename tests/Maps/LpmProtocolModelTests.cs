using BpfJit.Runtime.Maps;

namespace BpfJit.Tests.Maps;

/// <summary>
/// The LPM_TRIE prefix index's reader/writer protocol, checked over every interleaving of one lookup's loads
/// with a writer's stores (issue 17 item 4).
/// <para>
/// The code is the code that runs: the map's own <c>Store</c>/<c>Remove</c> and <c>LookupElem</c>, generic
/// over <see cref="IIndexMemory"/>, which production instantiates with <see cref="DirectIndexMemory"/>. The
/// writer runs once over <see cref="RecordingMemory"/>, which logs every store it makes to memory a reader can
/// see (address, old and new value); a writer's behaviour does not depend on readers, so that log is the
/// writer's every possible execution. Then the lookup runs over <see cref="ScheduledMemory"/> once per
/// schedule: before each of its loads the scheduler applies some of the next logged stores, and a
/// depth-first search over those choices enumerates every interleaving (sequentially consistent: each load
/// sees the stores applied before it), up to interleavings in which every load returns the same value (see
/// <see cref="Scheduler.BeforeLoad"/>). Two writers cannot interleave: they serialise on the map's lock, so several writers are
/// one longer log (the scenarios run two operations back to back).
/// </para>
/// <para>
/// Negative controls, so the checker is shown to catch what it claims: the protocol before the fix (a probe
/// that trusts the slot's length; <see cref="OldLookup"/>, the old step function over today's layout) returns
/// a /32 for a key it does not cover in some interleaving; the production probe without the version check
/// (<see cref="LpmPrefixIndex.Longest{M}"/> alone) returns covering prefixes but, over two inserts, one that was
/// never the longest match (not linearizable).
/// </para>
/// </summary>
[TestFixture, NonParallelizable]
public unsafe class LpmProtocolModelTests
{
    readonly record struct LoggedStore(nint At, int Width, ulong Old, ulong New);

    /// <summary>The writer's log and the scheduler's state (static: the memory types' methods are static).</summary>
    static class Scheduler
    {
        public static readonly List<LoggedStore> Log = [];
        public static readonly List<(int Choice, int Max)> Decisions = [];
        public static int Applied, Point;

        public static void Write(nint at, int width, ulong value)
        {
            if (width == 8) *(ulong*)at = value;
            else *(uint*)at = (uint)value;
        }

        public static void Record(nint at, int width, ulong value)
        {
            ulong old = width == 8 ? *(ulong*)at : *(uint*)at;
            Log.Add(new LoggedStore(at, width, old, value));
            Write(at, width, value);
        }

        public static void UndoAll()
        {
            while (Applied > 0)
            {
                var s = Log[--Applied];
                Write(s.At, s.Width, s.Old);
            }
            Point = 0;
        }

        public static void ApplyNext()
        {
            var s = Log[Applied++];
            Write(s.At, s.Width, s.New);
        }

        /// <summary>
        /// A reader's load: first the writer's next stores, up to and including the chosen one of those that
        /// write the loaded bytes (choice 0: none). Stopping anywhere else gives the load a value one of these
        /// choices gives too, and the stores skipped can still come before any later load, so the choices
        /// reach every sequence of values the reader's loads can return (a load no remaining store writes is
        /// no choice point at all).
        /// </summary>
        public static void BeforeLoad(nint at, int width)
        {
            Span<int> writers = stackalloc int[Log.Count - Applied];
            int m = 0;
            for (int i = Applied; i < Log.Count; i++)
                if (Log[i].At < at + width && at < Log[i].At + Log[i].Width) writers[m++] = i;
            if (m == 0) return;
            int k = Point++;
            int choice;
            if (k < Decisions.Count) choice = Decisions[k].Choice;
            else
            {
                Decisions.Add((0, m));
                choice = 0;
            }
            if (choice > 0)
                while (Applied <= writers[choice - 1]) ApplyNext();
        }

        /// <summary>The next schedule in depth-first order, or false when all were run.</summary>
        public static bool Next()
        {
            while (Decisions.Count > 0 && Decisions[^1].Choice == Decisions[^1].Max) Decisions.RemoveAt(Decisions.Count - 1);
            if (Decisions.Count == 0) return false;
            Decisions[^1] = (Decisions[^1].Choice + 1, Decisions[^1].Max);
            return true;
        }
    }

    /// <summary>The writer's memory: direct loads, logged stores.</summary>
    struct RecordingMemory : IIndexMemory
    {
        public static ulong Load64(ulong* at) => *at;
        public static uint Load32(uint* at) => *at;
        public static void Store64(ulong* at, ulong value) => Scheduler.Record((nint)at, 8, value);
        public static void Store32(uint* at, uint value) => Scheduler.Record((nint)at, 4, value);
        public static void Bump(ulong* version) => Scheduler.Record((nint)version, 8, *version + 1);
        public static void ReadBarrier() { }
    }

    /// <summary>The reader's memory: every load is a point where the scheduler may run writer stores.</summary>
    struct ScheduledMemory : IIndexMemory
    {
        public static ulong Load64(ulong* at)
        {
            Scheduler.BeforeLoad((nint)at, 8);
            return *at;
        }

        public static uint Load32(uint* at)
        {
            Scheduler.BeforeLoad((nint)at, 4);
            return *at;
        }

        public static void Store64(ulong* at, ulong value) => throw new InvalidOperationException("readers do not store");
        public static void Store32(uint* at, uint value) => throw new InvalidOperationException("readers do not store");
        public static void Bump(ulong* version) => throw new InvalidOperationException("readers do not store");
        public static void ReadBarrier() { }
    }

    static uint Ip(byte a, byte b, byte c, byte d) => (uint)(a << 24 | b << 16 | c << 8 | d);

    /// <summary>An IPv4 LPM key in native memory: prefix length, then the address in network order.</summary>
    static byte* NewKey(int length, uint address)
    {
        byte* key = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc(8);
        *(uint*)key = (uint)length;
        key[4] = (byte)(address >> 24); key[5] = (byte)(address >> 16); key[6] = (byte)(address >> 8); key[7] = (byte)address;
        return key;
    }

    static int Update(LpmTrieMap map, int length, uint address)
    {
        byte* key = NewKey(length, address);
        ulong value = (ulong)(uint)length | (ulong)address << 32;
        int r = map.Store<DirectIndexMemory>(key, (byte*)&value, 0);
        System.Runtime.InteropServices.NativeMemory.Free(key);
        return r;
    }

    /// <summary>A writer operation: insert (or delete) a prefix, its index stores logged.</summary>
    readonly record struct Op(bool Insert, int Length, uint Address);

    static void Record(LpmTrieMap map, Op op)
    {
        byte* key = NewKey(op.Length, op.Address);
        ulong value = (ulong)(uint)op.Length | (ulong)op.Address << 32;
        int r = op.Insert ? map.Store<RecordingMemory>(key, (byte*)&value, 0) : map.Remove<RecordingMemory>(key);
        System.Runtime.InteropServices.NativeMemory.Free(key);
        Assert.That(r, Is.EqualTo(0), $"{op}");
    }

    /// <summary>The longest prefix of <paramref name="address"/> among <paramref name="entries"/>, as the value stores it.</summary>
    static ulong Longest(IEnumerable<(int Length, uint Address)> entries, uint address)
    {
        (int Length, uint Address) best = entries.Where(e => e.Length == 0 || ((e.Address ^ address) >> (32 - e.Length)) == 0).OrderByDescending(e => e.Length).FirstOrDefault((-1, 0u));
        return best.Length < 0 ? ulong.MaxValue : (ulong)(uint)best.Length | (ulong)best.Address << 32;
    }

    /// <summary>The lookup before the fix: its probe trusted the slot's tag and length (the slot's length is still written).</summary>
    static ulong OldLookup(LpmTrieMap map, byte* key)
    {
        ref var index = ref map.Index;
        uint keyPrefix = *(uint*)key;
        ulong word = *(uint*)(key + 4);   // the key's data as the index pads it: one little-endian word
        int* lengths = (int*)ScheduledMemory.Load64((ulong*)(index.Root + LpmPrefixIndex.LengthsAt));
        byte* table = (byte*)ScheduledMemory.Load64((ulong*)(index.Root + LpmPrefixIndex.TableAt));
        ulong mask = *(ulong*)table;
        for (int n = 0; n < *lengths; n++)
        {
            uint length = ((uint*)(lengths + 1))[n];
            if (length > keyPrefix) continue;
            ulong h = index.Hash(&word, length);
            uint tag = (uint)(h >> 32);
            ulong bit = tag & (mask * LpmPrefixIndex.FilterBitsPerSlot + LpmPrefixIndex.FilterBitsPerSlot - 1);
            if ((ScheduledMemory.Load64(LpmPrefixIndex.FilterOf(table, mask) + (bit >> 6)) & (1UL << (int)(bit & 63))) == 0) continue;
            for (ulong i = h & mask; ; i = (i + 1) & mask)
            {
                byte* slot = table + LpmPrefixIndex.HeaderBytes + i * LpmPrefixIndex.SlotBytes;
                byte* node = (byte*)ScheduledMemory.Load64((ulong*)slot);
                if (node == null) break;
                if (node != (byte*)LpmPrefixIndex.Tombstone && ScheduledMemory.Load32((uint*)(slot + 8)) == tag
                    && ScheduledMemory.Load32((uint*)(slot + 12)) == length && LpmPrefixIndex.SameHead(index.DataOf(node), &word, length))
                    return (ulong)(node + 32);   // the value of an 8-byte key's node: after 24 bytes of header and 8 of data
            }
        }
        return 0;
    }

    enum Reader { Production, ProbeWithoutVersion, OldProtocol }

    /// <summary>
    /// Runs <paramref name="reader"/>'s lookup of <paramref name="address"/>/32 under every interleaving with the
    /// logged operations <paramref name="ops"/> (already recorded; the memory is in the final state) and returns
    /// the number of schedules and the first result that was not the longest match of a state between two
    /// operations (<paramref name="states"/>), or that does not cover the key.
    /// </summary>
    static (int Schedules, string? FirstBad, string? FirstUncovering, int Overtaken) Explore(LpmTrieMap map, Reader reader, uint address, List<HashSet<(int Length, uint Address)>> states)
    {
        var allowed = states.Select(s => Longest(s, address)).ToHashSet();
        byte* key = NewKey(32, address);
        int schedules = 0, overtaken = 0;
        string? bad = null, uncovering = null;
        Scheduler.Decisions.Clear();
        Scheduler.Applied = Scheduler.Log.Count;
        do
        {
            Scheduler.UndoAll();
            long overtakenBefore = map.OvertakenLookups;
            ulong p = reader switch
            {
                Reader.Production => map.LookupElem<ScheduledMemory>((ulong)key),
                Reader.ProbeWithoutVersion => ProbeOnly(map, key),
                _ => OldLookup(map, key),
            };
            while (Scheduler.Applied < Scheduler.Log.Count) Scheduler.ApplyNext();
            schedules++;
            ulong got = p == 0 ? ulong.MaxValue : *(ulong*)p;
            string Describe() => $"schedule [{string.Join(",", Scheduler.Decisions.Select(d => d.Choice))}] returned "
                + (got == ulong.MaxValue ? "nothing" : $"{(uint)(got >> 32) >> 24}.{(byte)(got >> 48)}.{(byte)(got >> 40)}.{(byte)(got >> 32)}/{(uint)got}");
            // A lookup overtaken MaxReadAttempts times keeps a covering answer that no state may have had as its
            // longest (documented, and counted): only the covering check applies to it.
            if (map.OvertakenLookups != overtakenBefore) overtaken++;
            else if (!allowed.Contains(got)) bad ??= Describe();
            int length = (int)(uint)got;
            if (got != ulong.MaxValue && length != 0 && (((uint)(got >> 32) ^ address) >> (32 - length)) != 0) uncovering ??= Describe();
        }
        while (Scheduler.Next());
        System.Runtime.InteropServices.NativeMemory.Free(key);
        return (schedules, bad, uncovering, overtaken);
    }

    static ulong ProbeOnly(LpmTrieMap map, byte* key)
    {
        ulong word = *(uint*)(key + 4);
        byte* n = map.Index.Longest<ScheduledMemory>(&word, *(uint*)key);
        return n == null ? 0 : (ulong)(n + 32);
    }

    /// <summary>
    /// A map holding <paramref name="initial"/>, then <paramref name="ops"/> recorded; null when
    /// <paramref name="accept"/> rejects the recorded run (the test looks for a particular slot placement).
    /// </summary>
    static LpmTrieMap? Build((int Length, uint Address)[] initial, Op[] ops, out List<HashSet<(int Length, uint Address)>> states,
        Func<LpmTrieMap, bool>? accept = null, (int Length, uint Address)[]? insertedAndDeleted = null)
    {
        var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 8, 8, 64, MapFlags.NoPrealloc, "model");
        foreach (var (l, a) in insertedAndDeleted ?? [])
        {
            Assert.That(Update(map, l, a), Is.EqualTo(0));
            byte* k = NewKey(l, a);
            Assert.That(map.Remove<DirectIndexMemory>(k), Is.EqualTo(0));
            System.Runtime.InteropServices.NativeMemory.Free(k);
        }
        foreach (var (l, a) in initial) Assert.That(Update(map, l, a), Is.EqualTo(0));
        var state = initial.ToHashSet();
        states = [[.. state]];
        Scheduler.Log.Clear();
        foreach (var op in ops)
        {
            Record(map, op);
            if (op.Insert) state.Add((op.Length, op.Address));
            else state.Remove((op.Length, op.Address));
            states.Add([.. state]);
        }
        if (accept == null || accept(map)) return map;
        map.Dispose();
        return null;
    }

    /// <summary>True when the logged writer stored a node into the slot it had tombstoned.</summary>
    static bool ReusesTombstone(LpmTrieMap map)
    {
        byte* table = (byte*)*(ulong*)(map.Index.Root + LpmPrefixIndex.TableAt);
        nint first = (nint)(table + LpmPrefixIndex.HeaderBytes), end = first + (nint)((*(ulong*)table + 1) * LpmPrefixIndex.SlotBytes);
        bool IsSlot(LoggedStore s) => s.Width == 8 && s.At >= first && s.At < end && (s.At - first) % LpmPrefixIndex.SlotBytes == 0;
        var log = Scheduler.Log;
        int tomb = log.FindIndex(s => IsSlot(s) && s.New == (ulong)LpmPrefixIndex.Tombstone);
        return tomb >= 0 && log.Skip(tomb + 1).Any(s => s.At == log[tomb].At && s.New > 1);
    }

    /// <summary>
    /// Delete a /32 and insert the key's /24 into the /32's tombstoned slot (the slot the reader's /24 probe
    /// passes; the /24 was stored and deleted before, so its filter bit is already set, as under churn): under
    /// every interleaving the production lookup returns the longest match of a state between the operations;
    /// the old protocol returns the /32 for a key it does not cover in at least one.
    /// </summary>
    [Test]
    public void TombstoneReuseNeverReturnsANonCoveringPrefix()
    {
        MapEpoch.Enter();   // nothing the writer retires is freed while schedules replay it
        try
        {
            uint key = Ip(10, 1, 2, 3);
            int scenarios = 0, oldCaught = 0, schedules = 0;
            for (int x = 4; x < 250 && scenarios < 3; x++)
            {
                // /8 always matches; 10.1.2.77/32 and 10.9.9.0/24 keep 32 and 24 in the length list.
                (int, uint)[] initial = [(8, Ip(10, 0, 0, 0)), (32, Ip(10, 1, 2, 77)), (24, Ip(10, 9, 9, 0)), (32, Ip(10, 1, 2, (byte)x))];
                Op[] ops = [new(false, 32, Ip(10, 1, 2, (byte)x)), new(true, 24, Ip(10, 1, 2, 0))];
                using var map = Build(initial, ops, out var states, ReusesTombstone, [(24, Ip(10, 1, 2, 0))]);
                if (map == null) continue;
                scenarios++;
                var production = Explore(map, Reader.Production, key, states);
                var probeOnly = Explore(map, Reader.ProbeWithoutVersion, key, states);
                var old = Explore(map, Reader.OldProtocol, key, states);
                schedules += production.Schedules;
                TestContext.Out.WriteLine($"10.1.2.{x}/32 -> 10.1.2.0/24: {production.Schedules} schedules (production), {probeOnly.Schedules} (probe alone), {old.Schedules} (old); old: {old.FirstUncovering ?? "no failure"}");
                Assert.That(production.FirstBad, Is.Null, "production lookup: not the longest match of any state");
                Assert.That(probeOnly.FirstUncovering, Is.Null, "a probe judged by the node itself returns covering prefixes only");
                if (old.FirstUncovering != null) oldCaught++;
            }
            Assert.That(scenarios, Is.EqualTo(3), "found /32s whose tombstone the /24 reuses");
            Assert.That(oldCaught, Is.EqualTo(scenarios), "negative control: the old protocol returns a non-covering /32 in every such scenario");
            Assert.That(schedules, Is.GreaterThan(100), "interleavings were enumerated");
        }
        finally
        {
            MapEpoch.Exit();
        }
    }

    /// <summary>
    /// Insert the key's /32, then its /24, during one lookup (which probes /32 before /24): the production
    /// lookup returns the longest match of one state between the operations under every interleaving (unless
    /// overtaken <see cref="LpmPrefixIndex.MaxReadAttempts"/> times: then a covering prefix, counted); the
    /// probe without the version check can miss the /32 (probed before its insert) and find the /24 (probed
    /// after its insert), an answer no state ever had.
    /// </summary>
    [Test]
    public void LookupsAreLinearizableAcrossOperations()
    {
        MapEpoch.Enter();
        try
        {
            uint key = Ip(10, 1, 2, 3);
            (int, uint)[] initial = [(8, Ip(10, 0, 0, 0)), (32, Ip(10, 1, 2, 77)), (24, Ip(10, 9, 9, 0))];
            Op[] ops = [new(true, 32, key), new(true, 24, Ip(10, 1, 2, 0)), new(false, 32, Ip(10, 1, 2, 77))];
            using var map = Build(initial, ops, out var states)!;
            var production = Explore(map, Reader.Production, key, states);
            var probeOnly = Explore(map, Reader.ProbeWithoutVersion, key, states);
            TestContext.Out.WriteLine($"{production.Schedules} schedules (production, {production.Overtaken} overtaken {LpmPrefixIndex.MaxReadAttempts} times), {probeOnly.Schedules} (probe alone): {probeOnly.FirstBad ?? "no failure"}");
            Assert.Multiple(() =>
            {
                Assert.That(production.FirstBad, Is.Null, "production lookup: not the longest match of any state");
                Assert.That(production.FirstUncovering, Is.Null);
                Assert.That(probeOnly.FirstUncovering, Is.Null, "covering without the version check too");
                Assert.That(probeOnly.FirstBad, Is.Not.Null, "negative control: without the version check a lookup returns a prefix no state had as its longest");
                Assert.That(production.Schedules, Is.GreaterThan(100), "interleavings were enumerated");
            });
        }
        finally
        {
            MapEpoch.Exit();
        }
    }

    /// <summary>
    /// The binary search over markers (six lengths): insert the key's /16 (the marker at /20 on a /32's path
    /// changes its best prefix from /8 to it), the key's /32 (the marker is referenced again), a /28 (a new
    /// length: the table is rebuilt for the new search tree and published whole), then delete the /16 (the
    /// marker's best prefix goes back): under every interleaving the production lookup returns the longest
    /// match of one state between the operations (or, overtaken, a covering prefix), and the probe without the
    /// version check returns covering prefixes only.
    /// </summary>
    [Test]
    public void MarkerSearchIsLinearizableAcrossOperations()
    {
        MapEpoch.Enter();
        try
        {
            uint key = Ip(10, 1, 2, 3);
            (int, uint)[] initial = [(8, Ip(10, 0, 0, 0)), (12, Ip(11, 0, 0, 0)), (16, Ip(10, 9, 0, 0)), (20, Ip(12, 0, 0, 0)),
                (24, Ip(10, 9, 9, 0)), (32, Ip(10, 1, 2, 77))];
            Op[] ops = [new(true, 16, Ip(10, 1, 0, 0)), new(true, 32, key), new(true, 28, Ip(10, 1, 2, 0)), new(false, 16, Ip(10, 1, 0, 0))];
            using var map = Build(initial, ops, out var states)!;
            Assert.That(map.IndexMarkers, Is.GreaterThan(0), "the lengths are searched in binary");
            var production = Explore(map, Reader.Production, key, states);
            var probeOnly = Explore(map, Reader.ProbeWithoutVersion, key, states);
            TestContext.Out.WriteLine($"{production.Schedules} schedules (production, {production.Overtaken} overtaken), {probeOnly.Schedules} (probe alone): {probeOnly.FirstBad ?? "no failure"}");
            Assert.Multiple(() =>
            {
                Assert.That(production.FirstBad, Is.Null, "production lookup: not the longest match of any state");
                Assert.That(production.FirstUncovering, Is.Null);
                Assert.That(probeOnly.FirstUncovering, Is.Null, "a marker's best prefix covers the key: covering without the version check too");
                Assert.That(production.Schedules, Is.GreaterThan(100), "interleavings were enumerated");
            });
        }
        finally
        {
            MapEpoch.Exit();
        }
    }
}
