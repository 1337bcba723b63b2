using BpfJit.Frontend.Elf;

namespace BpfJit.Frontend.Btf;

/// <summary>A CO-RE relocation that cannot be applied, at an instruction of the linked program.</summary>
sealed class CoreRelocationException(int instruction, string reason) : Exception(reason)
{
    /// <summary>The linked program's instruction the relocation is on.</summary>
    public int Instruction { get; } = instruction;

    /// <summary>The target has no such type, field or enumerator: libbpf poisons the instruction rather than fail the load.</summary>
    public bool Unresolved { get; init; }
}

/// <summary>
/// Applies CO-RE relocations (<c>.BTF.ext</c> core_relo records) to a linked program, as libbpf's
/// bpf_core_apply_relo_insn does: each relocation's access string is resolved in the object's own BTF
/// (the local spec) and, by type and member names, in the target BTF (the target spec); the instruction's
/// immediate or offset is then rewritten from the local value to the target's. The target is BpfJit's
/// own types, <see cref="Target"/>: the UAPI structures of SK_LOOKUP programs (<c>struct bpf_sk_lookup</c>,
/// <c>struct bpf_sock</c>, ...) laid out as the runtime lays them out; a type not there is looked for in the kernel
/// structs BpfJit bundles (<see cref="KernelBtf"/>: <c>task_struct</c>, <c>tcp_sock</c>, ...). Other kernel-internal types
/// are not there: an instruction whose relocation needs one is poisoned as libbpf poisons it (<c>call unknown#195896080</c>),
/// so the verifier rejects the program only if the instruction is reachable, and the verifiers name the
/// relocation (<c>failed to resolve CO-RE relocation</c>) as libbpf's log fixup does.
/// </summary>
static class CoreRelocator
{
    static readonly Lazy<BtfSpec> s_target = new(LoadTarget);

    /// <summary>The target types: the BTF of <c>Btf/Target/uapi_types.c</c>, built from the UAPI header and embedded.</summary>
    public static BtfSpec Target => s_target.Value;

    static BtfSpec LoadTarget()
    {
        using var stream = typeof(CoreRelocator).Assembly.GetManifestResourceStream("BpfJit.Frontend.uapi_types.btf")
            ?? throw new InvalidOperationException("the embedded UAPI BTF is missing");
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return BtfSpec.Parse(memory.ToArray(), "uapi_types.btf");
    }

    /// <summary>One step of a field access: a struct/union member (by index and name) or an array element.</summary>
    readonly record struct Access(uint TypeId, int Index, string? Name);

    /// <summary>A resolved access string: the steps and where the field is (libbpf's struct bpf_core_spec).</summary>
    sealed record Spec(BtfSpec Btf, uint RootId, List<Access> Steps, long BitOffset, uint FieldTypeId, uint BitfieldSize);

    /// <summary>
    /// Rewrites <paramref name="code"/> for every relocation in <paramref name="relocations"/> (program-relative offsets).
    /// Returns the poisoned instructions with the reason of each; throws <see cref="CoreRelocationException"/> for a
    /// relocation that does not fit its instruction (libbpf fails the load then).
    /// </summary>
    public static Dictionary<int, string> Apply(Instruction[] code, IReadOnlyList<BtfCoreRelocation> relocations, BtfSpec local)
    {
        var poisoned = new Dictionary<int, string>();
        for (int n = 0; n < relocations.Count; n++)
        {
            var r = relocations[n];
            string what = $"relo #{n}: {KindName(r.Kind)} [{r.TypeId}] {Describe(local, r.TypeId)} ({r.AccessString})";
            CoreRelocationException Fail(string reason) => new(r.InstructionOffset, $"{what}: {reason}");
            if (r.InstructionOffset < 0 || r.InstructionOffset >= code.Length) throw Fail("instruction is outside the program");
            long orig, result;
            int origSize, newSize;
            try { (orig, result, origSize, newSize) = Calculate(r, local, Fail); }
            catch (OverflowException) { throw Fail("an offset or size is out of range"); }
            catch (CoreRelocationException e) when (e.Unresolved)
            {
                Poison(code, r.InstructionOffset);
                poisoned[r.InstructionOffset] = e.Message;
                continue;
            }
            Patch(code, r, orig, result, origSize, newSize, Fail);
        }
        return poisoned;
    }

    // bpf_core_poison_insn: the instruction becomes a call no kernel resolves; an ld_imm64's second slot a no-op jump.
    static void Poison(Instruction[] code, int at)
    {
        if (code[at].IsLdImm64 && at + 1 < code.Length) code[at + 1] = new Instruction(Op.Ja, 0, 0, 0, 0);
        code[at] = new Instruction(Op.Call, 0, 0, 0, ProgramSpec.CorePoisonHelper);
    }

