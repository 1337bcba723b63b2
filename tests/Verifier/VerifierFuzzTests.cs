using BpfJit.Frontend;
using BpfJit.Verifier;
using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Verifier;

/// <summary>Random programs never crash the verifier: every input ends in a verdict.</summary>
[TestFixture]
public class VerifierFuzzTests
{
    static readonly MapInfo[] s_maps =
    [
        new("h", MapType.Hash, 4, 16, 8), new("a", MapType.Array, 4, 8, 1), new("s", MapType.SockMap, 4, 8, 8), new("rb", MapType.RingBuf, 0, 0, 4096),
    ];

    static readonly byte[] s_opcodes =
    [
        0x07, 0x0f, 0x17, 0x1f, 0x27, 0x2f, 0x37, 0x3f, 0x47, 0x4f, 0x57, 0x5f, 0x67, 0x6f, 0x77, 0x7f, 0x87, 0x97, 0x9f, 0xa7, 0xaf, 0xb7, 0xbf, 0xc7, 0xcf, 0xd4, 0xdc,
        0x04, 0x0c, 0x14, 0x1c, 0x24, 0x34, 0x44, 0x54, 0x64, 0x74, 0x84, 0xa4, 0xb4, 0xbc, 0xc4,
        0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91, 0x62, 0x6a, 0x72, 0x7a, 0x63, 0x6b, 0x73, 0x7b, 0xc3, 0xdb,
        0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x45, 0x55, 0x5d, 0x65, 0x75, 0xa5, 0xb5, 0xc5, 0xd5, 0x16, 0x1e, 0x26, 0x56, 0xa6,
        0x85, 0x95, 0x18,
    ];

    static readonly int[] s_helpers = [1, 2, 3, 5, 7, 12, 86, 124, 131, 132, 6, 46];

    static Instruction[] RandomProgram(Random rng, bool tame = false)
    {
        int n = tame ? rng.Next(1, 14) : rng.Next(2, 40);
        var list = new List<Instruction>();
        if (tame)
        {
            // Every register starts initialised: constants, the ctx, stack pointers, a lookup result.
            list.AddRange(Assembler.Assemble("mov %r6, %r1\nmov %r7, %r10\nadd %r7, -16\nstdw [%r10-8], 0\nstdw [%r10-16], 1\nmov %r8, 3\nmov %r9, 0\nmov %r0, 1\nmov %r2, 7\nmov %r3, %r10\nmov %r4, 0\nmov %r5, 2"));
            n += list.Count;
        }
        while (list.Count < n)
        {
            byte op = s_opcodes[rng.Next(s_opcodes.Length)];
            byte dst = (byte)rng.Next(rng.Next(4) == 0 ? 11 : 10), src = (byte)rng.Next(11);
            if (tame && rng.Next(3) > 0) op = s_tameOps[rng.Next(s_tameOps.Length)];
            short off = (short)(rng.Next(3) switch { 0 => rng.Next(-16, 16), 1 => -8 * rng.Next(1, 70), _ => rng.Next(0, 80) });
            int imm = rng.Next(3) switch { 0 => rng.Next(-4, 70), 1 => rng.Next(), _ => 0 };
            var ins = new Instruction(op, dst, src, off, imm);
            switch (op)
            {
                case 0x18:
                    int kind = rng.Next(4);
                    list.Add(new Instruction(op, dst, (byte)(kind switch { 0 => 0, 1 => 5, 2 => 6, _ => 1 }), 0, kind == 0 ? imm : rng.Next(s_maps.Length)));
                    list.Add(new Instruction(0, 0, 0, 0, kind == 2 ? rng.Next(8) : 0));
                    continue;
                case 0x85:
                    ins = rng.Next(6) == 0 ? new Instruction(op, 0, 1, 0, rng.Next(-3, 6)) : new Instruction(op, 0, 0, 0, s_helpers[rng.Next(s_helpers.Length)]);
                    break;
                case 0x95:
                    ins = new Instruction(op, 0, 0, 0, 0);
                    break;
                case 0xc3 or 0xdb:
                    ins = ins with { Imm = new[] { 0x00, 0x01, 0x40, 0xa1, 0xe1, 0xf1 }[rng.Next(6)] };
                    break;
                case 0xd4 or 0xdc:
                    ins = ins with { Src = 0, Offset = 0, Imm = new[] { 16, 32, 64 }[rng.Next(3)] };
                    break;
            }
            if ((op & 0x07) is 0x05 or 0x06 && op is not (0x85 or 0x95)) ins = ins with { Offset = (short)(tame ? rng.Next(0, 4) : rng.Next(-4, 6)) };
            if (tame && op == 0x05) continue;
            if (tame) ins = Normalize(ins, rng);
            list.Add(ins);
        }
        if (tame)
        {
            // Forward jumps may land on these: pad so every target exists, then return a valid verdict.
            for (int k = 0; k < 4; k++) list.Add(new Instruction(0xb7, 0, 0, 0, rng.Next(2)));
            list.Add(new Instruction(0x95, 0, 0, 0, 0));
        }
        else if (rng.Next(3) > 0) { list.Add(new Instruction(0xb7, 0, 0, 0, rng.Next(2))); list.Add(new Instruction(0x95, 0, 0, 0, 0)); }
        return [.. list];
    }

