using System.Reflection;
using System.Text.RegularExpressions;
using BpfJit.Frontend;
using BpfJit.IlEmitter;
using BpfJit.Runtime;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Runtime;

/// <summary>
/// The opcode table (<see cref="Op"/>) and the concrete semantics (<see cref="Semantics"/>) are one: every ALU and
/// conditional-jump opcode of the table runs on both engines to what <see cref="Semantics.Alu(Instruction, ulong, ulong)"/>
/// and <see cref="Semantics.Condition"/> (the verifier soundness tests' oracle) say; the dispatches follow the table's
/// order; and no file under src/ but the table writes an opcode as a number.
/// </summary>
[TestFixture]
public class SemanticsTests
{
    static readonly string[] s_masks = [nameof(Op.ClassMask), nameof(Op.SourceX), nameof(Op.OpMask), nameof(Op.SizeMask), nameof(Op.ModeMask)];

    /// <summary>The table's opcodes by name, in declaration order (the order the dispatches follow).</summary>
    static List<(string Name, byte Code)> Table() =>
        typeof(Op).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral && f.FieldType == typeof(byte) && !s_masks.Contains(f.Name))
            .OrderBy(f => f.MetadataToken)
            .Select(f => (f.Name, (byte)f.GetRawConstantValue()!)).ToList();

    static readonly (ulong A, ulong B)[] s_pairs =
    [
        (7, 0), (0, 0), (1UL << 63, ulong.MaxValue), (0xffffffff_80000000, 0xffffffff_ffffffff), (0x12345678_9abcdef0, 3),
        (unchecked((ulong)-5L), 3), (5, unchecked((ulong)-3L)), (0x1_00000005, 0x1_00000000), (0xdeadbeef_cafef00d, 65),
        (0x80, 0x1_00000021), (0x8000, 0x7fffffff), (ulong.MaxValue, 1),
    ];

    static readonly int[] s_imms = [0, 1, -1, 3, 31, 32, 63, 64, int.MinValue, int.MaxValue, -3];

    static IEnumerable<IBpfEngine> Engines() => [InterpreterEngine.Instance, JitEngine.Instance];

    [Test]
    public void TheTableNamesEachOpcodeOnce()
    {
        var table = Table();
        Assert.That(table.Select(t => t.Code).Distinct().Count(), Is.EqualTo(table.Count), "two names for one opcode");
        Assert.That(table, Has.Count.EqualTo(121), "ALU64 26, ALU 27, JMP 27, JMP32 23, LD 1, LDX 7, ST 4, STX 4, atomics 2");
        // The table is in the kernel's order: ALU64, ALU, JMP, JMP32, LD, LDX, ST, STX (atomics last), op codes rising within each.
        InstructionClass[] classes = [InstructionClass.Alu64, InstructionClass.Alu, InstructionClass.Jmp, InstructionClass.Jmp32,
                                      InstructionClass.Ld, InstructionClass.Ldx, InstructionClass.St, InstructionClass.Stx];
        var keys = table.Select(t => (Array.IndexOf(classes, (InstructionClass)(t.Code & Op.ClassMask)), t.Code & Op.OpMask & (IsAluOrJmp(t.Code) ? 0xff : 0))).ToList();
        for (int i = 1; i < keys.Count; i++)
            Assert.That(keys[i].CompareTo(keys[i - 1]), Is.GreaterThanOrEqualTo(0), $"{table[i].Name} comes before {table[i - 1].Name} in the kernel's order");
    }

    static bool IsAluOrJmp(byte code) => (InstructionClass)(code & Op.ClassMask) is InstructionClass.Alu or InstructionClass.Alu64 or InstructionClass.Jmp or InstructionClass.Jmp32;

    /// <summary>Every ALU and ALU64 opcode, register and immediate sources, sdiv/smod and movsx offsets, END widths.</summary>
    [TestCaseSource(nameof(Engines))]
    public void EveryAluOpcodeRunsToItsSemantics(IBpfEngine engine)
    {
        int checkedCount = 0;
        foreach (var (name, code) in Table().Where(t => (InstructionClass)(t.Code & Op.ClassMask) is InstructionClass.Alu or InstructionClass.Alu64))
        {
            var op = (AluOp)(code & Op.OpMask);
            bool reg = (code & Op.SourceX) != 0 && op != AluOp.End;
            short[] offsets = op switch
            {
                AluOp.Div or AluOp.Mod => [0, 1],
                AluOp.Mov when reg => (InstructionClass)(code & Op.ClassMask) == InstructionClass.Alu64 ? [0, 8, 16, 32] : [0, 8, 16],
                _ => [0],
            };
            int[] imms = op == AluOp.End ? [16, 32, 64] : reg || op == AluOp.Neg ? [0] : s_imms;
            foreach (short off in offsets)
                foreach (int imm in imms)
                {
                    if (!reg && op is AluOp.Div or AluOp.Mod && imm == 0) continue;     // rejected before running: "div by zero"
                    if (!reg && op is AluOp.Lsh or AluOp.Rsh or AluOp.Arsh && (imm < 0 || imm >= 32)) continue;   // invalid shift
                    var ins = new Instruction(code, 1, (byte)(reg ? 2 : 0), off, imm);
                    // r1 = r1 OP (r2 | imm); r0 = r1; exit
                    var entry = engine.Prepare([ins, Ins.Mov64Reg(0, 1), Ins.Exit()], HelperTable.Bench());
                    foreach (var (a, b) in s_pairs)
                    {
                        ulong expected = Semantics.Alu(ins, a, reg ? b : (ulong)(long)imm);
                        Assert.That(entry(a, b), Is.EqualTo(expected), $"{engine.Name}: {name} {Disassembler.Format([ins], 0)} with r1={a:x} r2={b:x}");
                        checkedCount++;
                    }
                }
        }
        Assert.That(checkedCount, Is.GreaterThan(1000));
    }

    /// <summary>Every conditional JMP and JMP32 opcode with register and immediate sources.</summary>
    [TestCaseSource(nameof(Engines))]
    public void EveryConditionalJumpRunsToItsSemantics(IBpfEngine engine)
    {
        int checkedCount = 0;
        foreach (var (name, code) in Table().Where(t => (InstructionClass)(t.Code & Op.ClassMask) is InstructionClass.Jmp or InstructionClass.Jmp32))
        {
            var op = (JmpOp)(code & Op.OpMask);
            if (op is JmpOp.Ja or JmpOp.Call or JmpOp.Exit or JmpOp.Jcond) continue;
            bool reg = (code & Op.SourceX) != 0, jmp32 = (InstructionClass)(code & Op.ClassMask) == InstructionClass.Jmp32;
            foreach (int imm in reg ? [0] : s_imms)
            {
                var ins = new Instruction(code, 1, (byte)(reg ? 2 : 0), 1, imm);
                // r0 = 0; if (r1 OP (r2 | imm)) goto +1; exit; r0 = 1; exit
                var entry = engine.Prepare([Ins.Mov64(0, 0), ins, Ins.Exit(), Ins.Mov64(0, 1), Ins.Exit()], HelperTable.Bench());
                foreach (var (a, b) in s_pairs.Append((3UL, 3UL)).Append((0xffffffff_00000003UL, 3UL)))
                {
                    bool expected = Semantics.Condition(op, jmp32, a, reg ? b : (ulong)(long)imm);
                    Assert.That(entry(a, b), Is.EqualTo(expected ? 1UL : 0UL), $"{engine.Name}: {name} with r1={a:x} r2={b:x} imm={imm}");
                    checkedCount++;
                }
            }
        }
        Assert.That(checkedCount, Is.GreaterThan(500));
    }

    /// <summary>The interpreter's dispatch names the table's opcodes in the table's order.</summary>
    [Test]
    public void TheInterpreterFollowsTheTable()
    {
        var order = Table().Select(t => t.Name).ToList();
        string source = File.ReadAllText(Path.Combine(Paths.RepoRoot, "src/Runtime/Interpreter/Interpreter.cs"));
        var cases = Regex.Matches(source, @"case Op\.(\w+)(?: or Op\.(\w+))?:").SelectMany(m => m.Groups.Values.Skip(1).Where(g => g.Success).Select(g => g.Value)).ToList();
        Assert.That(cases, Is.EqualTo(order), "the interpreter's cases, in order, are the opcode table");
    }

    /// <summary>The emitter's and the verifier's switches over operations list them in the table's (op code) order.</summary>
    [TestCase("src/IlEmitter/Emit/AluEmitter.cs", "AluOp")]
    [TestCase("src/Verifier/ScalarAlu.cs", "AluOp")]
    [TestCase("src/Verifier/Checker.Alu.cs", "AluOp")]
    [TestCase("src/IlEmitter/Emit/JumpEmitter.cs", "JmpOp")]
    [TestCase("src/Verifier/Branches.cs", "JmpOp")]
    [TestCase("src/Verifier/Checker.Jmp.cs", "JmpOp")]
    public void SwitchesFollowTheTable(string file, string enumName)
    {
        var type = enumName == "AluOp" ? typeof(AluOp) : typeof(JmpOp);
        string source = File.ReadAllText(Path.Combine(Paths.RepoRoot, file));
        // Each switch: a run of `case X.Y` / `X.Y =>` arms; arms of one switch rise by op code.
        foreach (Match sw in Regex.Matches(source, @"switch[^{]*\{(?<body>(?:[^{}]|\{[^{}]*\})*)\}"))
        {
            var arms = Regex.Matches(sw.Groups["body"].Value, $@"(?m)^\s*(?:case )?{enumName}\.(\w+)(?: or {enumName}\.\w+)*(?: when [^:]*)?(?::|\s*=>)")
                .Select(m => (string)m.Groups[1].Value).ToList();
            var values = arms.Select(a => Convert.ToInt32(Enum.Parse(type, a))).ToList();
            Assert.That(values, Is.Ordered, $"{file}: a switch lists {string.Join(", ", arms)}, not in op-code order");
        }
    }

    /// <summary>No file under src/ but the table writes an opcode byte as a number (a case label, a comparison, a constructor).</summary>
    [Test]
    public void NoOpcodeLiteralsOutsideTheTable()
    {
        var pattern = new Regex(@"case 0x[0-9a-fA-F]{1,2}\b|0x[0-9a-fA-F]{2}\s+(?:or|when)\b|Opcode\s*[!=]=\s*0x|new Instruction\(0x|\(byte\)0x[0-9a-fA-F]{2}\)");
        var found = new List<string>();
        foreach (string path in Directory.EnumerateFiles(Path.Combine(Paths.RepoRoot, "src"), "*.cs", SearchOption.AllDirectories))
        {
            string name = Path.GetFileName(path);
            if (name is "OpcodeTable.cs" or "OpCodes.cs" || path.Contains("/obj/", StringComparison.Ordinal)) continue;
            var lines = File.ReadAllLines(path);
            for (int i = 0; i < lines.Length; i++)
                if (pattern.IsMatch(lines[i])) found.Add($"{Path.GetRelativePath(Paths.RepoRoot, path)}:{i + 1}: {lines[i].Trim()}");
        }
        Assert.That(found, Is.Empty, "opcodes by number; name them from Op (src/Frontend/Asm/OpcodeTable.cs)");
    }
}
