using System.Diagnostics;
using System.Text.Json;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Tests.Support;
using BpfJit.Verifier;
using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

/// <summary><c>bpfjit feature</c>: what it lists is what the verifier allows and the runtime creates and runs.</summary>
public class FeatureCommandTests
{
    static JsonElement Features() => Json("feature");

    static IEnumerable<(string Name, int Id)> Named(JsonElement array) =>
        array.EnumerateArray().Select(e => (e.GetProperty("name").GetString()!, e.GetProperty("id").GetInt32()));

    // The messages by which the verifier refuses a helper before looking at its arguments.
    static readonly string[] s_unavailable = ["invalid func unknown#", "program of this type cannot use helper", "is not provided by this runtime"];

    [Test]
    public void EveryListedHelperIsCallableByAVerifiedSkLookupProgram()
    {
        var helpers = Named(Features().GetProperty("helpers").GetProperty("sk_lookup")).ToList();
        Assert.That(helpers, Has.Count.GreaterThan(20));
        Assert.That(helpers.Select(h => h.Name), Does.Contain("bpf_sk_assign").And.Contain("bpf_map_lookup_elem"));
        foreach (var (name, id) in helpers)
        {
            Assert.That(HelperNames.Name(id), Is.EqualTo(name), "the kernel's name for the id");
            // r1 is the context, the others unwritten: the verifier gets past the helper's availability to its arguments.
            var r = BpfJit.Verifier.Verifier.Verify(Assembler.Assemble($"call {id}\nexit"),
                new VerifierOptions { Helpers = SkLookupHelpers.CreateTable() });
            Assert.That(s_unavailable.Any(m => r.Error?.Contains(m, StringComparison.Ordinal) == true), Is.False, $"{name}: {r.Error}");
        }
        // A helper without arguments is accepted outright.
        Assert.That(BpfJit.Verifier.Verifier.Verify(Assembler.Assemble("call 5\nmov %r0, 1\nexit"), new VerifierOptions { Helpers = SkLookupHelpers.CreateTable() }).Accepted,
            Is.True, "bpf_ktime_get_ns");
    }

    [Test]
    public void TheListedAndNotProvidedHelpersAreTheKernelsSetForTheType()
    {
        var json = Features();
        var listed = Named(json.GetProperty("helpers").GetProperty("sk_lookup")).Select(h => h.Id).ToHashSet();
        var missing = Named(json.GetProperty("kernelHelpersNotProvided").GetProperty("sk_lookup")).Select(h => h.Id).ToList();
        var allowed = Enumerable.Range(1, HelperNames.Count - 1).Where(SkLookupFuncProto.IsAllowed).ToList();
        Assert.That(listed.Intersect(missing), Is.Empty);
        Assert.That(listed.Concat(missing).Order(), Is.EqualTo(allowed));
        foreach (int id in missing)
        {
            var r = BpfJit.Verifier.Verifier.Verify(Assembler.Assemble($"call {id}\nexit"), new VerifierOptions { Helpers = SkLookupHelpers.CreateTable() });
            Assert.That(r.Error, Does.EndWith("is not provided by this runtime"), HelperNames.Name(id));
        }
    }

    // A valid BPF_MAP_CREATE for each map type the runtime makes (key, value, entries, flags).
    static readonly Dictionary<MapType, (int Key, int Value, int Entries, uint Flags)> s_create = new()
    {
        [MapType.Hash] = (4, 8, 4, 0),
        [MapType.Array] = (4, 8, 4, 0),
        [MapType.ProgArray] = (4, 4, 4, 0),
        [MapType.PerfEventArray] = (4, 4, 4, 0),
        [MapType.PerCpuHash] = (4, 8, 4, 0),
        [MapType.PerCpuArray] = (4, 8, 4, 0),
        [MapType.LruHash] = (4, 8, 4, 0),
        [MapType.LruPerCpuHash] = (4, 8, 4, 0),
        [MapType.LpmTrie] = (8, 8, 4, MapFlags.NoPrealloc),
        [MapType.SockMap] = (4, 8, 4, 0),
        [MapType.SockHash] = (4, 8, 4, 0),
        [MapType.RingBuf] = (0, 0, 4096, 0),
        [MapType.UserRingBuf] = (0, 0, 4096, 0),
        [MapType.ReuseportSockArray] = (4, 8, 4, 0),
        [MapType.Queue] = (0, 8, 4, 0),
        [MapType.Stack] = (0, 8, 4, 0),
        [MapType.CgroupArray] = (4, 4, 4, 0),
        [MapType.TaskStorage] = (4, 8, 0, MapFlags.NoPrealloc),
        [MapType.CgrpStorage] = (4, 8, 0, MapFlags.NoPrealloc),
    };

