using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;
using BpfJit.Verifier;
using MapFlags = BpfJit.Runtime.Maps.MapFlags;

namespace BpfJit.Tests.Maps;

/// <summary>
/// ARRAY_OF_MAPS and HASH_OF_MAPS: creation and userspace operations give the kernel's errnos (one script run
/// on BpfJit and on the live kernel), stored maps live while they are stored, and both engines reach the inner
/// map a lookup returns at run time (the JIT does not specialise calls on it).
/// </summary>
[TestFixture]
public class MapOfMapsTests
{
    const int Bad = -1;

    /// <summary>One side of the comparison: maps by index, operations returning 0 or a negative errno.</summary>
    interface ISide : IDisposable
    {
        int Create(MapType type, int key, int value, int entries, uint flags = 0, int inner = Bad);
        int Update(int outer, uint key, int inner, ulong flags = 0);
        int Lookup(int outer, uint key);
        int Delete(int outer, uint key);
    }

    sealed class BpfJitSide : ISide
    {
        public readonly List<BpfMap> Maps = [];

        public int Create(MapType type, int key, int value, int entries, uint flags = 0, int inner = Bad)
        {
            try
            {
                Maps.Add(MapFactory.Create(new MapDefinition($"m{Maps.Count}", type, key, value, entries, flags, InnerMap: inner == Bad ? null : Maps[inner].Definition)));
                return Maps.Count - 1;
            }
            catch (MapCreateException e) { return -e.Errno; }
        }

        public int Update(int outer, uint key, int inner, ulong flags = 0) =>
            Maps[outer].Update(BitConverter.GetBytes(key), BitConverter.GetBytes(inner == Bad ? 0xfffffff0u : Maps[inner].Id), flags);

        public int Lookup(int outer, uint key)
        {
            var id = new byte[4];
            int err = Maps[outer].Lookup(BitConverter.GetBytes(key), id);
            // The value is the stored map's id, as the kernel's is.
            if (err == 0) Assert.That(Maps.Any(m => m.Id == BitConverter.ToUInt32(id)), $"lookup returned id {BitConverter.ToUInt32(id)}");
            return err;
        }

        public int Delete(int outer, uint key) => Maps[outer].Delete(BitConverter.GetBytes(key));

        public void Dispose()
        {
            foreach (var m in Maps) m.Dispose();
        }
    }

    sealed class KernelSide : ISide
    {
        readonly List<int> _fds = [];

        public int Create(MapType type, int key, int value, int entries, uint flags = 0, int inner = Bad)
        {
            int fd = KernelBpf.CreateMap((uint)type, key, value, entries, flags, inner == Bad ? -1 : _fds[inner]);
            if (fd < 0) return fd;
            _fds.Add(fd);
            return _fds.Count - 1;
        }

        public int Update(int outer, uint key, int inner, ulong flags = 0) =>
            KernelBpf.Update(_fds[outer], BitConverter.GetBytes(key), BitConverter.GetBytes(inner == Bad ? 100000 : _fds[inner]), flags);

        public int Lookup(int outer, uint key) => KernelBpf.Lookup(_fds[outer], BitConverter.GetBytes(key), new byte[4]);

        public int Delete(int outer, uint key) => KernelBpf.Delete(_fds[outer], BitConverter.GetBytes(key));

        public void Dispose()
        {
            foreach (var fd in _fds) KernelBpf.Close(fd);
        }
    }

