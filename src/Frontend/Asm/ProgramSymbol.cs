namespace BpfJit.Frontend;

/// <summary>
/// The names the kernel gives a program's JIT images in /proc/kallsyms, perf and stack traces
/// (bpf_get_prog_name): <c>bpf_prog_&lt;tag&gt;_&lt;name&gt;</c>, the tag as <see cref="ProgramTag"/> computes it and the
/// program's name as BPF_PROG_LOAD keeps it (<see cref="ObjName"/>); <c>bpf_prog_&lt;tag&gt;</c> for a program with
/// no name. A program loaded with BTF func info is named after its main function's BTF name instead, in full
/// (<see cref="OfBtf"/>). BpfJit names each compiled program's DynamicMethod this way, so a profiler tells
/// programs apart.
/// </summary>
/// <remarks>
/// The kernel JITs a program with bpf-to-bpf calls as one image per subprogram (jit_subprogs), each
/// named <c>bpf_prog_&lt;its own tag&gt;_F</c> without BTF (with BTF func_info, after the function's BTF name).
/// BpfJit compiles local calls into the caller's method and only callbacks (BPF_PSEUDO_FUNC targets) as
/// methods of their own: <see cref="Subprogram"/> names those after the program they belong to and the
/// subprogram's index, the verifier log's <c>func#N</c>, so a profile ties them to their program.
/// </remarks>
public static class ProgramSymbol
{
    /// <summary>The kernel's KSYM_NAME_LEN (since 6.1): a symbol is at most one less, the NUL taking the last byte.</summary>
    const int KsymNameLength = 512;

    /// <summary>
    /// A program name as the kernel keeps it: at most <see cref="BpfAbi.ObjNameLength"/> - 1 characters (libbpf
    /// truncates longer names to fit BPF_OBJ_NAME_LEN), of <c>[A-Za-z0-9_.]</c> only (bpf_obj_name_cpy
    /// accepts nothing else; BpfJit leaves the other characters out rather than refuse the program).
    /// </summary>
    public static string ObjName(string? name)
    {
        if (string.IsNullOrEmpty(name)) return "";
        Span<char> kept = stackalloc char[BpfAbi.ObjNameLength - 1];
        int n = 0;
        foreach (char c in name)
        {
            if (n == kept.Length) break;
            if (char.IsAsciiLetterOrDigit(c) || c is '_' or '.') kept[n++] = c;
        }
        return new string(kept[..n]);
    }

    /// <summary><c>bpf_prog_&lt;tag&gt;_&lt;name&gt;</c>, or <c>bpf_prog_&lt;tag&gt;</c> when <paramref name="name"/> keeps no character.</summary>
    public static string Of(string tag, string? name)
    {
        ArgumentNullException.ThrowIfNull(tag);
        string kept = ObjName(name);
        return kept.Length == 0 ? $"bpf_prog_{tag}" : $"bpf_prog_{tag}_{kept}";
    }

    /// <summary>
    /// <c>bpf_prog_&lt;tag&gt;_&lt;function&gt;</c> for a program loaded with BTF func info: the kernel then ignores the
    /// 15-character name and takes the main function's BTF name, cut only at KSYM_NAME_LEN.
    /// </summary>
    public static string OfBtf(string tag, string function)
    {
        ArgumentNullException.ThrowIfNull(tag);
        ArgumentNullException.ThrowIfNull(function);
        string symbol = $"bpf_prog_{tag}_{function}";
        return symbol.Length < KsymNameLength ? symbol : symbol[..(KsymNameLength - 1)];
    }

    /// <summary>The symbol of <paramref name="slots"/> as loaded (map references not yet bound), named <paramref name="name"/>.</summary>
    public static string Of(ReadOnlySpan<Instruction> slots, string? name) => Of(ProgramTag.Compute(slots), name);

    /// <summary>
    /// The symbol of subprogram <paramref name="index"/> (1 and up, in slot order; the verifier log's func#N)
    /// of the program named <paramref name="program"/>, when it is compiled as a method of its own:
    /// <c>&lt;program&gt;_F&lt;index&gt;</c>.
    /// </summary>
    public static string Subprogram(string program, int index)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(index);
        return $"{program}_F{index}";
    }
}
