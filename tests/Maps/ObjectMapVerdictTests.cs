using System.Buffers.Binary;
using System.Text.RegularExpressions;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Cli;
using BpfJit.Tests.Support;
using CsCheck;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Maps;

/// <summary>
/// Every verb that loads an object gives an object's map declaration the same verdict (issue 19 items 1 and 6, issue 20
/// item 3): verify, cfg, dump, run, bench and scenario accept it, or all refuse it at the map with the same errno (before
/// any program is verified, as libbpf's bpf_object__load creates every map first), or all reject the program. The
/// declarations are written into <c>tests/Maps/objects/legacy_map.o</c>, whose one map is a legacy struct bpf_map_def
/// (type, key_size, value_size, max_entries, map_flags in the object's bytes): every map type at 0, 2^31 - 1, 2^31 and
/// 2^32 - 1 of each field, and generated ones. Where the kernel can be asked, its BPF_MAP_CREATE answer for the same
/// attributes (what libbpf sends) is the verdict's map part.
/// </summary>
[TestFixture, NonParallelizable]
public partial class ObjectMapVerdictTests : MapMemoryLimitFixture
{
    /// <inheritdoc />
    protected override long? TestLimit => MapPropertyTests.GeneratedMapLimit;

    static readonly string Template = Path.Combine(Paths.RepoRoot, "tests", "Maps", "objects", "legacy_map.o");

    /// <summary>The template's struct bpf_map_def: ARRAY, 4, 8, 0x5a17, 0.</summary>
    static readonly byte[] Marker = Def((uint)MapType.Array, 4, 8, 0x5a17, 0);