    /// <summary>The script: each step's result, with what the kernel (6.18) answers.</summary>
    static IEnumerable<(string Step, int Result, int Expected)> Script(ISide s)
    {
        const int einval = -Errno.EINVAL, e2big = -Errno.E2BIG, enoent = -Errno.ENOENT;
        int a = s.Create(MapType.Array, 4, 4, 2);
        yield return ("ARRAY_OF_MAPS value_size 8", Math.Min(0, s.Create(MapType.ArrayOfMaps, 4, 8, 4, 0, a)), einval);
        yield return ("ARRAY_OF_MAPS key_size 8", Math.Min(0, s.Create(MapType.ArrayOfMaps, 8, 4, 4, 0, a)), einval);
        yield return ("HASH_OF_MAPS value_size 8", Math.Min(0, s.Create(MapType.HashOfMaps, 4, 8, 4, 0, a)), einval);
        yield return ("ARRAY_OF_MAPS max_entries 0", Math.Min(0, s.Create(MapType.ArrayOfMaps, 4, 4, 0, 0, a)), einval);
        yield return ("ARRAY_OF_MAPS BPF_F_MMAPABLE", Math.Min(0, s.Create(MapType.ArrayOfMaps, 4, 4, 4, MapFlags.Mmapable, a)), einval);
        yield return ("ARRAY_OF_MAPS BPF_F_RDONLY_PROG", Math.Min(0, s.Create(MapType.ArrayOfMaps, 4, 4, 4, MapFlags.ReadOnlyProg, a)), einval);
        yield return ("HASH_OF_MAPS BPF_F_RDONLY_PROG", Math.Min(0, s.Create(MapType.HashOfMaps, 4, 4, 4, MapFlags.ReadOnlyProg, a)), 0);
        yield return ("ARRAY_OF_MAPS without an inner map", Math.Min(0, s.Create(MapType.ArrayOfMaps, 4, 4, 4)), -Errno.EBADF);
        int pa = s.Create(MapType.ProgArray, 4, 4, 4);
        yield return ("a PROG_ARRAY inner map", Math.Min(0, s.Create(MapType.ArrayOfMaps, 4, 4, 4, 0, pa)), -Errno.ENOTSUPP);

        int o = s.Create(MapType.ArrayOfMaps, 4, 4, 4, 0, a);
        yield return ("a map-in-map inner map", Math.Min(0, s.Create(MapType.ArrayOfMaps, 4, 4, 4, 0, o)), einval);
        yield return ("lookup of an empty slot", s.Lookup(o, 0), enoent);
        yield return ("delete of an empty slot", s.Delete(o, 0), enoent);
        yield return ("update with BPF_NOEXIST", s.Update(o, 0, a, UpdateFlags.NoExist), einval);
        yield return ("update", s.Update(o, 0, a), 0);
        yield return ("lookup", s.Lookup(o, 0), 0);
        yield return ("update with BPF_EXIST", s.Update(o, 0, a, UpdateFlags.Exist), einval);
        yield return ("update out of range", s.Update(o, 4, a), e2big);
        yield return ("lookup out of range", s.Lookup(o, 4), enoent);
        yield return ("delete out of range", s.Delete(o, 4), e2big);
        yield return ("update with no map", s.Update(o, 1, Bad), -Errno.EBADF);
        yield return ("update with another max_entries", s.Update(o, 1, s.Create(MapType.Array, 4, 4, 3)), einval);
        yield return ("update with another value_size", s.Update(o, 1, s.Create(MapType.Array, 4, 8, 2)), einval);
        yield return ("update with another type", s.Update(o, 1, s.Create(MapType.Hash, 4, 4, 2)), einval);
        yield return ("update with other flags", s.Update(o, 1, s.Create(MapType.Array, 4, 4, 2, MapFlags.ReadOnlyProg)), einval);
        yield return ("update with the outer map", s.Update(o, 1, o), einval);
        yield return ("update with a second fitting map", s.Update(o, 1, s.Create(MapType.Array, 4, 4, 2)), 0);
        yield return ("delete", s.Delete(o, 0), 0);
        yield return ("delete again", s.Delete(o, 0), enoent);

        int flexible = s.Create(MapType.ArrayOfMaps, 4, 4, 4, 0, s.Create(MapType.Array, 4, 4, 2, MapFlags.InnerMap));
        yield return ("BPF_F_INNER_MAP: another max_entries fits", s.Update(flexible, 0, s.Create(MapType.Array, 4, 4, 5, MapFlags.InnerMap)), 0);
        int sockOuter = s.Create(MapType.ArrayOfMaps, 4, 4, 4, 0, s.Create(MapType.SockMap, 4, 8, 4));
        yield return ("a SOCKMAP of another max_entries fits", s.Update(sockOuter, 0, s.Create(MapType.SockMap, 4, 8, 9)), 0);

        int h = s.Create(MapType.HashOfMaps, 4, 4, 2, 0, s.Create(MapType.Hash, 4, 4, 2));
        int h9 = s.Create(MapType.Hash, 4, 4, 9);
        yield return ("HASH_OF_MAPS update (a HASH of another max_entries fits)", s.Update(h, 1, h9), 0);
        yield return ("HASH_OF_MAPS BPF_NOEXIST on a present key", s.Update(h, 1, h9, UpdateFlags.NoExist), -Errno.EEXIST);
        yield return ("HASH_OF_MAPS second key", s.Update(h, 2, h9), 0);
        yield return ("HASH_OF_MAPS full", s.Update(h, 3, h9), e2big);
        yield return ("HASH_OF_MAPS BPF_EXIST on a missing key", s.Update(h, 3, h9, UpdateFlags.Exist), enoent);
        yield return ("HASH_OF_MAPS lookup of a missing key", s.Lookup(h, 3), enoent);
        yield return ("HASH_OF_MAPS lookup", s.Lookup(h, 1), 0);
        yield return ("HASH_OF_MAPS delete of a missing key", s.Delete(h, 3), enoent);
        yield return ("HASH_OF_MAPS update with an ARRAY", s.Update(h, 1, a), einval);
        yield return ("HASH_OF_MAPS delete", s.Delete(h, 1), 0);
    }