    /// <summary>Clears the reserved fields of an instruction so it decodes, and keeps registers in r0-r9.</summary>
    static Instruction Normalize(Instruction ins, Random rng)
    {
        if (ins.Dst == 10 && ins.Class is not (InstructionClass.St or InstructionClass.Stx)) ins = ins with { Dst = (byte)rng.Next(10) };
        bool x = ins.SourceIsReg;
        return ins.Class switch
        {
            InstructionClass.Alu or InstructionClass.Alu64 when ins.AluOp == AluOp.Neg => ins with { Opcode = (byte)(ins.Opcode & ~Op.SourceX), Src = 0, Offset = 0, Imm = 0 },
            InstructionClass.Alu or InstructionClass.Alu64 when ins.AluOp != AluOp.End =>
                x ? ins with { Imm = 0, Offset = 0 } : ins with { Src = 0, Offset = 0, Imm = ins.AluOp is AluOp.Lsh or AluOp.Rsh or AluOp.Arsh ? ins.Imm & 31 : ins.Imm },
            InstructionClass.Ldx => ins with { Imm = 0 },
            InstructionClass.St => ins with { Src = 0 },
            InstructionClass.Stx when ins.MemMode == MemMode.Mem => ins with { Imm = 0 },
            InstructionClass.Jmp or InstructionClass.Jmp32 when ins.IsBranch => x ? ins with { Imm = 0 } : ins with { Src = 0 },
            _ => ins,
        };
    }

    static readonly byte[] s_tameOps =
    [
        0x07, 0x0f, 0x1f, 0x57, 0x5f, 0x77, 0xb7, 0xbf, 0x61, 0x69, 0x71, 0x79, 0x62, 0x72, 0x7a, 0x7b, 0x15, 0x25, 0x2d, 0x55, 0xa5, 0x85, 0xdb, 0x16,
        0x04, 0x0c, 0x14, 0x24, 0x44, 0x54, 0x64, 0x74, 0x84, 0xa4, 0xb4, 0xbc, 0xc4, 0xcc, 0x27, 0x47, 0x67, 0xa7, 0xc7, 0x87,
        0x1e, 0x26, 0x2e, 0x36, 0x3e, 0x46, 0x56, 0x66, 0x6e, 0x76, 0xa6, 0xb6, 0xc6, 0xd6, 0x35, 0x45, 0x65, 0x75, 0xb5, 0xc5, 0xd5, 0x3d, 0x6d, 0xcd,
        0x37, 0x97, 0x34, 0x94,
    ];

    /// <summary>
    /// Differential fuzzing against the live kernel: random well-formed programs (initialised
    /// registers, forward jumps) are verified by both; every verdict must agree, except the
    /// documented deliberate difference (map pointer reads).
    /// </summary>
    [Test]
    [Category(Support.KernelOracle.Category)]
    public void RandomProgramsAgreeWithTheKernel([Values(11, 12)] int seed)
    {
        Support.KernelBpf.RequireAvailable();
        var fds = s_maps.Select(m => Support.KernelBpf.CreateMap((uint)m.Type, m.KeySize, m.ValueSize, m.MaxEntries, 0)).ToList();
        Assume.That(fds.All(fd => fd >= 0), "maps could not be created");
        try
        {
            var rng = new Random(seed);
            int agree = 0, accepted = 0, deliberate = 0;
            var disagreements = new List<string>();
            var reasons = new List<string>();
            for (int i = 0; i < 1500; i++)
            {
                var p = RandomProgram(rng, tame: true);
                var r = BpfJit.Verifier.Verifier.Verify(p, new VerifierOptions { Helpers = SkLookupTestHelpers.Table, Maps = s_maps });
                var k = Support.KernelBpf.Load(p, fds);
                if (r.Accepted) accepted++;
                else reasons.Add(System.Text.RegularExpressions.Regex.Replace(r.Error!, "[0-9-]+", "N"));
                if (r.Accepted == k.Accepted) { agree++; continue; }
                if (!r.Accepted && k.Accepted && r.Error != null && r.Error.Contains("'map_ptr'"))
                {
                    deliberate++;
                    continue;
                }
                disagreements.Add($"BpfJit {(r.Accepted ? "accepts" : "rejects: " + r.Error)}; kernel {(k.Accepted ? "accepts" : $"rejects (errno {k.Errno}): " + k.Log.Split('\n').Reverse().Skip(2).FirstOrDefault())}\n{Disassembler.Disassemble(p)}");
            }
            TestContext.Out.WriteLine(string.Join("; ", reasons.GroupBy(x => x).OrderByDescending(g => g.Count()).Take(8).Select(g => $"{g.Count()}x {g.Key}")));
            TestContext.Out.WriteLine($"seed {seed}: {agree} agree, {deliberate} deliberate, {disagreements.Count} disagree; {accepted} accepted by BpfJit");
            Support.KernelOracle.Agrees(disagreements.Count == 0, () => $"{disagreements.Count} programs:\n" + string.Join("\n----\n", disagreements.Take(3)));
        }
        finally
        {
            foreach (var fd in fds) Support.KernelBpf.Close(fd);
        }
    }

