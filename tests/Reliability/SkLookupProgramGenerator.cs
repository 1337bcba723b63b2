using System.Text;
using BpfJit.Frontend;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Reliability;

/// <summary>
/// Plausible SK_LOOKUP programs, stitched from snippets a program author (or a careless one) writes:
/// context loads of every size and offset, map lookups with and without NULL checks, socket lookups
/// from a SOCKMAP with and without release, ring-buffer records kept or forgotten, arithmetic mixing
/// pointers and scalars, every jump kind in 64- and 32-bit form, bounded and unbounded loops, stack
/// spills of pointers, atomics, bpf-to-bpf calls, bpf_loop callbacks, and helper calls with right and
/// wrong arguments. Registers r6 (ctx) and r7–r9 carry state between snippets. Nondeterministic helpers
/// (time, random) are never called, so both engines must compute the same results.
/// </summary>
public static class SkLookupProgramGenerator
{
    /// <summary>Map indexes of <see cref="ProgramFuzzer.MapShapes"/>.</summary>
    const int HashMap = 0, ArrayMap = 1, SockMap = 2, RingBuf = 3, LpmMap = 4;

    static readonly string[] s_sizes = ["b", "h", "w", "dw"];
    static readonly string[] s_jumps = ["jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset"];

    /// <summary>One program as assembly (with <see cref="MapPrograms"/>' <c>ldmap</c>/<c>ldfunc</c>) and its instructions.</summary>
    public static (string Source, Instruction[] Code) Generate(Random rng)
    {
        var sb = new StringBuilder();
        sb.Append("mov %r6, %r1\nstdw [%r10-8], 0\nstdw [%r10-16], 0\nstdw [%r10-24], 0\nmov %r7, 0\nmov %r8, 0\nmov %r9, 0\n");
        bool sub = false, callback = false;
        int steps = rng.Next(1, 9), label = 0;
        for (int i = 0; i < steps; i++)
            Snippet(sb, rng, $"l{label++}", ref sub, ref callback);
        sb.Append(rng.Next(4) switch
        {
            0 => "mov %r0, 0\nexit\n",
            1 => "mov %r0, 1\nexit\n",
            2 => $"mov %r0, %r{R(rng)}\nexit\n",     // a value or a pointer: the verifier decides
            _ => $"mov %r0, %r{R(rng)}\nand %r0, 1\nexit\n",
        });
        if (sub)
            sb.Append($"sub:\n{CtxLoad(rng, 0, "%r1")}st{Size(rng)} [%r2+{rng.Next(-4, 10)}], 7\nand %r0, {rng.Next(1, 4)}\nexit\n");
        if (callback)
            sb.Append($"cb:\nldx{Size(rng)} %r0, [%r2+{rng.Next(-2, 10)}]\nlock add [%r2+0], %r1\nmov %r0, {(rng.Next(4) == 0 ? 1 : 0)}\nexit\n");
        string source = sb.ToString();
        return (source, MapPrograms.Assemble(source));
    }

    static int R(Random rng) => 7 + rng.Next(3);

    /// <summary>A ctx load: usually a size and an offset aligned to it inside the struct, sometimes anything.</summary>
    static string CtxLoad(Random rng, int dst, string baseReg = "%r6")
    {
        if (rng.Next(4) == 0) return $"ldx{Size(rng)} %r{dst}, [{baseReg}+{CtxOffset(rng)}]\n";
        int size = rng.Next(4);
        int offset = size switch { 0 => rng.Next(0, 72), 1 => rng.Next(0, 36) * 2, 2 => rng.Next(0, 18) * 4, _ => 0 };
        return $"ldx{s_sizes[size]} %r{dst}, [{baseReg}+{offset}]\n";
    }
    static string Size(Random rng) => s_sizes[rng.Next(4)];

    /// <summary>Mostly the 72-byte struct's fields, sometimes anything up to 88 or negative.</summary>
    static int CtxOffset(Random rng) => rng.Next(6) switch
    {
        0 => rng.Next(-8, 88),
        1 => rng.Next(0, 72),
        _ => new[] { 0, 4, 8, 10, 12, 14, 16, 20, 24, 28, 32, 36, 38, 40, 44, 56, 60, 62, 64, 68 }[rng.Next(20)],
    };

    /// <summary>A value offset: usually inside a 12–16 byte value, sometimes past it or before it.</summary>
    static int ValueOffset(Random rng) => rng.Next(5) == 0 ? rng.Next(-4, 24) : rng.Next(0, 12);

    static string Jump(Random rng) => s_jumps[rng.Next(s_jumps.Length)] + (rng.Next(4) == 0 ? "32" : "");

