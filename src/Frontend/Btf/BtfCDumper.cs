using System.Globalization;
using System.Text;
using BpfJit.Frontend.Elf;

namespace BpfJit.Frontend.Btf;

/// <summary>
/// An object's BTF as C declarations, as <c>bpftool btf dump file X format c</c> prints them (libbpf's btf_dump):
/// every named struct, union, enum and typedef once, each after the types it embeds (dependency order), with a
/// forward declaration where a type is reached through a pointer before its definition (cycles), and anonymous
/// types inline. Functions, variables and data sections, which are no C type declarations, follow as a comment.
/// </summary>
public sealed class BtfCDumper
{
    const int PtrSize = 8;
    enum Order : byte { NotOrdered, Ordering, Ordered }
    enum Emit : byte { NotEmitted, Emitting, Emitted }

    readonly BtfSpec _btf;
    readonly StringBuilder _o = new();
    readonly Order[] _order;
    readonly Emit[] _emit;
    readonly bool[] _fwdEmitted;
    readonly bool[] _referenced;
    readonly List<uint> _queue = [];

    BtfCDumper(BtfSpec btf)
    {
        _btf = btf;
        int n = btf.Types.Count;
        _order = new Order[n];
        _emit = new Emit[n];
        _fwdEmitted = new bool[n];
        _referenced = new bool[n];
    }

    /// <summary>The C header for <paramref name="btf"/>, bpftool's <c>format c</c> text, then the comment of functions and variables.</summary>
    public static string Dump(BtfSpec btf)
    {
        ArgumentNullException.ThrowIfNull(btf);
        var d = new BtfCDumper(btf);
        d.Run();
        return d._o.ToString();
    }

    void Run()
    {
        MarkReferenced();
        _o.Append("#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n\n");
        _o.Append("#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n#endif\n\n");
        for (uint id = 1; id < _btf.Types.Count; id++)
        {
            // btf_dump__dump_type: order the type and what it needs, then emit the queue as top-level definitions.
            _queue.Clear();
            OrderType(id, throughPtr: false);
            foreach (uint q in _queue) EmitType(q, 0);
        }
        _o.Append("#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n\n");
        _o.Append("#endif /* __VMLINUX_H__ */\n");
        DumpNonTypes();
    }

    BtfType T(uint id) => _btf.Type(id);

    // btf_dump_mark_referenced: an anonymous enum used by another type is emitted inline, not on its own.
    void MarkReferenced()
    {
        foreach (var t in _btf.Types.Skip(1))
        {
            switch (t.Kind)
            {
                case BtfKind.Ptr or BtfKind.Typedef or BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.TypeTag or BtfKind.Var or BtfKind.Func:
                    Mark(t.SizeOrType); break;
                case BtfKind.Array: Mark(t.ElementType); Mark(t.IndexType); break;
                case BtfKind.Struct or BtfKind.Union: foreach (var m in t.Members) Mark(m.TypeId); break;
                case BtfKind.FuncProto: Mark(t.SizeOrType); foreach (var p in t.Params) Mark(p.TypeId); break;
                case BtfKind.Datasec: foreach (var v in t.Variables) Mark(v.TypeId); break;
            }
        }
        void Mark(uint id) { if (id < _referenced.Length) _referenced[id] = true; }
    }

