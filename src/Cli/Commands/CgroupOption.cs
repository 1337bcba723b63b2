using System.CommandLine;
using BpfJit.Runtime;
using BpfJit.Runtime.Maps;

namespace BpfJit.Cli.Commands;

/// <summary>
/// <c>--cgroup MAP:INDEX=CGROUP,...</c> of <c>run</c> and <c>bench</c>: fills slots of the program's CGROUP_ARRAY maps
/// before the runs, as a deployment stores cgroup fds in the map that bpf_current_task_under_cgroup reads. CGROUP is a
/// directory of a cgroup v2 mount or a cgroup id (a number).
/// </summary>
internal static class CgroupOption
{
    /// <summary>The option's declaration.</summary>
    public static Option Declare() =>
        Opt.Value("--cgroup", "MAP:INDEX=CGROUP,...", "fill CGROUP_ARRAY slots: CGROUP is a cgroup v2 directory or a cgroup id");

    /// <summary>Fills the slots <c>--cgroup</c> names in <paramref name="maps"/>; a bad item is a <see cref="UsageException"/> naming it.</summary>
    public static void Apply(Args args, IReadOnlyList<BpfMap> maps)
    {
        if (args.Get("--cgroup") is not { } text) return;
        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int colon = item.IndexOf(':', StringComparison.Ordinal), eq = item.IndexOf('=', StringComparison.Ordinal);
            if (colon <= 0 || eq < colon + 2 || eq == item.Length - 1)
                throw new UsageException($"--cgroup {item}: expected MAP:INDEX=CGROUP (a cgroup v2 directory or a cgroup id)");
            string name = item[..colon], cgroup = item[(eq + 1)..];
            if (!uint.TryParse(item[(colon + 1)..eq], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out uint index))
                throw new UsageException($"--cgroup {item}: index '{item[(colon + 1)..eq]}' is not a u32");
            var map = maps.FirstOrDefault(m => m.Name == name)
                ?? throw new UsageException($"--cgroup {item}: the program has no map '{name}'");
            if (map is not CgroupArrayMap cgroups)
                throw new UsageException($"--cgroup {item}: map '{name}' is a {map.Type}, not a CGROUP_ARRAY");
            if (cgroups.SetCgroupByName(index, cgroup) is var err and < 0)
                throw new UsageException($"--cgroup {item}: {CgroupArrayMap.SetCgroupError(name, index, cgroup, err)}");
        }
    }
}
