using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Cli;
using BpfJit.Tests.Support;
using CsCheck;

namespace BpfJit.Tests.Maps;

/// <summary>
/// No map declaration or operation can crash the library or the tool: map attributes and operations generated over
/// the whole parameter space (0, 1, the kernel's limits, 2^31 - 1, 2^31, 2^32 - 1, negative, random) end in a
/// success or a typed error (<see cref="MapCreateException"/>, a negative errno; exit 2 with one line from the tool).
/// </summary>
[TestFixture, NonParallelizable]
public class MapPropertyTests : MapMemoryLimitFixture
{
    /// <summary>Generated maps are real: keep each under 64 MiB so a run never takes the host's memory.</summary>
    internal const long GeneratedMapLimit = 64 << 20;

    /// <inheritdoc />
    protected override long? TestLimit => GeneratedMapLimit;

    static readonly Gen<uint> Size = Gen.Frequency(
        (4, Gen.OneOf(0u, 1u, 4u, 5u, 8u, 12u, 260u, 261u, 512u, 513u, 4096u, 32768u, 32769u, 4194024u, 4194025u, 4194248u,
            (uint)int.MaxValue, 1u << 31, uint.MaxValue, unchecked((uint)-5), 1u << 27, (1u << 27) + 1)),
        (3, Gen.UInt[0, 300]),
        (1, Gen.UInt));

    static readonly Gen<MapType> Type = Gen.Frequency(
        (6, Gen.Enum<MapType>()),
        (1, Gen.UInt[0, 40].Select(u => (MapType)u)),
        (1, Gen.UInt.Select(u => (MapType)u)));

    static readonly Gen<uint> CreateFlags = Gen.Frequency(
        (3, Gen.OneOf(0u, MapFlags.NoPrealloc, MapFlags.NumaNode, MapFlags.ReadOnly, MapFlags.WriteOnly, MapFlags.ReadOnlyProg,
            MapFlags.Mmapable, MapFlags.InnerMap, MapFlags.NoCommonLru, MapFlags.PreserveElems)),
        (2, Gen.UInt[0, 0x3fff]),
        (1, Gen.UInt));

    static readonly Gen<ulong> OpFlags = Gen.Frequency(
        (4, Gen.OneOf(0UL, 1UL, 2UL, 3UL, 4UL, 5UL, 6UL, 8UL)),
        (1, Gen.ULong));

    static readonly Gen<MapDefinition> Definition =
        Gen.Select(Type, Size, Size, Size, CreateFlags, Gen.OneOf(0u, 1u, 999u, uint.MaxValue), Gen.Bool)
            .Select((t, k, v, m, f, numa, inner) => new MapDefinition("gen", t, unchecked((int)k), unchecked((int)v), unchecked((int)m), f,
                InnerMap: inner ? new MapDefinition("inner", MapType.Array, 4, 8, 1) : null, NumaNode: numa));

    static readonly Gen<(int Op, uint Key, ulong Flags)[]> Ops = Gen.Select(Gen.Int[0, 4], Gen.OneOf(Gen.UInt[0, 8], Gen.UInt), OpFlags).Array[0, 12];

    [Test]
    public void Every_generated_declaration_and_operation_is_a_success_or_a_typed_error()
    {
        Gen.Select(Definition, Ops).Sample((def, ops) =>
        {
            BpfMap map;
            try { map = MapFactory.Create(def); }
            catch (MapCreateException e)
            {
                Assert.That(e.Errno, Is.GreaterThan(0));
                Assert.That(e.Message, Does.StartWith("map gen ("));
                return;
            }
            using (map)
            {
                foreach (var (op, k, flags) in ops)
                {
                    var key = new byte[map.KeySize];
                    for (int i = 0; i + 4 <= key.Length; i += 4) BitConverter.TryWriteBytes(key.AsSpan(i), k);
                    var value = new byte[map.UserValueSize];
                    int r = op switch
                    {
                        0 => map.Lookup(key, value, flags),
                        1 => map.Update(key, value, flags),
                        2 => map.Delete(key),
                        3 => map.GetNextKey(k % 2 == 0 ? [] : key, new byte[map.KeySize]),
                        _ => map.Freeze(),
                    };
                    Assert.That(r, Is.LessThanOrEqualTo(0), $"{map}: op {op} key {k} flags {flags}");
                }
            }
        }, iter: 3000);
    }

    static readonly string[] TypeNames =
        ["hash", "array", "prog_array", "perf_event_array", "percpu_hash", "percpu_array", "lru_hash", "lru_percpu_hash", "lpm_trie",
         "array_of_maps", "hash_of_maps", "sockmap", "sockhash", "ringbuf", "stack_trace", "unspec", "nosuchtype"];

    static readonly Gen<long> JsonSize = Gen.Frequency(
        (4, Size.Select(u => (long)u)),
        (1, Gen.OneOf(-1L, -5L, (long)int.MinValue, 1L << 32, long.MaxValue)));

    [Test]
    public void The_scenario_verb_answers_every_generated_map_declaration_with_a_result_or_one_line_and_exit_2()
    {
        Gen.Select(Gen.OneOf(TypeNames), JsonSize, JsonSize, JsonSize, CreateFlags).Sample((type, k, v, m, f) =>
        {
            string path = CliHarness.Temp(".json",
                $"{{\"map_definitions\": {{\"m\": {{\"type\": \"{type}\", \"key_size\": {k}, \"value_size\": {v}, \"max_entries\": {m}, \"flags\": {f}}}}}}}");
            try
            {
                var r = CliHarness.Run("scenario", path);
                if (r.Code == 0) return;
                CliHarness.AssertBadInput(r);
            }
            finally { File.Delete(path); }
        }, iter: 300);
    }

    // Every verb refuses the object at its first map, as run does (verify and cfg check the maps without allocating them).
    [TestCase("verify")]
    [TestCase("cfg")]
    [TestCase("dump")]
    [TestCase("run")]
    public void Maps_of_2_to_the_32_minus_1_entries_in_an_object_never_crash_a_verb(string verb)
    {
        string obj = Path.Combine(Paths.RepoRoot, "tests", "Maps", "objects", "huge_maps.o");
        string[] args = verb == "run" ? [verb, obj, "--proto", "tcp", "--from", "127.0.0.1:1", "--to", "127.0.0.1:2"] : [verb, obj];
        CliHarness.AssertBadInput(CliHarness.Run(args), $"{obj}: map huge_array (Array): ", "-ENOMEM");
    }
}
