using System.Text;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.ProgramTypes;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Verifier;

namespace BpfJit.Cli.Commands;

/// <summary><c>bpfjit feature [--json]</c>: what the runtime supports, as <c>bpftool feature probe</c> lists the kernel's.</summary>
public static class FeatureCommand
{
    /// <summary>The verb's description.</summary>
    public static CommandInfo Info { get; } = new("feature", "list the program types, attach types, map types and helpers the runtime supports", """
        usage: bpfjit feature [--json]

        Lists what this runtime supports, each with its kernel name and id, as 'bpftool feature probe'
        lists what a kernel supports: the program types it loads and runs (sk_lookup, sk_reuseport), their attach
        types, the map types it creates, and per program type the helpers a program may call: those the
        kernel offers the type (sk_lookup_func_proto, as root) that the runtime implements. The kernel's
        helpers for the type that the runtime does not implement are listed after them; the verifier
        rejects a call to one ('helper bpf_x#N is not provided by this runtime').

        output:  eBPF program_type sk_lookup (30) is available
                 eBPF map_type hash (1) is available
                 eBPF helpers supported for program type sk_lookup:
                 	- bpf_map_lookup_elem (1)
        --json:  {"programTypes": [{"name": "sk_lookup", "id": 30}, {"name": "sk_reuseport", "id": 21}],
                  "attachTypes": [{"name": "sk_lookup", "id": 36, "programType": "sk_lookup"},
                                  {"name": "sk_reuseport_select", "id": 39, "programType": "sk_reuseport"}, ...],
                  "mapTypes": [{"name": "hash", "id": 1}, ...],
                  "helpers": {"sk_lookup": [{"name": "bpf_map_lookup_elem", "id": 1}, ...], "sk_reuseport": [...]},
                  "kernelHelpersNotProvided": {"sk_lookup": [{"name": "bpf_get_current_comm", "id": 16}, ...]}}
        Exit code 0.

        examples:
          bpfjit feature
          bpfjit feature --json
        """, Run) { Options = [Opt.Json()] };

    /// <summary>
    /// The program types the runtime loads, verifies and runs (each type's declaration in the
    /// <see cref="ProgramTypeRegistry"/>), with the attach types each takes.
    /// </summary>
    public static IReadOnlyList<ProgramType> ProgramTypes { get; } = [.. ProgramTypeRegistry.All.Select(d => d.Type)];

    /// <summary>The attach types BPF_PROG_LOAD accepts for <paramref name="type"/> (its expected_attach_type values).</summary>
    public static IReadOnlyList<AttachType> AttachTypes(ProgramType type) => ProgramTypeRegistry.Get(type).ExpectedAttachTypes;

    // The runtime's helper table for the type: what its programs' calls resolve against.
    static HelperTable Table(ProgramType type) => type switch
    {
        ProgramType.SkLookup => SkLookupHelpers.CreateTable(),
        ProgramType.SkReuseport => SkReuseportHelpers.CreateTable(),
        _ => throw new NotSupportedException($"program type {type} has no helper table"),
    };

    /// <summary>The helpers a program of <paramref name="type"/> may call here: the kernel offers them to the type and the runtime implements them.</summary>
    public static IReadOnlyList<Helper> Helpers(ProgramType type) => ProgramTypeRegistry.Find(type) is { } d
        ? [.. Table(type).All.Where(h => d.IsHelperAllowed(h.Id))]
        : [];

    /// <summary>The helper ids the kernel offers <paramref name="type"/> that the runtime does not implement.</summary>
    public static IReadOnlyList<int> NotProvided(ProgramType type)
    {
        if (ProgramTypeRegistry.Find(type) is not { } d) return [];
        var table = Table(type);
        return [.. Enumerable.Range(1, HelperNames.Count - 1).Where(id => d.IsHelperAllowed(id) && !table.TryGet(id, out _))];
    }

