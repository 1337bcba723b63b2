using System.CommandLine;
using System.Globalization;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;

namespace BpfJit.Cli.Hosting;

/// <summary>
/// <c>--map NAME:KEY:VALUE:ENTRIES,...</c> of the verbs that load an object without a scenario (verify, cfg, dump): sizes
/// for the maps an object leaves open (tubular's zero-sized <c>destinations</c>), set on the parsed object before its maps
/// are checked or created, as a loader calls libbpf's bpf_map__set_key_size, bpf_map__set_value_size and
/// bpf_map__set_max_entries between open and load. The program is then verified against the sizes given.
/// </summary>
public static class MapSizeOption
{
    /// <summary>The option's name.</summary>
    public const string Name = "--map";

    /// <summary>The option, as each verb declares it.</summary>
    public static Option Option => Opt.Value(Name, "NAME:KEY:VALUE:ENTRIES,...", "sizes for object maps the object leaves open");

    /// <summary>The hint after a map creation error of a verb that has the option.</summary>
    public const string Hint = " (--map NAME:KEY:VALUE:ENTRIES gives an object's map its sizes)";

    /// <summary>
    /// Sets the sizes <paramref name="text"/> gives on the maps of <paramref name="spec"/> (parsed from <paramref name="path"/>);
    /// nothing when null or empty. Sizes are u32, as BPF_MAP_CREATE reads them. Throws <see cref="UsageException"/> for a
    /// malformed item and <see cref="BpfException"/> naming the file for a map the object does not have.
    /// </summary>
    public static void Apply(string? text, CollectionSpec spec, string path)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (string.IsNullOrEmpty(text)) return;
        foreach (var item in text.Split(','))
        {
            var f = item.Split(':');
            if (f.Length != 4 || !U32(f[1], out uint key) || !U32(f[2], out uint value) || !U32(f[3], out uint entries))
                throw new UsageException($"{Name} {item}: expected NAME:KEY:VALUE:ENTRIES (sizes from 0 to {uint.MaxValue})");
            var map = spec.Maps.FirstOrDefault(m => m.Name == f[0])
                ?? throw new BpfException($"{path}: {Name} {item}: no map named '{f[0]}' (maps: {string.Join(", ", spec.Maps.Select(m => m.Name))})");
            map.KeySize = key;
            map.ValueSize = value;
            map.MaxEntries = entries;
        }
    }

    static bool U32(string s, out uint v) => uint.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v);
}
