using BpfJit.Frontend.Elf;

namespace BpfJit.Frontend.Btf;

/// <summary>
/// The parsed <c>.BTF</c> section of an object: every type and the string table. It names and sizes
/// types (enough to resolve BTF-defined maps) and, with <see cref="Ext"/>, holds the function and
/// line information of <c>.BTF.ext</c>.
/// </summary>
public sealed class BtfSpec
{
    /// <summary>The magic number at the start of .BTF and .BTF.ext.</summary>
    public const ushort Magic = 0xeb9f;

    const int MaxChain = 64;

    readonly byte[] _strings;
    readonly BtfType[] _types;

    BtfSpec(string file, byte[] strings, BtfType[] types)
    {
        File = file;
        _strings = strings;
        _types = types;
    }

    /// <summary>The object file name, for error messages.</summary>
    public string File { get; }

    /// <summary>All types; index 0 is void, so a type's id is its index.</summary>
    public IReadOnlyList<BtfType> Types => _types;

    /// <summary>Function, line and CO-RE relocation records from .BTF.ext, when the object has it.</summary>
    public BtfExtInfo? Ext { get; internal set; }

    /// <summary>Parses the contents of a .BTF section; throws <see cref="BpfObjectException"/> on a bad one.</summary>
    public static BtfSpec Parse(ReadOnlySpan<byte> data, string file) => BtfParser.Parse(data, file);

    internal static BtfSpec Create(string file, byte[] strings, BtfType[] types) => new(file, strings, types);

    /// <summary>The type with this id; throws <see cref="BpfObjectException"/> when there is none.</summary>
    public BtfType Type(uint id) =>
        id < _types.Length ? _types[id] : throw Error($"type id {id} is out of range (the object has {_types.Length - 1} types)");

    /// <summary>The string at <paramref name="offset"/> of the string section, or null when out of range.</summary>
    public string? String(uint offset) => ElfFile.ReadString(_strings, offset);

    /// <summary>All types with this name (and kind, when given).</summary>
    public IEnumerable<BtfType> FindByName(string name, BtfKind? kind = null) =>
        _types.Where(t => t.Name == name && (kind == null || t.Kind == kind));

    /// <summary>The DATASEC describing an ELF section, or null.</summary>
    public BtfType? Datasec(string sectionName) => FindByName(sectionName, BtfKind.Datasec).FirstOrDefault();

    /// <summary>Follows typedefs, qualifiers and type tags to the underlying type.</summary>
    public BtfType Resolve(uint id)
    {
        var t = Type(id);
        for (int i = 0; i < MaxChain; i++)
        {
            if (t.Kind is not (BtfKind.Typedef or BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.TypeTag))
                return t;
            t = Type(t.SizeOrType);
        }
        throw Error($"type id {id}: typedef or qualifier chain is longer than {MaxChain} (a loop?)");
    }

    /// <summary>The size in bytes of a type (pointers are 8 bytes); throws for types without a size.</summary>
    public ulong Size(uint id) => Size(id, 0);

    ulong Size(uint id, int depth)
    {
        try { return SizeUnchecked(id, depth); }
        catch (OverflowException) { throw Error($"type id {id} is too large to size"); }
    }

    ulong SizeUnchecked(uint id, int depth)
    {
        if (depth > MaxChain) throw Error($"type id {id}: type nesting is deeper than {MaxChain} (a loop?)");
        var t = Resolve(id);
        return t.Kind switch
        {
            BtfKind.Ptr => 8,
            BtfKind.Array => checked(Size(t.ElementType, depth + 1) * t.ElementCount),
            BtfKind.Var => Size(t.SizeOrType, depth + 1),
            _ when t.HasSize => t.SizeOrType,
            _ => throw Error($"type id {id} ({t.Kind.ToString().ToUpperInvariant()} '{t.Name}') has no size"),
        };
    }

    /// <summary>A C-like name for a type: <c>struct addr</c>, <c>__u32</c>, <c>u64 *</c>, <c>char[16]</c>.</summary>
    public string TypeName(uint id) => TypeName(id, 0);

    string TypeName(uint id, int depth)
    {
        if (depth > MaxChain) return "...";
        if (id >= _types.Length) return $"<bad type {id}>";
        var t = _types[id];
        string Named(string prefix) => t.Name.Length > 0 ? $"{prefix}{t.Name}" : $"{prefix}<anon>";
        return t.Kind switch
        {
            BtfKind.Void => "void",
            BtfKind.Int or BtfKind.Float or BtfKind.Typedef => t.Name,
            BtfKind.Struct => Named("struct "),
            BtfKind.Union => Named("union "),
            BtfKind.Enum or BtfKind.Enum64 => Named("enum "),
            BtfKind.Fwd => Named(t.KindFlag ? "union " : "struct "),
            BtfKind.Ptr => TypeName(t.SizeOrType, depth + 1) + " *",
            BtfKind.Const => "const " + TypeName(t.SizeOrType, depth + 1),
            BtfKind.Volatile => "volatile " + TypeName(t.SizeOrType, depth + 1),
            BtfKind.Restrict => TypeName(t.SizeOrType, depth + 1) + " restrict",
            BtfKind.TypeTag => TypeName(t.SizeOrType, depth + 1),
            BtfKind.Array => $"{TypeName(t.ElementType, depth + 1)}[{t.ElementCount}]",
            BtfKind.Func or BtfKind.Var or BtfKind.Datasec or BtfKind.DeclTag => t.Name,
            BtfKind.FuncProto => $"{TypeName(t.SizeOrType, depth + 1)} (*)({string.Join(", ", t.Params.Select(p => p.TypeId == 0 ? "..." : TypeName(p.TypeId, depth + 1)))})",
            _ => t.Name,
        };
    }

    /// <summary>An error located in this object's .BTF section.</summary>
    internal BpfObjectException Error(string reason) => new(File, ".BTF", null, reason);
}