    static string Describe(BtfSpec btf, uint id)
    {
        try { return btf.TypeName(id); }
        catch (BpfObjectException) { return "?"; }
    }

    static string KindName(CoreRelocationKind k) => k switch
    {
        CoreRelocationKind.FieldByteOffset => "byte_off",
        CoreRelocationKind.FieldByteSize => "byte_sz",
        CoreRelocationKind.FieldExists => "field_exists",
        CoreRelocationKind.FieldSigned => "signed",
        CoreRelocationKind.FieldLShiftU64 => "lshift_u64",
        CoreRelocationKind.FieldRShiftU64 => "rshift_u64",
        CoreRelocationKind.TypeIdLocal => "local_type_id",
        CoreRelocationKind.TypeIdTarget => "target_type_id",
        CoreRelocationKind.TypeExists => "type_exists",
        CoreRelocationKind.TypeSize => "type_size",
        CoreRelocationKind.EnumValueExists => "enumval_exists",
        CoreRelocationKind.EnumValueValue => "enumval_value",
        _ => "type_matches",
    };

    static bool IsFieldKind(CoreRelocationKind k) => k <= CoreRelocationKind.FieldRShiftU64;

    static bool IsEnumKind(CoreRelocationKind k) => k is CoreRelocationKind.EnumValueExists or CoreRelocationKind.EnumValueValue;