    /// <summary>btf_dump_order_type: queues the named types <paramref name="id"/> needs defined first; 1 when the type is a strong (embedding) dependency.</summary>
    int OrderType(uint id, bool throughPtr)
    {
        if (_order[id] == Order.Ordered) return 1;
        var t = T(id);
        if (_order[id] == Order.Ordering)
        {
            // A loop through a pointer to a named struct or union is broken by a forward declaration.
            if (t.Kind is BtfKind.Struct or BtfKind.Union && throughPtr && t.Name.Length > 0) return 0;
            throw new BpfObjectException(_btf.File, ".BTF", null, $"type [{id}]: unsatisfiable type cycle");
        }
        switch (t.Kind)
        {
            case BtfKind.Void:
                return 0;
            case BtfKind.Int or BtfKind.Float:
                _order[id] = Order.Ordered;
                return 0;
            case BtfKind.Ptr:
            {
                int r = OrderType(t.SizeOrType, throughPtr: true);
                _order[id] = Order.Ordered;
                return r;
            }
            case BtfKind.Array:
                return OrderType(t.ElementType, throughPtr: false);
            case BtfKind.Struct or BtfKind.Union:
                // Only an embedded or anonymous struct is a strong dependency; a named one behind a pointer needs a forward declaration at most.
                if (throughPtr && t.Name.Length > 0) return 0;
                _order[id] = Order.Ordering;
                foreach (var m in t.Members) OrderType(m.TypeId, throughPtr: false);
                if (t.Name.Length > 0) _queue.Add(id);
                _order[id] = Order.Ordered;
                return 1;
            case BtfKind.Enum or BtfKind.Enum64 or BtfKind.Fwd:
                if (t.Name.Length > 0 || !_referenced[id]) _queue.Add(id);
                _order[id] = Order.Ordered;
                return 1;
            case BtfKind.Typedef:
            {
                int strong = OrderType(t.SizeOrType, throughPtr);
                if (throughPtr && strong == 0) return 0;
                _queue.Add(id);
                _order[id] = Order.Ordered;
                return 1;
            }
            case BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.TypeTag:
                return OrderType(t.SizeOrType, throughPtr);
            case BtfKind.FuncProto:
            {
                int strong = OrderType(t.SizeOrType, throughPtr) > 0 ? 1 : 0;
                foreach (var p in t.Params)
                    if (OrderType(p.TypeId, throughPtr) > 0) strong = 1;
                return strong;
            }
            default: // FUNC, VAR, DATASEC, DECL_TAG are not C types
                _order[id] = Order.Ordered;
                return 0;
        }
    }

    /// <summary>btf_dump_emit_type: emits <paramref name="id"/> (and forward declarations it needs) inside container <paramref name="contId"/>, 0 at top level.</summary>
    void EmitType(uint id, uint contId)
    {
        if (id == 0 || _emit[id] == Emit.Emitted) return;
        var t = T(id);
        bool topLevel = contId == 0;
        if (_emit[id] == Emit.Emitting)
        {
            if (_fwdEmitted[id]) return;
            if (t.Kind is BtfKind.Struct or BtfKind.Union)
            {
                if (id == contId || t.Name.Length == 0) return;
                _o.Append(StructFwd(t)).Append(";\n\n");
                _fwdEmitted[id] = true;
            }
            else if (t.Kind == BtfKind.Typedef)
            {
                _o.Append(TypedefDef(t, 0)).Append(";\n\n");
                _fwdEmitted[id] = true;
            }
            return;
        }
        switch (t.Kind)
        {
            case BtfKind.Int or BtfKind.Float:
                _emit[id] = Emit.Emitted;
                break;
            case BtfKind.Enum or BtfKind.Enum64:
                if (topLevel) _o.Append(EnumDef(t, 0)).Append(";\n\n");
                _emit[id] = Emit.Emitted;
                break;
            case BtfKind.Ptr or BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.TypeTag:
                EmitType(t.SizeOrType, contId);
                break;
            case BtfKind.Array:
                EmitType(t.ElementType, contId);
                break;
            case BtfKind.Fwd:
                _o.Append(FwdDef(t)).Append(";\n\n");
                _emit[id] = Emit.Emitted;
                break;
            case BtfKind.Typedef:
                _emit[id] = Emit.Emitting;
                EmitType(t.SizeOrType, id);
                if (!_fwdEmitted[id]) _o.Append(TypedefDef(t, 0)).Append(";\n\n");
                _emit[id] = Emit.Emitted;
                break;
            case BtfKind.Struct or BtfKind.Union:
                _emit[id] = Emit.Emitting;
                // A definition spells out its members, so their types need declaring first.
                if (topLevel || t.Name.Length == 0)
                {
                    uint inner = t.Name.Length == 0 ? contId : id;
                    foreach (var m in t.Members) EmitType(m.TypeId, inner);
                }
                else if (!_fwdEmitted[id] && id != contId)
                {
                    _o.Append(StructFwd(t)).Append(";\n\n");
                    _fwdEmitted[id] = true;
                }
                if (topLevel)
                {
                    _o.Append(StructDef(t, 0)).Append(";\n\n");
                    _emit[id] = Emit.Emitted;
                }
                else _emit[id] = Emit.NotEmitted;
                break;
            case BtfKind.FuncProto:
                EmitType(t.SizeOrType, contId);
                foreach (var p in t.Params) EmitType(p.TypeId, contId);
                break;
        }
    }

    static string Pfx(int lvl) => new('\t', lvl);

    static string StructFwd(BtfType t) => $"{(t.Kind == BtfKind.Struct ? "struct" : "union")} {t.Name}";

    static string FwdDef(BtfType t) => $"{(t.KindFlag ? "union" : "struct")} {t.Name}";