    /// <summary>The kernel's lower-case name of an enum member (<c>PerCpuArray</c> is <c>percpu_array</c>, <c>SockMap</c> <c>sockmap</c>).</summary>
    public static string KernelName<T>(T value) where T : struct, Enum
    {
        string name = value.ToString();
        var sb = new StringBuilder();
        for (int i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i])) sb.Append('_');
            sb.Append(char.ToLowerInvariant(name[i]));
        }
        // The kernel writes these without the break the PascalCase name suggests (BPF_MAP_TYPE_PERCPU_ARRAY, SOCKMAP, RINGBUF, REUSEPORT_SOCKARRAY).
        return sb.ToString().Replace("per_cpu", "percpu", StringComparison.Ordinal).Replace("sock_map", "sockmap", StringComparison.Ordinal)
            .Replace("sock_hash", "sockhash", StringComparison.Ordinal).Replace("ring_buf", "ringbuf", StringComparison.Ordinal)
            .Replace("dev_map", "devmap", StringComparison.Ordinal).Replace("cpu_map", "cpumap", StringComparison.Ordinal)
            .Replace("xsk_map", "xskmap", StringComparison.Ordinal).Replace("sock_array", "sockarray", StringComparison.Ordinal);
    }

    static int Run(Args args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Positional.Count != 0) throw new UsageException("feature takes no arguments");
        var maps = MapFactory.SupportedTypes;
        if (args.Has("--json"))
        {
            Output.JsonOutput.Write(stdout, w =>
            {
                w.WriteStartObject();
                w.WriteStartArray("programTypes");
                foreach (var type in ProgramTypes) Named(w, KernelName(type), (uint)type);
                w.WriteEndArray();
                w.WriteStartArray("attachTypes");
                foreach (var type in ProgramTypes)
                foreach (var attach in AttachTypes(type))
                {
                    w.WriteStartObject();
                    w.WriteString("name", KernelName(attach));
                    w.WriteNumber("id", (uint)attach);
                    w.WriteString("programType", KernelName(type));
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteStartArray("mapTypes");
                foreach (var m in maps) Named(w, KernelName(m), (uint)m);
                w.WriteEndArray();
                w.WriteStartObject("helpers");
                foreach (var type in ProgramTypes)
                {
                    w.WriteStartArray(KernelName(type));
                    foreach (var h in Helpers(type)) Named(w, HelperNames.Name(h.Id)!, (uint)h.Id);
                    w.WriteEndArray();
                }
                w.WriteEndObject();
                w.WriteStartObject("kernelHelpersNotProvided");
                foreach (var type in ProgramTypes)
                {
                    w.WriteStartArray(KernelName(type));
                    foreach (int id in NotProvided(type)) Named(w, HelperNames.Name(id)!, (uint)id);
                    w.WriteEndArray();
                }
                w.WriteEndObject();
                w.WriteEndObject();
            });
            return Cli.Ok;
        }
        stdout.WriteLine("Scanning eBPF program types...");
        foreach (var type in ProgramTypes) stdout.WriteLine($"eBPF program_type {KernelName(type)} ({(uint)type}) is available");
        stdout.WriteLine();
        stdout.WriteLine("Scanning eBPF attach types...");
        foreach (var type in ProgramTypes)
            foreach (var attach in AttachTypes(type)) stdout.WriteLine($"eBPF attach_type {KernelName(attach)} ({(uint)attach}) is available for program type {KernelName(type)}");
        stdout.WriteLine();
        stdout.WriteLine("Scanning eBPF map types...");
        foreach (var m in maps) stdout.WriteLine($"eBPF map_type {KernelName(m)} ({(uint)m}) is available");
        stdout.WriteLine();
        stdout.WriteLine("Scanning eBPF helper functions...");
        foreach (var type in ProgramTypes)
        {
            stdout.WriteLine($"eBPF helpers supported for program type {KernelName(type)}:");
            foreach (var h in Helpers(type)) stdout.WriteLine($"\t- {HelperNames.Name(h.Id)} ({h.Id})");
            var missing = NotProvided(type);
            if (missing.Count == 0) continue;
            stdout.WriteLine($"kernel helpers for program type {KernelName(type)} this runtime does not provide:");
            foreach (int id in missing) stdout.WriteLine($"\t- {HelperNames.Name(id)} ({id})");
        }
        return Cli.Ok;
    }

    static void Named(System.Text.Json.Utf8JsonWriter w, string name, uint id)
    {
        w.WriteStartObject();
        w.WriteString("name", name);
        w.WriteNumber("id", id);
        w.WriteEndObject();
    }
}
