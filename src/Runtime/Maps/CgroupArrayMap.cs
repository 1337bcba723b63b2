namespace BpfJit.Runtime.Maps;

/// <summary>
/// BPF_MAP_TYPE_CGROUP_ARRAY: u32 index → a cgroup v2 cgroup, for bpf_current_task_under_cgroup. The kernel's slot holds a
/// cgroup taken from a cgroup fd; here it holds the cgroup's id, the inode number of its directory in a cgroup2 mount
/// (what bpf_get_current_cgroup_id gives): <see cref="SetCgroup(uint, string)"/> takes the directory,
/// <see cref="SetCgroup(uint, ulong)"/> the id, and the byte API's update a u32 id where the kernel takes an fd. As the
/// kernel's fd arrays: update takes BPF_ANY only (-EINVAL), an index past max_entries is -E2BIG, lookup is -ENOTSUPP.
/// </summary>
public sealed unsafe class CgroupArrayMap : BpfMap
{
    readonly ulong[] _cgroups;

    internal CgroupArrayMap(MapDefinition definition) : base(definition) => _cgroups = new ulong[MaxEntries];

    /// <summary>Stores the cgroup with id <paramref name="cgroupId"/> (0 empties the slot): 0, or -E2BIG for the index.</summary>
    public int SetCgroup(uint index, ulong cgroupId)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (index >= (uint)MaxEntries) return -Errno.E2BIG;
        Volatile.Write(ref _cgroups[index], cgroupId);
        return 0;
    }

    /// <summary>
    /// Stores the cgroup whose directory (in a cgroup2 mount) is <paramref name="path"/>: 0, -E2BIG for the index, -EBADF
    /// when the path names nothing (the kernel's answer to an fd that is not a cgroup).
    /// </summary>
    public int SetCgroup(uint index, string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (index >= (uint)MaxEntries) return -Errno.E2BIG;
        if (!Directory.Exists(path) || KernelHelpers.CurrentTask.Stat(path) is not { } st) return -Errno.EBADF;
        return SetCgroup(index, st.Ino);
    }

    /// <summary>
    /// Stores the cgroup <paramref name="cgroup"/> names: a cgroup id when it is a number, else a directory of a cgroup2
    /// mount (as <see cref="SetCgroup(uint, string)"/>, or <see cref="SetCgroup(uint, ulong)"/> for an id). 0 or a negated errno
    /// (<see cref="SetCgroupError"/> words it).
    /// </summary>
    public int SetCgroupByName(uint index, string cgroup)
    {
        ArgumentNullException.ThrowIfNull(cgroup);
        return ulong.TryParse(cgroup, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong id)
            ? id == 0 ? -Errno.EBADF : SetCgroup(index, id)
            : SetCgroup(index, cgroup);
    }

    /// <summary>The words for a failed <see cref="SetCgroupByName"/> of map <paramref name="map"/>: what was wrong, and the errno.</summary>
    public static string SetCgroupError(string map, uint index, string cgroup, int err) => err == -Errno.E2BIG
        ? $"index {index} is past map '{map}''s max_entries (-E2BIG)"
        : ulong.TryParse(cgroup, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _)
            ? $"cgroup id {cgroup} is not a cgroup (-{Errno.Name(-err)})"
            : $"'{cgroup}' is not a directory of a cgroup v2 mount (-{Errno.Name(-err)})";

    /// <summary>The id of the cgroup at <paramref name="index"/>, 0 for an empty slot.</summary>
    public ulong GetCgroup(uint index) => index < (uint)MaxEntries ? Volatile.Read(ref _cgroups[index]) : 0;

    /// <summary>
    /// bpf_current_task_under_cgroup's work: 1 when the calling thread's cgroup (<paramref name="chain"/>, its cgroup v2
    /// ancestry by level) is the slot's cgroup or one of its descendants, else 0; -E2BIG for an index past max_entries,
    /// -EAGAIN for an empty slot.
    /// </summary>
    internal long UnderCgroup(ulong index, ReadOnlySpan<ulong> chain)
    {
        if (index >= (ulong)MaxEntries) return -Errno.E2BIG;
        ulong cgroup = Volatile.Read(ref _cgroups[index]);
        if (cgroup == 0) return -Errno.EAGAIN;
        return chain.Contains(cgroup) ? 1 : 0;
    }

    /// <inheritdoc />
    protected override int LookupCore(byte* key, byte* value, ulong flags) => -Errno.ENOTSUPP;

    /// <inheritdoc />
    protected override int UpdateCore(byte* key, byte* value, ulong flags)
    {
        // bpf_fd_array_map_update_elem: BPF_ANY only, the index, then the value (a cgroup id here; 0 is no cgroup).
        if (flags != UpdateFlags.Any) return -Errno.EINVAL;
        if (*(uint*)key >= (uint)MaxEntries) return -Errno.E2BIG;
        uint id = *(uint*)value;
        return id == 0 ? -Errno.EBADF : SetCgroup(*(uint*)key, id);
    }

    /// <inheritdoc />
    protected override int DeleteCore(byte* key)
    {
        uint index = *(uint*)key;
        if (index >= (uint)MaxEntries) return -Errno.E2BIG;
        if (Volatile.Read(ref _cgroups[index]) == 0) return -Errno.ENOENT;
        return SetCgroup(index, 0);
    }

    /// <inheritdoc />
    protected override int GetNextKeyCore(byte* key, byte* nextKey) => ArrayNextKey(key, nextKey);

    /// <inheritdoc />
    protected override void FreeMemory() => Array.Clear(_cgroups);
}