    [Test]
    public void UserspaceOperationsGiveTheKernelsErrnos()
    {
        using var side = new BpfJitSide();
        foreach (var (step, result, expected) in Script(side).ToList())
            Assert.That(result, Is.EqualTo(expected), step);
    }

    [Test]
    [Category(KernelOracle.Category)]
    public void TheKernelAnswersTheScriptAsRecorded()
    {
        KernelBpf.RequireAvailable();
        using var side = new KernelSide();
        foreach (var (step, result, expected) in Script(side).ToList())
            Assert.That(result, Is.EqualTo(expected), step);
    }

    [Test]
    public unsafe void AStoredMapOutlivesItsOwnersDispose()
    {
        var inner = MapFactory.Create(MapType.Array, 4, 4, 2, name: "inner");
        using var outer = (MapOfMaps)MapFactory.Create(new MapDefinition("outer", MapType.ArrayOfMaps, 4, 4, 2, InnerMap: inner.Definition));
        Assert.That(outer.SetMap(0, inner), Is.EqualTo(0));
        inner.Dispose();
        Assert.That(inner.IsDisposed, Is.True);
        Assert.That(inner.IsLive, Is.True, "the slot holds a reference");
        // The owner's use ended, so its id no longer names it for new updates (the kernel's closed fd) ...
        Assert.That(BpfMap.FromId(inner.Id), Is.Null);
        // ... but the slot still holds it, and programs still reach it through the outer map.
        Assert.That(outer.GetMap(BitConverter.GetBytes(0u)), Is.SameAs(inner));
        using (MapEpoch.Protect())
        {
            uint slot = 0, key = 1, value = 42;
            ulong handle = outer.LookupElem((ulong)(nint)(&slot));
            Assert.That(handle, Is.EqualTo(inner.Handle));
            Assert.That(BpfMap.FromHandle(handle).UpdateElem((ulong)(nint)(&key), (ulong)(nint)(&value), 0), Is.EqualTo(0));
            Assert.That(*(uint*)BpfMap.FromHandle(handle).LookupElem((ulong)(nint)(&key)), Is.EqualTo(42u));
        }
        Assert.That(outer.Delete(BitConverter.GetBytes(0u)), Is.EqualTo(0));
        Assert.That(outer.GetMap(BitConverter.GetBytes(0u)), Is.Null);
        Assert.That(inner.IsLive, Is.False, "the last reference went with the slot");
    }

