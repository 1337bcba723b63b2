using System.IO.Compression;

namespace BpfJit.Frontend.Btf;

/// <summary>
/// BpfJit's bundled subset of the kernel's own BTF (vmlinux): the structs an SK_LOOKUP program can hold a pointer to
/// (<c>task_struct</c>, the socket casts' <c>tcp_sock</c>..., <c>bpf_sk_lookup_kern</c>, <c>pt_regs</c>,
/// <c>vm_area_struct</c>), what they embed, and the structs their pointer members point to, recorded from Linux
/// <see cref="RecordedOn"/> by <c>tools/kernel-btf/record.sh</c>. The verifier walks it as the kernel's btf_struct_walk
/// walks vmlinux BTF, and the runtime lays out the images programs read through it; the host's own BTF is never read, so
/// a program loads or is refused the same way on every machine. A struct the subset does not hold in full is a FWD.
/// </summary>
public static class KernelBtf
{
    /// <summary>The kernel release (<c>uname -r</c>) the subset was recorded from.</summary>
    public const string RecordedOn = "6.18.44-fc-v1300";

    const string Resource = "BpfJit.Frontend.vmlinux_subset.btf.gz";

    static readonly Lazy<KernelBtfIndex> s_index = new(Load);

    /// <summary>The subset as a parsed BTF (type ids are the subset's own, not the kernel's).</summary>
    public static BtfSpec Spec => s_index.Value.Spec;

    /// <summary>The id of the complete struct or union named <paramref name="name"/>; throws when the subset has none.</summary>
    public static uint StructId(string name) =>
        s_index.Value.Structs.TryGetValue(name, out uint id) ? id : throw new KeyNotFoundException($"struct {name} is not in the bundled kernel BTF");

    /// <summary>The id of the complete struct or union named <paramref name="name"/>, or null.</summary>
    public static uint? FindStruct(string name) => s_index.Value.Structs.TryGetValue(name, out uint id) ? id : null;

    /// <summary>The name of type <paramref name="id"/> (a struct's tag; "" for an anonymous one).</summary>
    public static string Name(uint id) => Spec.Type(id).Name;

    /// <summary>
    /// The byte offset of the member reached by <paramref name="path"/> from the start of struct <paramref name="structName"/>:
    /// each name is a member of the previous one's struct or union, looked for through anonymous members as C does.
    /// Throws when a name is not found.
    /// </summary>
    public static int Offset(string structName, params string[] path)
    {
        var spec = Spec;
        uint id = StructId(structName);
        long bits = 0;
        foreach (var name in path)
        {
            (uint next, long at) = FindMember(spec, id, name) ?? throw new KeyNotFoundException($"{Name(id)} has no member {name}");
            bits += at;
            id = next;
        }
        return (int)(bits / 8);
    }

    /// <summary>The size in bytes of struct <paramref name="structName"/>.</summary>
    public static int Size(string structName) => (int)Spec.Type(StructId(structName)).SizeOrType;

    static (uint Type, long BitOffset)? FindMember(BtfSpec spec, uint id, string name)
    {
        var t = spec.Resolve(id);
        foreach (var m in t.Members)
        {
            if (m.Name == name) return (m.TypeId, m.BitOffset);
            if (m.Name.Length == 0 && spec.Resolve(m.TypeId).Kind is BtfKind.Struct or BtfKind.Union
                && FindMember(spec, m.TypeId, name) is { } inner)
                return (inner.Type, m.BitOffset + inner.BitOffset);
        }
        return null;
    }

    static KernelBtfIndex Load()
    {
        using var stream = typeof(KernelBtf).Assembly.GetManifestResourceStream(Resource)
            ?? throw new InvalidOperationException($"the bundled kernel BTF ({Resource}) is missing from the assembly");
        using var gzip = new GZipStream(stream, CompressionMode.Decompress);
        using var memory = new MemoryStream();
        gzip.CopyTo(memory);
        var spec = BtfSpec.Parse(memory.ToArray(), "vmlinux (bundled subset)");
        var structs = new Dictionary<string, uint>(StringComparer.Ordinal);
        foreach (var t in spec.Types)
            if (t.Kind is BtfKind.Struct or BtfKind.Union && t.Name.Length > 0) structs.TryAdd(t.Name, t.Id);
        return new KernelBtfIndex(spec, structs);
    }

    sealed record KernelBtfIndex(BtfSpec Spec, Dictionary<string, uint> Structs);
}