    /// <summary>A program stitched from random snippets: lookups, NULL checks, pointer arithmetic, bounded indexes, releases.</summary>
    static Instruction[] SnippetProgram(Random rng)
    {
        var sb = new System.Text.StringBuilder("mov %r6, %r1\nstdw [%r10-8], 0\nmov %r7, 0\nmov %r8, 0\nmov %r9, 0\n");
        int label = 0;
        bool useSub = false;
        string[] maps = ["0", "1", "2"];
        int steps = rng.Next(1, 7);
        for (int i = 0; i < steps; i++)
        {
            int off = rng.Next(-2, 20) / (rng.Next(2) + 1) * (rng.Next(3) == 0 ? 1 : 4);
            string L = $"l{label++}";
            string sz = new[] { "b", "h", "w", "dw" }[rng.Next(4)];
            switch (rng.Next(14))
            {
                case 13:
                    {
                        // A bpf-to-bpf call: the callee reads the ctx, writes the caller's stack, returns a scalar (or, rarely, a pointer).
                        useSub = true;
                        sb.Append($"mov %r1, %r6\nmov %r2, %r10\nadd %r2, -{8 * rng.Next(1, 3)}\ncall local sub\nmov %r{7 + rng.Next(3)}, %r0\n");
                        break;
                    }
                case 10:
                    {
                        // A bounded loop walking a value with a variable index.
                        int r = 7 + rng.Next(3);
                        sb.Append($"jeq %r{r}, 0, {L}\nmov %r4, 0\n{L}x:\nmov %r3, %r{r}\nadd %r3, %r4\nldx{sz} %r0, [%r3+0]\nadd %r4, {rng.Next(1, 6)}\njlt %r4, {rng.Next(1, 20)}, {L}x\n{L}:\n");
                        break;
                    }
                case 11:
                    {
                        // A diamond giving a register a different constant, or a pointer, on each side.
                        int r = 7 + rng.Next(3);
                        string other = rng.Next(2) == 0 ? $"mov %r{r}, {rng.Next(0, 16)}" : $"mov %r{r}, %r{7 + rng.Next(3)}";
                        sb.Append($"call 7\njeq %r0, 0, {L}a\nmov %r{r}, {rng.Next(0, 16)}\nja {L}\n{L}a:\n{other}\n{L}:\n");
                        break;
                    }
                case 12:
                    {
                        int r = 7 + rng.Next(3);
                        sb.Append($"mov %r2, %r{r}\nadd %r2, {rng.Next(0, 8)}\njgt %r2, {rng.Next(4, 16)}, {L}\njeq %r{r}, 0, {L}\nmov %r0, %r{7 + rng.Next(3)}\n{L}:\n");
                        break;
                    }
                case 0 or 1:
                    sb.Append($"mov %r2, %r10\nadd %r2, -{4 * rng.Next(1, 3)}\nlddw %r1, {maps[rng.Next(3)]}\ncall 1\nmov %r{7 + rng.Next(3)}, %r0\n");
                    break;
                case 2:
                    sb.Append($"jeq %r{7 + rng.Next(3)}, 0, {L}\n{L}:\n");
                    break;
                case 3:
                    { int r = 7 + rng.Next(3); sb.Append($"jeq %r{r}, 0, {L}\nldx{sz} %r0, [%r{r}+{off}]\n{L}:\n"); break; }
                case 4:
                    { int r = 7 + rng.Next(3); sb.Append($"jeq %r{r}, 0, {L}\nst{sz} [%r{r}+{off}], 1\n{L}:\n"); break; }
                case 5:
                    { int r = 7 + rng.Next(3); sb.Append($"jeq %r{r}, 0, {L}\nldxw %r0, [%r6+60]\nand %r0, {rng.Next(1, 20)}\nadd %r{r}, %r0\n{L}:\n"); break; }
                case 6:
                    { int r = 7 + rng.Next(3); sb.Append($"jeq %r{r}, 0, {L}\nadd %r{r}, {rng.Next(-4, 12)}\n{L}:\n"); break; }
                case 7:
                    { int r = 7 + rng.Next(3); sb.Append($"jeq %r{r}, 0, {L}\nmov %r1, %r{r}\ncall 86\nmov %r{r}, 0\n{L}:\n"); break; }
                case 8:
                    { int r = 7 + rng.Next(3); sb.Append($"mov %r1, %r6\nmov %r2, %r{r}\nmov %r3, 0\ncall 124\n"); break; }
                default:
                    sb.Append($"ldx{sz} %r0, [%r10-{8 * rng.Next(1, 3)}]\nstx{sz} [%r10-{8 * rng.Next(1, 3)}], %r{7 + rng.Next(3)}\n");
                    break;
            }
        }
        sb.Append("mov %r0, 0\nexit\n");
        if (useSub)
        {
            string ret = rng.Next(8) == 0 ? "mov %r0, %r2" : rng.Next(2) == 0 ? "and %r0, 7" : "mov %r0, 0";
            sb.Append($"sub:\nldxw %r0, [%r1+{new[] { 8, 12, 60, 64, 70, 36 }[rng.Next(6)]}]\nst{new[] { "w", "dw", "b" }[rng.Next(3)]} [%r2+{rng.Next(-2, 6)}], 1\n{ret}\nexit\n");
        }
        var p = Assembler.Assemble(sb.ToString());
        for (int i = 0; i < p.Length; i++)
            if (p[i].IsLdImm64) { p[i] = p[i] with { Src = (byte)Ld64Source.MapIdx }; i++; }
        return p;
    }

