using BpfJit.Frontend.Btf;

namespace BpfJit.Verifier;

/// <summary>How a global function's argument is typed (the kernel's <c>bpf_subprog_arg_info.arg_type</c>).</summary>
internal enum FuncArgKind
{
    /// <summary>An integer or enum: any scalar (ARG_ANYTHING).</summary>
    Scalar,
    /// <summary>The program's context (ARG_PTR_TO_CTX).</summary>
    Ctx,
    /// <summary>Memory of <see cref="FuncArg.MemSize"/> bytes (ARG_PTR_TO_MEM), maybe NULL unless tagged arg:nonnull.</summary>
    Mem,
}

/// <summary>One argument of a global function.</summary>
internal readonly record struct FuncArg(FuncArgKind Kind, int MemSize, bool MaybeNull);

/// <summary>
/// A subprogram as BTF func_info describes it: its name, its linkage, and for a global function the
/// arguments its prototype gives (the kernel's <c>btf_prepare_func_args</c>), or the kernel-worded
/// reason the prototype cannot be used.
/// </summary>
internal sealed class FuncSignature
{
    /// <summary>BTF_FUNC_GLOBAL: verified on its own, from its prototype.</summary>
    public const uint LinkageGlobal = 1;

    public required string Name { get; init; }
    public required bool IsGlobal { get; init; }
    public FuncArg[] Args { get; init; } = s_noArgs;

    // Not Array.Empty (what `[]` gives): its static constructor over FuncArg is framework code RyuJIT compiles at a
    // process's first program (docs/perf.md, "Cold start").
    static readonly FuncArg[] s_noArgs = new FuncArg[0];
    /// <summary>Why the prototype cannot be used (logged before "Caller passes invalid args"), or null.</summary>
    public string? Error { get; init; }

    /// <summary>
    /// Reads the FUNC type <paramref name="funcTypeId"/> of <paramref name="btf"/>. Static functions are
    /// verified in their caller's context and need nothing more than the name.
    /// </summary>
    public static FuncSignature Read(BtfSpec btf, uint funcTypeId)
    {
        var fn = btf.Type(funcTypeId);
        bool global = fn.Kind == BtfKind.Func && fn.Linkage == LinkageGlobal;
        if (!global) return new FuncSignature { Name = fn.Name, IsGlobal = false };
        string? error = null;
        var args = Prepare(btf, fn, ref error);
        return new FuncSignature { Name = fn.Name, IsGlobal = true, Args = args, Error = error };
    }

    static FuncArg[] Prepare(BtfSpec btf, BtfType fn, ref string? error)
    {
        var proto = btf.Type(fn.SizeOrType);
        if (proto.Kind != BtfKind.FuncProto)
        {
            error = $"Invalid type of function {fn.Name}()";
            return s_noArgs;
        }
        // The parameters as the array the parser makes (an array read through IReadOnlyList is framework generic code).
        var ps = proto.Params as BtfParam[] ?? [.. proto.Params];
        if (ps.Length > 5)
        {
            error = $"Global function {fn.Name}() with {ps.Length} > 5 args. Buggy compiler.";
            return s_noArgs;
        }
        var ret = btf.Resolve(proto.SizeOrType);
        if (ret.Kind is not (BtfKind.Void or BtfKind.Int or BtfKind.Enum or BtfKind.Enum64))
        {
            error = $"Global function {fn.Name}() doesn't return scalar. Only those are supported.";
            return s_noArgs;
        }
        var args = new FuncArg[ps.Length];
        for (int i = 0; i < args.Length; i++)
        {
            // 'arg:' declaration tags on the parameter decide before the parameter's type does.
            var tags = btf.Types.Where(t => t.Kind == BtfKind.DeclTag && t.SizeOrType == fn.Id && t.ComponentIndex == i
                && t.Name.StartsWith("arg:", StringComparison.Ordinal)).Select(t => t.Name[4..]).ToList();
            if (tags.Any(t => t is not ("ctx" or "nonnull" or "nullable" or "trusted" or "untrusted" or "arena")))
            {
                error = $"arg#{i} has unsupported set of tags";
                return s_noArgs;
            }
            var t = btf.Resolve(ps[i].TypeId);
            if (t.Kind != BtfKind.Ptr)
            {
                if (tags.Count > 0)
                {
                    error = $"arg#{i} has pointer tag, but is not a pointer type";
                    return s_noArgs;
                }
                if (t.Kind is BtfKind.Int or BtfKind.Enum or BtfKind.Enum64)
                {
                    args[i] = new FuncArg(FuncArgKind.Scalar, 0, false);
                    continue;
                }
                error = $"Arg#{i} type {KindName(t)} in {fn.Name}() is not supported yet.";
                return s_noArgs;
            }
            var pointee = btf.Resolve(t.SizeOrType);
            if (tags.Contains("ctx") || (pointee.Kind == BtfKind.Struct && pointee.Name == "bpf_sk_lookup"))
            {
                if (tags.Any(x => x != "ctx"))
                {
                    error = $"arg#{i} has invalid combination of tags";
                    return s_noArgs;
                }
                // An arg:ctx pointer must point to the program type's context: void, the uapi struct or the
                // kernel's own (btf_validate_prog_ctx_type); another program type's context is refused.
                if (pointee.Kind != BtfKind.Void && !(pointee.Kind == BtfKind.Struct && pointee.Name is "bpf_sk_lookup" or "bpf_sk_lookup_kern"))
                {
                    error = $"arg#{i} should be `struct bpf_sk_lookup *`";
                    return s_noArgs;
                }
                args[i] = new FuncArg(FuncArgKind.Ctx, 0, false);
                continue;
            }
            // Trusted, untrusted and arena pointers need kernel BTF or an arena map, which SK_LOOKUP programs here do not have.
            if (tags.FirstOrDefault(x => x is "trusted" or "untrusted" or "arena") is { } unsupported)
            {
                error = $"arg#{i} tag arg:{unsupported} is not supported";
                return s_noArgs;
            }
            ulong size = 0;
            bool sized = pointee.Kind is not (BtfKind.Void or BtfKind.Fwd or BtfKind.FuncProto or BtfKind.Func);
            if (sized)
            {
                try { size = btf.Size(pointee.Id); }
                catch (Frontend.Elf.BpfObjectException) { sized = false; }
            }
            if (!sized)
            {
                error = $"arg#{i} reference type('{KindName(pointee)} {pointee.Name}') size cannot be determined: -22";
                return s_noArgs;
            }
            if (size > int.MaxValue)
            {
                error = $"arg#{i} reference type('{KindName(pointee)} {pointee.Name}') size cannot be determined: -7";
                return s_noArgs;
            }
            args[i] = new FuncArg(FuncArgKind.Mem, (int)size, MaybeNull: !tags.Contains("nonnull"));
        }
        return args;
    }

    /// <summary>The kernel's btf_type_str: the kind in capitals, UNKNOWN for void.</summary>
    static string KindName(BtfType t) => t.Kind switch
    {
        BtfKind.Void => "UNKNOWN",
        BtfKind.FuncProto => "FUNC_PROTO",
        BtfKind.DeclTag => "DECL_TAG",
        BtfKind.TypeTag => "TYPE_TAG",
        _ => t.Kind.ToString().ToUpperInvariant(),
    };
}