    [Test]
    public void EveryListedMapTypeCanBeCreated()
    {
        var types = Named(Features().GetProperty("mapTypes")).ToList();
        Assert.That(types.Select(t => t.Name), Does.Contain("sockmap").And.Contain("percpu_array").And.Contain("lpm_trie").And.Contain("ringbuf"));
        using var inner = MapFactory.Create(new MapDefinition("inner", MapType.Array, 4, 4, 1));
        foreach (var (name, id) in types)
        {
            var type = (MapType)id;
            MapDefinition d = type is MapType.ArrayOfMaps or MapType.HashOfMaps
                ? new MapDefinition(name, type, 4, 4, 2, InnerMap: inner.Definition)
                : s_create.TryGetValue(type, out var c) ? new MapDefinition(name, type, c.Key, c.Value, c.Entries, c.Flags, Btf: true)
                : throw new AssertionException($"map type {name} ({id}) is listed but this test does not know how to create it");
            using var map = MapFactory.Create(d);
            Assert.That(map.Type, Is.EqualTo(type), name);
        }
    }

    [Test]
    public void TheTextListsEachWithItsId()
    {
        var (code, output, _) = Run("feature");
        Assert.That(code, Is.EqualTo(0));
        Assert.That(output, Does.Contain("eBPF program_type sk_lookup (30) is available")
            .And.Contain("eBPF attach_type sk_lookup (36) is available for program type sk_lookup")
            .And.Contain("eBPF map_type sockhash (18) is available")
            .And.Contain("\t- bpf_sk_assign (124)"));
    }

    /// <summary>The names are the kernel's, as bpftool prints them for the same types.</summary>
    [Test]
    [Category(KernelOracle.Category)]
    public void TheNamesAreBpftools()
    {
        KernelBpf.RequireAvailable();
        if (!File.Exists("/usr/sbin/bpftool") && !File.Exists("/usr/bin/bpftool")) Assert.Ignore("bpftool is not installed (apt-get install bpftool)");
        using var p = Process.Start(new ProcessStartInfo("bpftool", "feature probe kernel full") { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string probe = p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) Assert.Ignore($"bpftool feature probe failed ({p.ExitCode})");
        var json = Features();
        // A bpftool older than the kernel probes only the ids its libbpf knows (libbpf 1.1: up to map type 31 and helper
        // 209, before cgrp_storage): names past the newest id it prints are not compared.
        var mapTypes = Named(json.GetProperty("mapTypes")).ToList();
        int newestMap = mapTypes.Where(t => probe.Contains($"eBPF map_type {t.Name} is ", StringComparison.Ordinal)).Max(t => t.Id);
        foreach (var (name, id) in mapTypes)
            if (id <= newestMap) Assert.That(probe, Does.Contain($"eBPF map_type {name} is "), name);
        Assert.That(probe, Does.Contain("eBPF program_type sk_lookup is "));
        var helpers = Named(json.GetProperty("helpers").GetProperty("sk_lookup")).ToList();
        int newestHelper = helpers.Where(h => probe.Contains($"\t- {h.Name}\n", StringComparison.Ordinal)).Max(h => h.Id);
        foreach (var (name, id) in helpers)
            if (id <= newestHelper) Assert.That(probe, Does.Contain($"\t- {name}\n"), name);
    }
}