    static readonly MapInfo[] s_snippetMaps = [new("h", MapType.Hash, 4, 16, 8), new("a", MapType.Array, 4, 12, 2), new("s", MapType.SockMap, 4, 8, 8)];

    /// <summary>Differential fuzzing of map values, NULL checks and references against the kernel.</summary>
    [Test]
    [Category(Support.KernelOracle.Category)]
    public void SnippetProgramsAgreeWithTheKernel([Values(21, 22)] int seed)
    {
        Support.KernelBpf.RequireAvailable();
        var fds = s_snippetMaps.Select(m => Support.KernelBpf.CreateMap((uint)m.Type, m.KeySize, m.ValueSize, m.MaxEntries, 0)).ToList();
        Assume.That(fds.All(fd => fd >= 0), "maps could not be created");
        try
        {
            var rng = new Random(seed);
            int agree = 0, accepted = 0, deliberate = 0;
            var disagreements = new List<string>();
            for (int i = 0; i < 1500; i++)
            {
                var p = SnippetProgram(rng);
                var r = BpfJit.Verifier.Verifier.Verify(p, new VerifierOptions { Helpers = SkLookupTestHelpers.Table, Maps = s_snippetMaps });
                var k = Support.KernelBpf.Load(p, fds);
                if (r.Accepted) accepted++;
                if (r.Accepted == k.Accepted) { agree++; continue; }
                // Deliberate: the kernel's NULL-argument imprecision (docs/verifier.md).
                if (!r.Accepted && k.Accepted && r.Error != null && r.Error.Contains("type=scalar expected=sock")) { deliberate++; continue; }
                disagreements.Add($"BpfJit {(r.Accepted ? "accepts" : "rejects: " + r.Error)}; kernel {(k.Accepted ? "accepts" : $"rejects (errno {k.Errno}): " + k.Log.Split('\n').Reverse().Skip(2).FirstOrDefault())}\n{Disassembler.Disassemble(p)}");
            }
            TestContext.Out.WriteLine($"seed {seed}: {agree} agree, {deliberate} deliberate, {disagreements.Count} disagree; {accepted} accepted by BpfJit");
            Support.KernelOracle.Agrees(disagreements.Count == 0, () => $"{disagreements.Count} programs:\n" + string.Join("\n----\n", disagreements.Take(3)));
        }
        finally
        {
            foreach (var fd in fds) Support.KernelBpf.Close(fd);
        }
    }

    /// <summary>Thousands of random programs: each gets a verdict, never an exception.</summary>
    [Test]
    public void RandomProgramsGetAVerdict([Values(1, 2, 3)] int seed)
    {
        var rng = new Random(seed);
        int accepted = 0;
        for (int i = 0; i < 3000; i++)
        {
            var p = RandomProgram(rng);
            VerifierResult r = null!;
            Assert.DoesNotThrow(() => r = BpfJit.Verifier.Verifier.Verify(p, new VerifierOptions { Helpers = SkLookupTestHelpers.Table, Maps = s_maps, LogLevel = 2 }),
                Disassembler.Disassemble(p));
            if (r.Accepted) accepted++;
            else Assert.That(r.Error, Is.Not.Null.And.Not.Empty);
        }
        TestContext.Out.WriteLine($"{accepted} of 3000 accepted");
    }
}