    string TypedefDef(BtfType t, int lvl) => "typedef " + Decl(t.SizeOrType, t.Name, lvl);

    string EnumDef(BtfType t, int lvl)
    {
        var sb = new StringBuilder("enum");
        if (t.Name.Length > 0) sb.Append(' ').Append(t.Name);
        if (t.EnumValues.Count > 0)
        {
            sb.Append(" {");
            bool signed = t.KindFlag;
            foreach (var v in t.EnumValues)
            {
                string value = (t.Kind, signed) switch
                {
                    (BtfKind.Enum, true) => ((int)v.Value).ToString(CultureInfo.InvariantCulture),
                    (BtfKind.Enum, false) => ((uint)v.Value).ToString(CultureInfo.InvariantCulture),
                    (_, true) => v.Value.ToString(CultureInfo.InvariantCulture) + "LL",
                    _ => ((ulong)v.Value).ToString(CultureInfo.InvariantCulture) + "ULL",
                };
                sb.Append('\n').Append(Pfx(lvl + 1)).Append(v.Name).Append(" = ").Append(value).Append(',');
            }
            sb.Append('\n').Append(Pfx(lvl)).Append('}');
        }
        // An enum of another size than int is forced with the mode attribute: always for one byte; for eight
        // unless an ENUM64 value needs the upper half (the compiler then widens the enum by itself).
        if (t.SizeOrType == 1) sb.Append(" __attribute__((mode(byte)))");
        else if (t.SizeOrType == 8 && (t.Kind == BtfKind.Enum || t.EnumValues.All(v => (ulong)v.Value >> 32 == 0)))
            sb.Append(" __attribute__((mode(word)))");
        return sb.ToString();
    }

    /// <summary>btf__align_of: a type's natural alignment; 1 for a struct whose layout shows it packed.</summary>
    int AlignOf(uint id)
    {
        var t = T(id);
        switch (t.Kind)
        {
            case BtfKind.Int or BtfKind.Enum or BtfKind.Enum64 or BtfKind.Float: return (int)Math.Min(PtrSize, t.SizeOrType);
            case BtfKind.Ptr: return PtrSize;
            case BtfKind.Typedef or BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.TypeTag: return AlignOf(t.SizeOrType);
            case BtfKind.Array: return AlignOf(t.ElementType);
            case BtfKind.Struct or BtfKind.Union:
            {
                int max = 1;
                foreach (var m in t.Members)
                {
                    int a = AlignOf(m.TypeId);
                    if (a <= 0) return a;
                    max = Math.Max(max, a);
                    if (m.BitfieldSize == 0 && m.BitOffset % (8 * (uint)a) != 0) return 1;
                }
                return t.SizeOrType % max != 0 ? 1 : max;
            }
            default: return 0;
        }
    }

    bool IsPacked(BtfType t)
    {
        int align = AlignOf(t.Id);
        if (align != 0 && t.SizeOrType % align != 0) return true;
        foreach (var m in t.Members)
        {
            int a = AlignOf(m.TypeId);
            if (a != 0 && m.BitfieldSize == 0 && m.BitOffset % (8 * (uint)a) != 0) return true;
        }
        return false;
    }

    string StructDef(BtfType t, int lvl)
    {
        bool isStruct = t.Kind == BtfKind.Struct;
        bool packed = isStruct && IsPacked(t);
        int align = AlignOf(t.Id);
        var sb = new StringBuilder(isStruct ? "struct" : "union");
        if (t.Name.Length > 0) sb.Append(' ').Append(t.Name);
        sb.Append(" {");
        long off = 0;
        bool prevBitfield = false;
        foreach (var m in t.Members)
        {
            long mOff = m.BitOffset;
            long mSize = m.BitfieldSize;
            int mAlign = packed ? 1 : AlignOf(m.TypeId);
            BitPadding(sb, off, mOff, mAlign, prevBitfield && mSize != 0, lvl + 1);
            sb.Append('\n').Append(Pfx(lvl + 1)).Append(Decl(m.TypeId, m.Name, lvl + 1));
            if (mSize != 0)
            {
                sb.Append(": ").Append(mSize);
                off = mOff + mSize;
                prevBitfield = true;
            }
            else
            {
                off = mOff + (long)SizeOrZero(m.TypeId) * 8;
                prevBitfield = false;
            }
            sb.Append(';');
        }
        if (isStruct) BitPadding(sb, off, (long)t.SizeOrType * 8, align, false, lvl + 1);
        if (t.Members.Count > 0 || t.SizeOrType > 0) sb.Append('\n').Append(Pfx(lvl)).Append('}');
        else sb.Append('}');
        if (packed) sb.Append(" __attribute__((packed))");
        return sb.ToString();
    }