    static void Lookup(StringBuilder sb, Random rng, int map, int reg, int keySlot = 4)
    {
        string key = map == LpmMap ? $"stw [%r10-8], 24\nstw [%r10-4], {rng.Next(0, 3) << 8 | 10}\n" : $"stw [%r10-{keySlot}], {rng.Next(-1, 5)}\n";
        sb.Append($"{key}mov %r2, %r10\nadd %r2, -{(map == LpmMap ? 8 : keySlot)}\nldmap %r1, {map}\ncall 1\nmov %r{reg}, %r0\n");
    }

    static void Snippet(StringBuilder sb, Random rng, string L, ref bool sub, ref bool callback)
    {
        int r = R(rng), o = R(rng);
        switch (rng.Next(22))
        {
            case 0 or 1:
                // A ctx load of any size at any offset (most valid, some not).
                sb.Append(CtxLoad(rng, r));
                break;
            case 2:
                // Writing the ctx (only rejected) or loading through a moved ctx pointer.
                if (rng.Next(2) == 0) sb.Append($"st{Size(rng)} [%r6+{CtxOffset(rng)}], 1\n");
                else sb.Append($"mov %r1, %r6\nadd %r1, {rng.Next(-4, 16)}\nldx{Size(rng)} %r{r}, [%r1+{CtxOffset(rng)}]\n");
                break;
            case 3 or 4:
                // A map lookup, NULL-checked, then a load or store in the value.
                Lookup(sb, rng, rng.Next(3) switch { 0 => HashMap, 1 => ArrayMap, _ => LpmMap }, r);
                sb.Append($"jeq %r{r}, 0, {L}\n");
                if (rng.Next(2) == 0) sb.Append($"ldx{Size(rng)} %r{o}, [%r{r}+{ValueOffset(rng)}]\n");
                else sb.Append($"st{Size(rng)} [%r{r}+{ValueOffset(rng)}], {rng.Next(100)}\n");
                sb.Append($"{L}:\n");
                break;
            case 5:
                // A map lookup used without a NULL check.
                Lookup(sb, rng, rng.Next(2) == 0 ? HashMap : ArrayMap, r);
                sb.Append($"ldx{Size(rng)} %r{o}, [%r{r}+{ValueOffset(rng)}]\n");
                break;
            case 6 or 7:
                {
                    // A socket from the SOCKMAP: assigned, released, or (sometimes) leaked.
                    Lookup(sb, rng, SockMap, r);
                    sb.Append($"jeq %r{r}, 0, {L}\n");
                    if (rng.Next(3) == 0) sb.Append($"ldx{(rng.Next(2) == 0 ? "w" : "b")} %r{o}, [%r{r}+{rng.Next(0, 21) * 4}]\n");
                    if (rng.Next(2) == 0) sb.Append($"mov %r1, %r6\nmov %r2, %r{r}\nmov %r3, {(rng.Next(3) == 0 ? rng.Next(0, 4) : 0)}\ncall 124\n");
                    if (rng.Next(5) > 0) sb.Append($"mov %r1, %r{r}\ncall 86\n");
                    sb.Append($"mov %r{r}, 0\n{L}:\n");
                    break;
                }
            case 8:
                {
                    // A ring-buffer record: written, then submitted, discarded or forgotten.
                    int size = rng.Next(1, 5) * 8;
                    sb.Append($"ldmap %r1, {RingBuf}\nmov %r2, {size}\nmov %r3, 0\ncall 131\njeq %r0, 0, {L}\n");
                    sb.Append($"stx{Size(rng)} [%r0+{rng.Next(-2, size + 4)}], %r{r}\n");
                    int end = rng.Next(6);
                    if (end < 5) sb.Append($"mov %r1, %r0\nmov %r2, 0\ncall {(end < 3 ? 132 : 133)}\n");
                    sb.Append($"{L}:\n");
                    break;
                }
            case 9:
                // Pointer plus a bounded (or unbounded) scalar from the ctx.
                sb.Append($"ldxw %r1, [%r6+{new[] { 36, 60, 16, 64 }[rng.Next(4)]}]\n");
                if (rng.Next(3) > 0) sb.Append($"and %r1, {rng.Next(1, 16)}\n");
                sb.Append($"jeq %r{r}, 0, {L}\nadd %r{r}, %r1\nldx{Size(rng)} %r0, [%r{r}+0]\n{L}:\n");
                break;
            case 10:
                // Scalar arithmetic, or arithmetic that mixes pointers.
                sb.Append(rng.Next(4) switch
                {
                    0 => $"add %r{r}, {rng.Next(-8, 16)}\n",
                    1 => $"sub %r{r}, %r{o}\n",
                    2 => $"mul %r{r}, {rng.Next(1, 5)}\n",
                    _ => $"mov %r{r}, %r10\nadd %r{r}, -{rng.Next(1, 5) * 8}\n",
                });
                break;
            case 11 or 12:
                {
                    // Every conditional jump, register or immediate, 64- or 32-bit, around a load.
                    string operand = rng.Next(2) == 0 ? $"%r{o}" : rng.Next(-2, 70).ToString();
                    sb.Append($"{Jump(rng)} %r{r}, {operand}, {L}\n{CtxLoad(rng, o)}{L}:\n");
                    break;
                }
            case 13:
                {
                    // A bounded loop over the stack.
                    int n = rng.Next(1, 6);
                    sb.Append($"mov %r4, 0\n{L}:\nmov %r3, %r10\nadd %r3, -24\nadd %r3, %r4\nldxb %r0, [%r3+0]\nadd %r4, 1\njlt %r4, {n}, {L}\n");
                    break;
                }
            case 14:
                {
                    // A loop whose bound comes from the ctx: bounded by a mask, or waiting on a value that never
                    // changes (an infinite loop). A loop counting down from an unmasked u32 is left out: both
                    // verifiers reject it only after a million steps (seconds each), too slow for a batch.
                    string field = $"[%r6+{new[] { 60, 16, 36 }[rng.Next(3)]}]";
                    if (rng.Next(4) > 0) sb.Append($"ldxw %r4, {field}\nand %r4, 7\n{L}:\nsub %r4, 1\njsgt %r4, 0, {L}\n");
                    else sb.Append($"{L}:\nldxw %r4, {field}\njne %r4, {rng.Next(0, 3)}, {L}\n");
                    break;
                }
            case 15:
                // Spill a register (maybe a pointer) and fill it elsewhere, then use it.
                sb.Append($"stxdw [%r10-{rng.Next(1, 4) * 8}], %r{r}\nldxdw %r{o}, [%r10-{rng.Next(1, 4) * 8}]\n");
                if (rng.Next(2) == 0) sb.Append($"jeq %r{o}, 0, {L}\nldx{Size(rng)} %r0, [%r{o}+0]\n{L}:\n");
                break;
            case 16:
                // Atomics on the stack or in a value.
                sb.Append(rng.Next(2) == 0
                    ? $"mov %r1, 1\nlock {(rng.Next(2) == 0 ? "fetch add" : "xchg")} [%r10-{rng.Next(1, 4) * 8}], %r1\n"
                    : $"jeq %r{r}, 0, {L}\nmov %r1, 1\nlock add{(rng.Next(2) == 0 ? "32" : "")} [%r{r}+{rng.Next(0, 3) * 4}], %r1\n{L}:\n");
                break;
            case 17:
                // Helper calls with the wrong arguments.
                sb.Append(rng.Next(4) switch
                {
                    0 => $"mov %r1, %r{r}\nmov %r2, %r10\nadd %r2, -4\ncall 1\n",
                    1 => $"mov %r1, %r6\nmov %r2, %r{r}\nmov %r3, 0\ncall 124\n",
                    2 => $"mov %r1, %r{r}\ncall 86\n",
                    _ => $"ldmap %r1, {HashMap}\nmov %r2, %r10\nadd %r2, -4\nmov %r3, %r10\nadd %r3, -{rng.Next(1, 4) * 8}\nmov %r4, 0\ncall 2\n",
                });
                break;
            case 18:
                // A map update and delete with the right arguments.
                sb.Append($"stw [%r10-4], {rng.Next(0, 4)}\nldmap %r1, {HashMap}\nmov %r2, %r10\nadd %r2, -4\nmov %r3, %r10\nadd %r3, -24\nmov %r4, 0\ncall {(rng.Next(3) == 0 ? 3 : 2)}\n");
                break;
            case 19:
                // A bpf-to-bpf call: the callee reads the ctx and writes the caller's stack.
                sub = true;
                sb.Append($"mov %r1, %r6\nmov %r2, %r10\nadd %r2, -{rng.Next(1, 4) * 8}\ncall local sub\nmov %r{r}, %r0\n");
                break;
            case 20 when rng.Next(3) == 0:
                // bpf_loop with a callback that reads and updates the caller's stack.
                callback = true;
                sb.Append($"mov %r1, {rng.Next(0, 4)}\nldfunc %r2, cb\nmov %r3, %r10\nadd %r3, -{rng.Next(1, 4) * 8}\nmov %r4, 0\ncall 181\n");
                break;
            case 21 when rng.Next(8) == 0:
                // A ja over dead code (rejected: unreachable instruction).
                sb.Append($"ja {L}\nldx{Size(rng)} %r0, [%r{r}+{rng.Next(0, 8)}]\n{L}:\n");
                break;
            default:
                // Both arms of a diamond joined by a ja: r gets a constant or stays what it was.
                sb.Append($"{Jump(rng)} %r{o}, {rng.Next(0, 4)}, {L}a\nmov %r{r}, {rng.Next(0, 16)}\nja {L}\n{L}a:\n{CtxLoad(rng, o)}{L}:\n");
                break;
        }
    }
}