    /// <summary>
    /// Freeing an outer map releases the inner maps it holds, which retires them in turn: one
    /// <see cref="MapEpoch.Collect"/> frees the whole cascade, so nothing of it is left for a later caller.
    /// </summary>
    [Test]
    public void OneCollectFreesAnOuterMapAndTheInnerMapsItHeld()
    {
        var inner = MapFactory.Create(MapType.Array, 4, 4, 2, name: "inner");
        var outer = (MapOfMaps)MapFactory.Create(new MapDefinition("outer", MapType.HashOfMaps, 4, 4, 2, InnerMap: inner.Definition));
        Assert.That(outer.SetMap(0, inner), Is.EqualTo(0));
        inner.Dispose();
        MapEpoch.Collect();
        outer.Dispose();
        Assert.That(MapEpoch.Collect(), Is.GreaterThanOrEqualTo(2), "the outer map, then the inner map its free released");
        Assert.That(MapEpoch.Pending, Is.Zero);
        Assert.That(MapEpoch.Collect(), Is.Zero);
    }

    /// <summary>
    /// outer[0] is an inner ARRAY; the program returns its value[0] &amp; 1. Swapping the map in the slot changes
    /// the answer on both engines without recompiling: the inner lookup is resolved at run time, never pinned.
    /// </summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void BothEnginesReachTheInnerMapOfTheSlotAtRunTime(string engine)
    {
        using var first = MapFactory.Create(MapType.Array, 4, 4, 2, name: "first");
        using var second = MapFactory.Create(MapType.Array, 4, 4, 2, name: "second");
        using var outer = (MapOfMaps)MapFactory.Create(new MapDefinition("outer", MapType.ArrayOfMaps, 4, 4, 2, InnerMap: first.Definition));
        Assert.That(first.Update(0u, 1u), Is.EqualTo(0));
        Assert.That(second.Update(0u, 0u), Is.EqualTo(0));
        Assert.That(outer.SetMap(0, first), Is.EqualTo(0));
        var program = MapPrograms.Assemble("""
            stw [%r10-4], 0
            mov %r2, %r10
            add %r2, -4
            ldmap %r1, 0
            call 1
            jeq %r0, 0, miss
            mov %r1, %r0
            mov %r2, %r10
            add %r2, -4
            call 1
            jeq %r0, 0, miss
            ldxw %r0, [%r0+0]
            and %r0, 1
            exit
            miss:
            mov %r0, 0
            exit
            """);
        var helpers = BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable();
        var template = new MapInfo("outer.inner", MapType.Array, 4, 4, 2);
        var result = BpfJit.Verifier.Verifier.Verify(program, new VerifierOptions
        {
            Helpers = helpers, Maps = [new MapInfo("outer", MapType.ArrayOfMaps, 4, 4, 2, InnerMap: template)],
        });
        Assert.That(result.Accepted, Is.True, result.Log);
        var facts = result.ToProgramFacts(program, [outer]);
        var calls = Enumerable.Range(0, program.Length).Where(i => program[i].Opcode == 0x85).ToList();
        Assert.That(facts[calls[0]].Map, Is.SameAs(outer), "the outer lookup's map is known");
        Assert.That(facts[calls[1]].Map, Is.Null, "the inner lookup's map is known only at run time");
        var code = ProgramBinder.Bind(program, [outer]).Code;
        BpfEntry entry = engine == "jit" ? JitCompiler.Compile(code, helpers, null, facts).Entry : InterpreterEngine.Instance.Prepare(code, helpers);
        using var ctx = new SkLookupContext();
        Assert.That(MapPrograms.Run(entry, (ulong)ctx.Address), Is.EqualTo(1UL));
        Assert.That(outer.SetMap(0, second), Is.EqualTo(0));
        Assert.That(MapPrograms.Run(entry, (ulong)ctx.Address), Is.EqualTo(0UL));
        Assert.That(outer.Delete(BitConverter.GetBytes(0u)), Is.EqualTo(0));
        Assert.That(MapPrograms.Run(entry, (ulong)ctx.Address), Is.EqualTo(0UL));
        Assert.That(outer.SetMap(0, first), Is.EqualTo(0));
        Assert.That(MapPrograms.Run(entry, (ulong)ctx.Address), Is.EqualTo(1UL));
    }
}