    ulong SizeOrZero(uint id)
    {
        try { return _btf.Size(id); }
        catch (BpfObjectException) { return 0; }
    }

    /// <summary>btf_dump_emit_bit_padding: explicit <c>long: 64;</c>-style members for gaps natural alignment does not explain.</summary>
    static void BitPadding(StringBuilder sb, long cur, long next, int nextAlign, bool inBitfield, int lvl)
    {
        if (cur >= next) return;
        (string Name, int Bits)[] pads = [("long", PtrSize * 8), ("int", 32), ("short", 16), ("char", 8)];
        long newOff = 0;
        string padType = "";
        int padBits = 0;
        foreach (var (name, bits) in pads)
        {
            padBits = bits;
            padType = name;
            newOff = RoundUp(cur, bits);
            if (newOff <= next) break;
        }
        if (newOff > cur && newOff <= next)
        {
            if (inBitfield || (newOff == next && RoundUp(cur, nextAlign * 8) != newOff) || (newOff != next && next - newOff <= newOff - cur))
                sb.Append('\n').Append(Pfx(lvl)).Append(padType).Append(": ").Append(inBitfield ? newOff - cur : 0).Append(';');
            cur = newOff;
        }
        while (cur != next)
        {
            long bits = Math.Min(next - cur, padBits);
            if (bits == padBits)
            {
                sb.Append('\n').Append(Pfx(lvl)).Append(padType).Append(": ").Append(padBits).Append(';');
                cur += bits;
                continue;
            }
            for (int i = pads.Length - 1; i >= 0; i--)
            {
                if (pads[i].Bits < bits) continue;
                sb.Append('\n').Append(Pfx(lvl)).Append(pads[i].Name).Append(": ").Append(bits).Append(';');
                cur += bits;
                break;
            }
        }
    }

    static long RoundUp(long x, long to) => (x + to - 1) / to * to;

    /// <summary>btf_dump_emit_type_decl: a declaration of <paramref name="name"/> with type <paramref name="id"/>, C declarator syntax.</summary>
    string Decl(uint id, string name, int lvl)
    {
        var stack = new List<uint>();
        for (int guard = 0; guard < 256; guard++)
        {
            stack.Add(id);
            if (id == 0) break;
            var t = T(id);
            if (t.Kind is BtfKind.Ptr or BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.FuncProto or BtfKind.TypeTag) id = t.SizeOrType;
            else if (t.Kind == BtfKind.Array) id = t.ElementType;
            else break;
        }
        var sb = new StringBuilder();
        Chain(sb, stack, name, lvl);
        return sb.ToString();
    }

    void Mods(StringBuilder sb, List<uint> stack)
    {
        while (stack.Count > 0 && stack[^1] != 0 && T(stack[^1]).Kind is BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict)
        {
            var k = T(stack[^1]).Kind;
            stack.RemoveAt(stack.Count - 1);
            sb.Append(k == BtfKind.Volatile ? "volatile " : k == BtfKind.Const ? "const " : "restrict ");
        }
    }

    void DropMods(List<uint> stack)
    {
        while (stack.Count > 0 && stack[^1] != 0 && T(stack[^1]).Kind is BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.TypeTag)
            stack.RemoveAt(stack.Count - 1);
    }

    static void Name(StringBuilder sb, string name, bool lastWasPtr)
    {
        if (name.Length > 0 && !lastWasPtr) sb.Append(' ');
        sb.Append(name);
    }

