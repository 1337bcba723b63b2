using System.Text;

namespace BpfJit.Runtime;

public static partial class KernelHelpers
{
    /// <summary>bpf_get_current_cgroup_id.</summary>
    public const int GetCurrentCgroupIdId = 80;
    /// <summary>bpf_get_current_ancestor_cgroup_id.</summary>
    public const int GetCurrentAncestorCgroupIdId = 123;

    /// <summary>
    /// bpf_get_current_cgroup_id: the id of the calling thread's cgroup in the cgroup v2 hierarchy, which is the inode
    /// number of its directory in a cgroup2 mount (the kernel's cgroup_id is its kernfs node id): 1 for the root cgroup.
    /// 0 where the cgroup cannot be found (no cgroup2 mount reaches it, or not Linux).
    /// </summary>
    public static ulong GetCurrentCgroupId(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        var chain = CurrentCgroup.Chain();
        return chain.Length == 0 ? 0 : chain[^1];
    }

    /// <summary>
    /// bpf_get_current_ancestor_cgroup_id(level): the id of the calling thread's cgroup's ancestor at
    /// <paramref name="r1"/> (an int: level 0 is the root cgroup, the cgroup itself is at its own level), or 0 for a
    /// level below 0 or deeper than the cgroup's, as the kernel's cgroup_ancestor.
    /// </summary>
    public static ulong GetCurrentAncestorCgroupId(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        int level = (int)r1;
        var chain = CurrentCgroup.Chain();
        return level < 0 || level >= chain.Length ? 0 : chain[level];
    }

    /// <summary>
    /// The calling thread's cgroup v2 ancestry, read once per thread: the ids (directory inode numbers) of the root
    /// cgroup, each ancestor and the cgroup itself, indexed by level.
    /// </summary>
    internal static class CurrentCgroup
    {
        [ThreadStatic] static ulong[]? t_chain;

        /// <summary>The ids by level; empty where they cannot be known. A thread moved to another cgroup later keeps its first answer.</summary>
        public static ulong[] Chain()
        {
            if (t_chain is { } chain) return chain;
            chain = [];
            try
            {
                if (OperatingSystem.IsLinux())
                    chain = Read(File.ReadAllText("/proc/thread-self/cgroup"), File.ReadAllText("/proc/self/mountinfo"), path => CurrentTask.Stat(path)?.Ino);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            return t_chain = chain;
        }

        /// <summary>
        /// The ids by level from a <c>/proc/&lt;pid&gt;/cgroup</c> text (its <c>0::/path</c> line), a <c>mountinfo</c> text (its
        /// first cgroup2 mount: the mount's root and mount point) and <paramref name="inode"/> (a path's st_ino, or null).
        /// Levels are counted from the root of the process's cgroup namespace, which is the kernel's root cgroup unless
        /// the process is in a cgroup namespace of its own (its root's id is then not 1, and the levels are relative).
        /// A level whose directory the mount does not reach (above the mount's root) is 0; no cgroup2 mount: only the
        /// root cgroup (id 1) is known, for a process in it.
        /// </summary>
        internal static ulong[] Read(string cgroupFile, string mountInfo, Func<string, ulong?> inode)
        {
            string? path = cgroupFile.Split('\n').FirstOrDefault(l => l.StartsWith("0::", StringComparison.Ordinal))?[3..].Trim();
            if (path == null || !path.StartsWith('/')) return [];
            string[] parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
            (string Root, string Point)? mount = null;
            foreach (string line in mountInfo.Split('\n'))
            {
                int dash = line.IndexOf(" - ", StringComparison.Ordinal);
                if (dash < 0) continue;
                string[] after = line[(dash + 3)..].Split(' ');
                string[] before = line[..dash].Split(' ');
                if (after[0] != "cgroup2" || before.Length < 5) continue;
                mount = (Unescape(before[3]), Unescape(before[4]));
                break;
            }
            if (mount is not { } m) return parts.Length == 0 ? [1] : [];
            string[] rootParts = m.Root.Split('/', StringSplitOptions.RemoveEmptyEntries);
            var chain = new ulong[parts.Length + 1];
            for (int level = 0; level <= parts.Length; level++)
            {
                // The directory of the ancestor at this level is reachable when the mount's root is at or above it.
                if (level < rootParts.Length || !parts.AsSpan(0, rootParts.Length).SequenceEqual(rootParts)) continue;
                string dir = m.Point.TrimEnd('/') + "/" + string.Join('/', parts[rootParts.Length..level]);
                chain[level] = inode(dir.Length > 1 ? dir.TrimEnd('/') : dir) ?? 0;
            }
            return chain[^1] == 0 ? [] : chain;
        }

        // mountinfo escapes space, tab, newline and backslash as \ooo.
        static string Unescape(string field)
        {
            if (!field.Contains('\\', StringComparison.Ordinal)) return field;
            var sb = new StringBuilder();
            for (int i = 0; i < field.Length; i++)
            {
                if (field[i] == '\\' && IsOctal(field, i + 1))
                {
                    sb.Append((char)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                    i += 3;
                }
                else sb.Append(field[i]);
            }
            return sb.ToString();
        }

        static bool IsOctal(string s, int at) => at + 3 <= s.Length && s.Substring(at, 3).All(c => c is >= '0' and <= '7');
    }
}