    /// <summary>The local value the compiler put in the instruction, the target value, and for byte_off the field sizes.</summary>
    static (long Orig, long New, int OrigSize, int NewSize) Calculate(BtfCoreRelocation r, BtfSpec local, Func<string, CoreRelocationException> fail)
    {
        var target = Target;
        int[] access;
        try { access = r.AccessString.Split(':').Select(s => int.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToArray(); }
        catch (FormatException) { throw fail($"invalid access string '{r.AccessString}'"); }
        catch (OverflowException) { throw fail($"invalid access string '{r.AccessString}'"); }
        if (access.Length == 0 || access.Any(a => a < 0)) throw fail($"invalid access string '{r.AccessString}'");
        var root = local.Resolve(r.TypeId);

        if (r.Kind == CoreRelocationKind.TypeIdLocal) return (r.TypeId, r.TypeId, 0, 0);
        var candidates = Candidates(root, target);
        if (candidates.Count == 0)
        {
            // A kernel-internal type (task_struct, tcp_sock...: what BTF pointers point to) resolves against the kernel
            // structs BpfJit bundles (KernelBtf), which are the verifier's, so the program reads what the verifier checks.
            target = KernelBtf.Spec;
            candidates = Candidates(root, target);
        }
        if (IsEnumKind(r.Kind))
        {
            if (root.Kind is not (BtfKind.Enum or BtfKind.Enum64) || access.Length != 1 || access[0] >= root.EnumValues.Count)
                throw fail("invalid enumerator access");
            var e = root.EnumValues[access[0]];
            foreach (var c in candidates)
            {
                int i = c.EnumValues.ToList().FindIndex(v => v.Name == e.Name);
                if (i >= 0) return r.Kind == CoreRelocationKind.EnumValueExists ? (1, 1, 0, 0) : (e.Value, c.EnumValues[i].Value, 0, 0);
            }
            if (r.Kind == CoreRelocationKind.EnumValueExists) return (1, 0, 0, 0);
            throw Unresolved(fail($"failed to resolve CO-RE relocation: no enumerator {e.Name} in the target types"));
        }
        if (!IsFieldKind(r.Kind))
        {
            if (access.Length != 1 || access[0] != 0) throw fail("invalid type access string");
            var found = candidates.FirstOrDefault(c => TypesMatch(local, root, target, c, r.Kind == CoreRelocationKind.TypeMatches));
            long localValue = r.Kind switch
            {
                CoreRelocationKind.TypeSize => checked((long)local.Size(root.Id)),
                CoreRelocationKind.TypeIdTarget => r.TypeId,
                _ => 1,
            };
            if (found == null)
            {
                if (r.Kind is CoreRelocationKind.TypeExists or CoreRelocationKind.TypeMatches) return (1, 0, 0, 0);
                throw Unresolved(fail($"failed to resolve CO-RE relocation: no type {root.Kind.ToString().ToLowerInvariant()} {root.Name} in the target types"));
            }
            return r.Kind switch
            {
                CoreRelocationKind.TypeSize => (localValue, checked((long)target.Size(found.Id)), 0, 0),
                CoreRelocationKind.TypeIdTarget => (localValue, found.Id, 0, 0),
                _ => (1, 1, 0, 0),
            };
        }

        var localSpec = Resolve(local, r.TypeId, access, fail);
        var (origValue, origSize) = FieldValue(localSpec, r.Kind, fail);
        foreach (var c in candidates)
        {
            if (Match(localSpec, target, c.Id, access[0]) is not { } targetSpec) continue;
            var (newValue, newSize) = FieldValue(targetSpec, r.Kind, fail);
            return (origValue, newValue, origSize, newSize);
        }
        if (r.Kind == CoreRelocationKind.FieldExists) return (origValue, 0, 0, 0);
        string field = string.Join('.', localSpec.Steps.Where(s => s.Name != null).Select(s => s.Name));
        throw Unresolved(fail($"failed to resolve CO-RE relocation: {Describe(local, r.TypeId)}{(field.Length > 0 ? "." + field : "")} is not in the target types"));
    }

    static CoreRelocationException Unresolved(CoreRelocationException e) => new(e.Instruction, e.Message) { Unresolved = true };

    /// <summary>Target types of the same kind whose name is the local name without its <c>___flavor</c> suffix.</summary>
    static List<BtfType> Candidates(BtfType root, BtfSpec target)
    {
        if (root.Name.Length == 0) return [];
        int cut = root.Name.IndexOf("___", StringComparison.Ordinal);
        string name = cut > 0 ? root.Name[..cut] : root.Name;
        return target.Types.Where(t => t.Name == name && SameKind(root, t)).ToList();
    }

    static bool SameKind(BtfType a, BtfType b) =>
        a.Kind == b.Kind || (a.Kind is BtfKind.Enum or BtfKind.Enum64 && b.Kind is BtfKind.Enum or BtfKind.Enum64)
        || (a.Kind is BtfKind.Fwd && b.Kind is BtfKind.Struct or BtfKind.Union);

    /// <summary>The local spec: walks <paramref name="access"/> from the root (libbpf's bpf_core_parse_spec).</summary>
    static Spec Resolve(BtfSpec btf, uint rootId, int[] access, Func<string, CoreRelocationException> fail)
    {
        var t = btf.Resolve(rootId);
        long bits = access[0] * checked((long)btf.Size(t.Id)) * 8;
        var steps = new List<Access>();
        uint fieldType = t.Id, bitfield = 0;
        for (int i = 1; i < access.Length; i++)
        {
            int idx = access[i];
            if (t.Kind is BtfKind.Struct or BtfKind.Union)
            {
                if (idx >= t.Members.Count) throw fail($"member {idx} of {btf.TypeName(t.Id)} does not exist");
                var m = t.Members[idx];
                bits += m.BitOffset;
                bitfield = m.BitfieldSize;
                steps.Add(new Access(t.Id, idx, m.Name.Length > 0 ? m.Name : null));
                fieldType = m.TypeId;
                t = btf.Resolve(m.TypeId);
            }
            else if (t.Kind == BtfKind.Array)
            {
                bool flexible = t.ElementCount == 0;
                if (idx >= t.ElementCount && !flexible) throw fail($"index {idx} is past the array of {t.ElementCount}");
                bits += idx * checked((long)btf.Size(t.ElementType)) * 8;
                bitfield = 0;
                steps.Add(new Access(t.Id, idx, null));
                fieldType = t.ElementType;
                t = btf.Resolve(t.ElementType);
            }
            else throw fail($"access {idx} into a {t.Kind.ToString().ToUpperInvariant()}");
        }
        return new Spec(btf, rootId, steps, bits, fieldType, bitfield);
    }

    /// <summary>
    /// The target spec of the same access, matched by member names (anonymous members are searched through, as
    /// libbpf's bpf_core_match_member does) and array indexes; null when the target has no such field.
    /// </summary>
    static Spec? Match(Spec local, BtfSpec target, uint rootId, int firstIndex)
    {
        var t = target.Resolve(rootId);
        long bits = firstIndex * checked((long)target.Size(t.Id)) * 8;
        uint fieldType = t.Id, bitfield = 0;
        var steps = new List<Access>();
        foreach (var step in local.Steps)
        {
            var lt = local.Btf.Type(step.TypeId);
            if (lt.Kind == BtfKind.Array)
            {
                if (t.Kind != BtfKind.Array || (t.ElementCount != 0 && step.Index >= t.ElementCount)) return null;
                bits += step.Index * checked((long)target.Size(t.ElementType)) * 8;
                bitfield = 0;
                fieldType = t.ElementType;
                steps.Add(new Access(t.Id, step.Index, null));
                t = target.Resolve(t.ElementType);
                continue;
            }
            if (t.Kind is not (BtfKind.Struct or BtfKind.Union)) return null;
            if (step.Name == null)
            {
                // An anonymous member locally: the target's member at the same position, if it is anonymous too.
                if (step.Index >= t.Members.Count || t.Members[step.Index].Name.Length != 0) return null;
                var am = t.Members[step.Index];
                bits += am.BitOffset;
                bitfield = am.BitfieldSize;
                fieldType = am.TypeId;
                t = target.Resolve(am.TypeId);
                continue;
            }
            if (FindMember(target, t, step.Name, 0) is not { } found) return null;
            bits += found.Bits;
            bitfield = found.Member.BitfieldSize;
            fieldType = found.Member.TypeId;
            var localField = local.Btf.Resolve(local.Btf.Type(step.TypeId).Members[step.Index].TypeId);
            t = target.Resolve(found.Member.TypeId);
            if (!FieldsCompatible(local.Btf, localField, target, t)) return null;
        }
        return new Spec(target, rootId, steps, bits, fieldType, bitfield);
    }

    static (BtfMember Member, long Bits)? FindMember(BtfSpec btf, BtfType t, string name, int depth)
    {
        if (depth > 32) return null;
        foreach (var m in t.Members)
        {
            if (m.Name == name) return (m, m.BitOffset);
            if (m.Name.Length == 0 && btf.Resolve(m.TypeId) is { Kind: BtfKind.Struct or BtfKind.Union } inner
                && FindMember(btf, inner, name, depth + 1) is { } found)
                return (found.Member, m.BitOffset + found.Bits);
        }
        return null;
    }

    /// <summary>libbpf's bpf_core_fields_are_compat: the same family of type (composite, scalar, pointer, array of such).</summary>
    static bool FieldsCompatible(BtfSpec lb, BtfType l, BtfSpec tb, BtfType t)
    {
        for (int depth = 0; depth < 32; depth++)
        {
            bool lComposite = l.Kind is BtfKind.Struct or BtfKind.Union or BtfKind.Fwd, tComposite = t.Kind is BtfKind.Struct or BtfKind.Union or BtfKind.Fwd;
            if (lComposite || tComposite) return lComposite && tComposite;
            bool lScalar = l.Kind is BtfKind.Int or BtfKind.Enum or BtfKind.Enum64 or BtfKind.Float;
            bool tScalar = t.Kind is BtfKind.Int or BtfKind.Enum or BtfKind.Enum64 or BtfKind.Float;
            if (lScalar || tScalar) return lScalar && tScalar && (l.Kind == BtfKind.Float) == (t.Kind == BtfKind.Float);
            if (l.Kind == BtfKind.Ptr || t.Kind == BtfKind.Ptr) return l.Kind == t.Kind;
            if (l.Kind != BtfKind.Array || t.Kind != BtfKind.Array) return false;
            l = lb.Resolve(l.ElementType);
            t = tb.Resolve(t.ElementType);
        }
        return false;
    }

    /// <summary>Type relocations: the same kind, and for <c>type_matches</c> every local member present by name.</summary>
    static bool TypesMatch(BtfSpec lb, BtfType l, BtfSpec tb, BtfType t, bool deep)
    {
        if (!deep || l.Kind is not (BtfKind.Struct or BtfKind.Union)) return true;
        foreach (var m in l.Members)
        {
            if (m.Name.Length == 0) continue;
            if (FindMember(tb, t, m.Name, 0) is not { } found) return false;
            if (!FieldsCompatible(lb, lb.Resolve(m.TypeId), tb, tb.Resolve(found.Member.TypeId))) return false;
        }
        return true;
    }

    /// <summary>A field relocation's value in one spec (libbpf's bpf_core_calc_field_relo) and, for byte_off, the field size.</summary>
    static (long Value, int Size) FieldValue(Spec spec, CoreRelocationKind kind, Func<string, CoreRelocationException> fail)
    {
        var btf = spec.Btf;
        var field = btf.Resolve(spec.FieldTypeId);
        long bitOff = spec.BitOffset;
        uint bitSize = spec.BitfieldSize;
        if (kind == CoreRelocationKind.FieldExists) return (1, 0);
        long byteSize = field.Kind is BtfKind.Struct or BtfKind.Union or BtfKind.Array or BtfKind.Int or BtfKind.Enum or BtfKind.Enum64 or BtfKind.Float or BtfKind.Ptr
            ? checked((long)btf.Size(field.Id)) : throw fail($"field of kind {field.Kind.ToString().ToUpperInvariant()} has no size");
        bool isBitfield = bitSize != 0 || (field.Kind == BtfKind.Int && (field.IntBits != byteSize * 8 || field.IntOffset != 0));
        if (isBitfield && bitSize == 0) bitSize = (uint)field.IntBits;
        long byteOff = bitOff / 8;
        if (isBitfield)
        {
            // The smallest naturally aligned load of at most 8 bytes that holds the bitfield.
            byteOff = bitOff / 8 / byteSize * byteSize;
            while (bitOff + bitSize - byteOff * 8 > byteSize * 8)
            {
                if (byteSize >= 8) throw fail("bitfield cannot be read with one load of 8 bytes or fewer");
                byteSize *= 2;
                byteOff = bitOff / 8 / byteSize * byteSize;
            }
        }
        else if (bitOff % 8 != 0) throw fail("field is not byte aligned");
        return kind switch
        {
            // A bitfield's byte offset is its container's, and its loads are not resized (libbpf leaves field_sz unset).
            CoreRelocationKind.FieldByteOffset => (byteOff, isBitfield ? 0 : (int)byteSize),
            CoreRelocationKind.FieldByteSize => (byteSize, 0),
            CoreRelocationKind.FieldSigned => (field.Kind == BtfKind.Int ? ((field.IntEncoding & 1) != 0 ? 1 : 0)
                : field.Kind is BtfKind.Enum or BtfKind.Enum64 ? (field.KindFlag ? 1 : 0) : 0, 0),
            CoreRelocationKind.FieldLShiftU64 => (64 - (bitOff + (isBitfield ? bitSize : byteSize * 8) - byteOff * 8), 0),
            _ => (64 - (isBitfield ? bitSize : byteSize * 8), 0),
        };
    }

    /// <summary>Rewrites the instruction's value from <paramref name="orig"/> to <paramref name="value"/> (libbpf's bpf_core_patch_insn).</summary>
    static void Patch(Instruction[] code, BtfCoreRelocation r, long orig, long value, int origSize, int newSize, Func<string, CoreRelocationException> fail)
    {
        int at = r.InstructionOffset;
        var ins = code[at];
        switch (ins.Class)
        {
            case InstructionClass.Alu or InstructionClass.Alu64:
                if ((ins.Opcode & 0x08) != 0) throw fail($"unexpected insn #{at} (ALU/ALU64) with a register source");
                if (ins.Imm != orig) throw fail($"unexpected insn #{at} (ALU/ALU64) value: got {ins.Imm}, exp {orig} -> {value}");
                if (value is < int.MinValue or > int.MaxValue) throw fail($"insn #{at} (ALU/ALU64) value {value} is too big");
                code[at] = ins with { Imm = (int)value };
                return;
            case InstructionClass.Ldx or InstructionClass.St or InstructionClass.Stx:
                if (ins.Offset != orig) throw fail($"unexpected insn #{at} (LDX/ST/STX) value: got {ins.Offset}, exp {orig} -> {value}");
                if (value is < short.MinValue or > short.MaxValue) throw fail($"insn #{at} (LDX/ST/STX) value {value} is too big");
                var patched = ins with { Offset = (short)value };
                if (r.Kind == CoreRelocationKind.FieldByteOffset && origSize != newSize)
                {
                    // The target field has another size: the load or store follows it, as libbpf adjusts BPF_SIZE.
                    int size = SizeOf(ins.Opcode);
                    if (size != origSize) throw fail($"unexpected mem size {size} of insn #{at} (expected {origSize})");
                    if (newSize is not (1 or 2 or 4 or 8)) throw fail($"insn #{at}: field size {newSize} cannot be loaded");
                    patched = patched with { Opcode = (byte)((ins.Opcode & ~0x18) | SizeBits(newSize)) };
                }
                code[at] = patched;
                return;
            case InstructionClass.Ld when ins.IsLdImm64 && at + 1 < code.Length:
                long imm = (long)((uint)ins.Imm | ((ulong)(uint)code[at + 1].Imm << 32));
                if (imm != orig) throw fail($"unexpected insn #{at} (LDIMM64) value: got {imm}, exp {orig} -> {value}");
                code[at] = ins with { Imm = (int)value };
                code[at + 1] = code[at + 1] with { Imm = (int)(value >> 32) };
                return;
            default:
                throw fail($"insn #{at} (opcode 0x{ins.Opcode:x2}) cannot be relocated");
        }
    }

    static int SizeOf(byte opcode) => ((opcode >> 3) & 3) switch { 0 => 4, 1 => 2, 2 => 1, _ => 8 };

    static int SizeBits(int size) => size switch { 4 => 0x00, 2 => 0x08, 1 => 0x10, _ => 0x18 };
}