    /// <summary>btf_dump_emit_type_chain: the base type first, then pointers, arrays and prototypes inside out.</summary>
    void Chain(StringBuilder sb, List<uint> stack, string name, int lvl)
    {
        bool lastWasPtr = true;
        while (stack.Count > 0)
        {
            uint id = stack[^1];
            stack.RemoveAt(stack.Count - 1);
            if (id == 0)
            {
                Mods(sb, stack);
                sb.Append("void");
                lastWasPtr = false;
                continue;
            }
            var t = T(id);
            switch (t.Kind)
            {
                case BtfKind.Int or BtfKind.Float:
                    Mods(sb, stack);
                    sb.Append(t.Name);
                    break;
                case BtfKind.Struct or BtfKind.Union:
                    Mods(sb, stack);
                    sb.Append(t.Name.Length == 0 ? StructDef(t, lvl) : StructFwd(t));
                    break;
                case BtfKind.Enum or BtfKind.Enum64:
                    Mods(sb, stack);
                    sb.Append(t.Name.Length == 0 ? EnumDef(t, lvl) : "enum " + t.Name);
                    break;
                case BtfKind.Fwd:
                    Mods(sb, stack);
                    sb.Append(FwdDef(t));
                    break;
                case BtfKind.Typedef:
                    Mods(sb, stack);
                    sb.Append(t.Name);
                    break;
                case BtfKind.Ptr:
                    sb.Append(lastWasPtr ? "*" : " *");
                    break;
                case BtfKind.Volatile: sb.Append(" volatile"); break;
                case BtfKind.Const: sb.Append(" const"); break;
                case BtfKind.Restrict: sb.Append(" restrict"); break;
                case BtfKind.TypeTag:
                    Mods(sb, stack);
                    sb.Append(" __attribute__((btf_type_tag(\"").Append(t.Name).Append("\")))");
                    break;
                case BtfKind.Array:
                {
                    DropMods(stack);
                    if (stack.Count == 0)
                    {
                        Name(sb, name, lastWasPtr);
                        sb.Append('[').Append(t.ElementCount).Append(']');
                        return;
                    }
                    bool multidim = stack[^1] != 0 && T(stack[^1]).Kind == BtfKind.Array;
                    if (name.Length > 0 && !lastWasPtr) sb.Append(' ');
                    if (!multidim) sb.Append('(');
                    Chain(sb, stack, name, lvl);
                    if (!multidim) sb.Append(')');
                    sb.Append('[').Append(t.ElementCount).Append(']');
                    return;
                }
                case BtfKind.FuncProto:
                {
                    DropMods(stack);
                    if (stack.Count > 0)
                    {
                        sb.Append(" (");
                        Chain(sb, stack, name, lvl);
                        sb.Append(')');
                    }
                    else Name(sb, name, lastWasPtr);
                    sb.Append('(');
                    var ps = t.Params;
                    if (ps.Count == 0 || (ps.Count == 1 && ps[0].TypeId == 0))
                    {
                        sb.Append("void)");
                        return;
                    }
                    for (int i = 0; i < ps.Count; i++)
                    {
                        if (i > 0) sb.Append(", ");
                        if (i == ps.Count - 1 && ps[i].TypeId == 0) { sb.Append("..."); break; }
                        sb.Append(Decl(ps[i].TypeId, ps[i].Name, lvl));
                    }
                    sb.Append(')');
                    return;
                }
            }
            lastWasPtr = t.Kind == BtfKind.Ptr;
        }
        Name(sb, name, lastWasPtr);
    }

    // FUNC, VAR and DATASEC are left out by bpftool's format c; they are listed here as a comment after the header.
    void DumpNonTypes()
    {
        var lines = new List<string>();
        foreach (var t in _btf.Types.Skip(1))
        {
            switch (t.Kind)
            {
                case BtfKind.Func:
                    lines.Add($"[{t.Id}] FUNC {Decl(t.SizeOrType, t.Name, 0)}; linkage {Linkage(t.Linkage, func: true)}");
                    break;
                case BtfKind.Var:
                    lines.Add($"[{t.Id}] VAR {Decl(t.SizeOrType, t.Name, 0)}; linkage {Linkage(t.Linkage, func: false)}");
                    break;
                case BtfKind.Datasec:
                    lines.Add($"[{t.Id}] DATASEC {t.Name} size {t.SizeOrType}: " + (t.Variables.Count == 0 ? "(empty)"
                        : string.Join(", ", t.Variables.Select(v => $"{(v.TypeId < _btf.Types.Count ? T(v.TypeId).Name : "?")} at {v.Offset} ({v.Size} bytes)"))));
                    break;
            }
        }
        if (lines.Count == 0) return;
        _o.Append("\n/* functions, variables and data sections (not C type declarations; bpftool's format c leaves them out):\n");
        foreach (string l in lines) _o.Append(" * ").Append(l.Replace("*/", "* /", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal).Replace("\t", "", StringComparison.Ordinal)).Append('\n');
        _o.Append(" */\n");
    }

    static string Linkage(uint linkage, bool func) => (func, linkage) switch
    {
        (_, 0) => "static",
        (true, 1) => "global",
        (true, 2) => "extern",
        (false, 1) => "global",
        (false, 2) => "extern",
        _ => linkage.ToString(CultureInfo.InvariantCulture),
    };
}