    static byte[] Def(uint type, uint key, uint value, uint max, uint flags)
    {
        var def = new byte[20];
        uint[] fields = [type, key, value, max, flags];
        for (int i = 0; i < fields.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(def.AsSpan(4 * i), fields[i]);
        return def;
    }

    /// <summary>The template with its map declared as given.</summary>
    static byte[] Declare(MapType type, uint key, uint value, uint max, uint flags)
    {
        byte[] bytes = File.ReadAllBytes(Template);
        int at = bytes.AsSpan().IndexOf(Marker);
        Assert.That(at, Is.GreaterThanOrEqualTo(0), "the template's map definition");
        Assert.That(bytes.AsSpan(at + 1).IndexOf(Marker), Is.LessThan(0), "one definition in the template");
        Def((uint)type, key, value, max, flags).CopyTo(bytes, at);
        return bytes;
    }

    [GeneratedRegex(@"\(-(E[A-Z0-9]+)\)")]
    private static partial Regex ErrnoText();

    /// <summary>What one verb said: accepted, the map refused with an errno, the program rejected, or a bad object.</summary>
    static string Verdict(string verb, (int Code, string Out, string Err) r)
    {
        if (r.Code == 0) return "accepted";
        if (r.Code == 1) return "program rejected";
        Assert.That(r.Code, Is.EqualTo(2), $"{verb}: {r.Err}{r.Out}");
        CliHarness.AssertBadInput(r);
        // A map BPF_MAP_CREATE refuses: one line naming the map and its type, the field and the errno.
        if (r.Err.Contains("map m (", StringComparison.Ordinal))
        {
            var errno = ErrnoText().Match(r.Err);
            Assert.That(errno.Success, $"{verb}: {r.Err}");
            return "map -" + errno.Groups[1].Value;
        }
        // dump and scenario report a verifier rejection as exit 2 (their help says so: the program cannot be compiled, the
        // scenario's file is wrong), with the verifier's line.
        if (verb is "dump" or "scenario" && r.Err.Contains("verifier rejected the program at insn", StringComparison.Ordinal)) return "program rejected";
        return "bad object";
    }

    static readonly string[] Lookup = ["--proto", "tcp", "--from", "127.0.0.1:1", "--to", "127.0.0.2:2"];

    /// <summary>
    /// One verb in this process, as a process of its own would start: the maps earlier verbs freed are returned to the
    /// limit first (a map's memory is uncharged after its grace period, <see cref="MapEpoch"/>).
    /// </summary>
    static (int Code, string Out, string Err) Run(params string[] args)
    {
        MapEpoch.Collect();
        return CliHarness.Run(args);
    }

    /// <summary>Each verb's verdict on the object at <paramref name="path"/>.</summary>
    static Dictionary<string, string> Verdicts(string path)
    {
        string scenario = CliHarness.Temp(".json", $$"""{"object": "{{path}}", "attach": ["prog"]}""");
        try
        {
            return new()
            {
                ["verify"] = Verdict("verify", Run("verify", path)),
                ["cfg"] = Verdict("cfg", Run("cfg", path)),
                ["dump"] = Verdict("dump", Run("dump", path)),
                ["run"] = Verdict("run", Run(["run", path, .. Lookup])),
                ["bench"] = Verdict("bench", Run(["bench", path, .. Lookup, "--seconds", "0"])),
                ["scenario"] = Verdict("scenario", Run("scenario", scenario)),
            };
        }
        finally { File.Delete(scenario); }
    }

    /// <summary>The verbs' one verdict on the declaration; fails naming each verb's when they differ.</summary>
    static string OneVerdict(MapType type, uint key, uint value, uint max, uint flags)
    {
        string path = CliHarness.Temp(".o", Declare(type, key, value, max, flags));
        try
        {
            var verdicts = Verdicts(path);
            var distinct = verdicts.Values.Distinct().ToList();
            Assert.That(distinct, Has.Count.EqualTo(1),
                $"{type} key {key} value {value} max {max} flags 0x{flags:x}: {string.Join(", ", verdicts.Select(v => $"{v.Key} {v.Value}"))}");
            return distinct[0];
        }
        finally { File.Delete(path); }
    }

    /// <summary>0, 2^31 - 1, 2^31, 2^32 - 1: the field values the audit found the verbs split on.</summary>
    static readonly uint[] Edges = [0, int.MaxValue, 1u << 31, uint.MaxValue];

    /// <summary>Every map type the ELF loader takes (UNSPEC is refused there) with each field at each edge.</summary>
    static IEnumerable<(MapType Type, uint Key, uint Value, uint Max, uint Flags)> EdgeDeclarations()
    {
        foreach (var type in Enum.GetValues<MapType>().Where(t => t != MapType.Unspec))
        {
            var (k, v, m, f) = Base(type);
            foreach (uint x in Edges)
            {
                yield return (type, x, v, m, f);
                yield return (type, k, x, m, f);
                yield return (type, k, v, x, f);
                yield return (type, k, v, m, x);
            }
        }
    }

    /// <summary>Attributes each type accepts (MapCreateKernelTests' bases), so that one edge at a time is the fault.</summary>
    static (uint Key, uint Value, uint Max, uint Flags) Base(MapType type)
    {
        foreach (var b in MapCreateKernelTests.Bases)
            if (b.Type == type) return (b.Key, b.Value, b.Max, b.Flags);
        return (4, 8, 16, 0);
    }

    [Test]
    public void Every_verb_gives_each_edge_declaration_the_same_verdict_and_the_map_errors_are_the_kernels()
    {
        var kernelDifferences = new List<string>();
        int compared = 0, mapErrors = 0;
        bool kernel = KernelBpf.Available;
        foreach (var (type, k, v, m, f) in EdgeDeclarations())
        {
            string verdict = OneVerdict(type, k, v, m, f);
            if (verdict.StartsWith("map ", StringComparison.Ordinal)) mapErrors++;
            if (!kernel || KernelAnswer(type, k, v, m, f) is not { } answer) continue;
            compared++;
            // The kernel's map verdict: created (any other verdict of ours: the program's), or its errno at the map.
            string ours = verdict.StartsWith("map ", StringComparison.Ordinal) ? verdict : "created";
            string theirs = answer >= 0 ? "created" : $"map -{Errno.Name(answer)}";
            if (ours != theirs) kernelDifferences.Add($"{type} key {k} value {v} max {m} flags 0x{f:x}: kernel {theirs}, BpfJit {ours}");
        }
        TestContext.Out.WriteLine($"{mapErrors} declarations refused at the map by every verb; {compared} compared with the kernel");
        Assert.That(mapErrors, Is.GreaterThan(100), "the edges reach the map checks");
        if (!kernel)
            Assert.Ignore($"verdicts agree across verbs; the kernel comparison was skipped: {BpfJit.Baselines.KernelBpf.UnavailableReason}");
        Assert.That(compared, Is.GreaterThan(150));
        if (kernelDifferences.Count > 0)
            KernelOracle.Differs(KernelOracle.RecordedRelease, $"{kernelDifferences.Count} of {compared}:\n" + string.Join("\n", kernelDifferences));
    }

    /// <summary>
    /// The live kernel's BPF_MAP_CREATE for the declaration (an fd closed at once, or the negated errno), or null where it
    /// is not asked: a type this runtime does not implement (it refuses every such map), a map-in-map (libbpf refuses a
    /// legacy one before the syscall: it has no inner map), a map the kernel would have to allocate over 64 MiB for, or
    /// one this runtime's 64 MiB test limit refuses.
    /// </summary>
    static int? KernelAnswer(MapType type, uint k, uint v, uint m, uint f)
    {
        if (!MapFactory.SupportedTypes.Contains(type) || type is MapType.ArrayOfMaps or MapType.HashOfMaps) return null;
        var c = new MapCreateKernelTests.Case("declared", type, k, v, m, f);
        if (MapCreateKernelTests.KernelBytes(c) > MapCreateKernelTests.KernelSafeBytes) return null;
        if (MapCreateKernelTests.BpfJitAnswer(c, out _) == -Errno.ENOMEM) return null;
        int fd = KernelBpf.CreateMap((uint)type, unchecked((int)k), unchecked((int)v), unchecked((int)m), f);
        KernelBpf.Close(fd);
        return fd >= 0 ? 0 : fd;
    }

    static readonly Gen<uint> Field = Gen.Frequency(
        (3, Gen.OneOf(0u, 1u, 4u, 5u, 8u, 16u, 260u, 4096u, 32769u, (uint)int.MaxValue, 1u << 31, uint.MaxValue)),
        (2, Gen.UInt[0, 300]),
        (1, Gen.UInt));

    static readonly Gen<uint> Flags = Gen.Frequency(
        (3, Gen.OneOf(0u, MapFlags.NoPrealloc, MapFlags.NumaNode, MapFlags.ReadOnly, MapFlags.ReadOnlyProg | MapFlags.WriteOnlyProg,
            MapFlags.Mmapable, MapFlags.InnerMap, MapFlags.NoCommonLru, MapFlags.PreserveElems)),
        (1, Gen.UInt[0, 0x3fff]),
        (1, Gen.UInt));

    [Test]
    public void Every_verb_gives_each_generated_declaration_the_same_verdict()
    {
        var types = Enum.GetValues<MapType>().Where(t => t != MapType.Unspec).ToArray();
        Gen.Select(Gen.OneOf(types), Field, Field, Field, Flags).Sample((t, k, v, m, f) => { OneVerdict(t, k, v, m, f); }, iter: 150, threads: 1);
    }

    [Test]
    public void A_map_of_half_the_test_limit_gets_one_verdict_from_verbs_run_one_after_another()
    {
        // Generated once: a 30 MiB LRU_HASH, created by dump, run, bench and scenario in turn (found when the earlier
        // verbs' maps were still charged in their grace period).
        OneVerdict(MapType.LruHash, 260, 96, 76136, MapFlags.NumaNode);
    }

    [TestCase(MapType.SockMap)]
    [TestCase(MapType.ReuseportSockArray)]
    public void A_slot_array_longer_than_the_runtime_holds_is_refused_by_every_verb(MapType type)
    {
        // 2^31 - 1 slots of 8 bytes fit the default memory limit of a large host, not a managed array (Array.MaxLength):
        // creation failed with ENOMEM while verify and cfg, which create nothing, accepted the object.
        MapMemory.Limit = SavedLimit;
        var (k, v, _, f) = Base(type);
        Assert.That(OneVerdict(type, k, type == MapType.ReuseportSockArray ? 8 : v, int.MaxValue, f), Is.EqualTo("map -ENOMEM"));
    }

    [Test]
    public void A_map_error_comes_before_the_program_and_names_the_file_map_and_field_once()
    {
        // key_size 2^31: the program's 4-byte key would be a verifier error, but the map is refused first (-EINVAL), as on Linux.
        string path = CliHarness.Temp(".o", Declare(MapType.Array, 1u << 31, 8, 16, 0));
        try
        {
            foreach (var verb in new[] { "verify", "cfg", "dump" })
            {
                var r = Run(verb, path);
                CliHarness.AssertBadInput(r, $"{path}: map m (Array): key_size 2147483648: must be 4 (-EINVAL)");
                Assert.That(r.Err, Does.Not.Contain("map m: map m"), "the map is named once");
            }
            CliHarness.AssertBadInput(CliHarness.Run(["run", path, .. Lookup]), $"{path}: map m (Array): key_size 2147483648: must be 4 (-EINVAL)");
        }
        finally { File.Delete(path); }
    }
}
