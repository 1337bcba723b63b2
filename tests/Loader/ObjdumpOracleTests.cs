using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Loader;

/// <summary>
/// Oracle: every function placed in every corpus program disassembles, instruction for instruction,
/// like <c>llvm-objdump -d -r</c> of the same object. Only syntax is normalised (labels, hex vs
/// decimal, helper names, relocated ld_imm64 and call operands); relocated operands are checked
/// separately: map references must name the relocation's symbol, and local calls must land on the
/// slot llvm-objdump's relocation or pc-relative offset designates.
/// </summary>
public partial class ObjdumpOracleTests
{
    /// <summary>One instruction as llvm-objdump prints it.</summary>
    sealed record ObjdumpInsn(int Slot, byte[] Bytes, string Text)
    {
        public string? RelocType { get; set; }
        public string? RelocSymbol { get; set; }
    }

    sealed class ObjdumpListing
    {
        public Dictionary<string, Dictionary<int, ObjdumpInsn>> Sections { get; } = [];
        // Function symbol name -> (section, slot), from the "0000000000000038 <hash_addr>:" headers.
        public Dictionary<string, (string Section, int Slot)> Labels { get; } = [];
    }

    static string? FindObjdump()
    {
        foreach (var name in new[] { "llvm-objdump", "llvm-objdump-14", "llvm-objdump-15", "llvm-objdump-16", "llvm-objdump-17", "llvm-objdump-18", "llvm-objdump-19" })
        {
            foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
            {
                string path = Path.Combine(dir, name);
                if (File.Exists(path)) return path;
            }
        }
        return null;
    }

    [GeneratedRegex(@"^\s*(\d+):\t((?:[0-9a-f]{2} ){7}[0-9a-f]{2}(?: (?:[0-9a-f]{2} ){7}[0-9a-f]{2})?)\t(.*)$")]
    private static partial Regex InsnLine();

    [GeneratedRegex(@"^\t\t[0-9a-f]+:  (R_BPF_\w+)\t(.*)$")]
    private static partial Regex RelocLine();

    [GeneratedRegex(@"^Disassembly of section (.*):$")]
    private static partial Regex SectionLine();

    [GeneratedRegex(@"^([0-9a-f]{16}) <(.*)>:$")]
    private static partial Regex LabelLine();

    static ObjdumpListing RunObjdump(string objdump, string obj)
    {
        var psi = new ProcessStartInfo(objdump, ["-d", "-r", obj]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var proc = Process.Start(psi)!;
        string output = proc.StandardOutput.ReadToEnd();
        string err = proc.StandardError.ReadToEnd();
        proc.WaitForExit();
        Assert.That(proc.ExitCode, Is.Zero, $"llvm-objdump failed: {err}");

        var listing = new ObjdumpListing();
        Dictionary<int, ObjdumpInsn>? current = null;
        string section = "";
        ObjdumpInsn? last = null;
        foreach (var line in output.Split('\n'))
        {
            Match m;
            if ((m = SectionLine().Match(line)).Success)
            {
                section = m.Groups[1].Value;
                current = listing.Sections[section] = [];
            }
            else if ((m = LabelLine().Match(line)).Success)
            {
                listing.Labels[m.Groups[2].Value] = (section, (int)(Convert.ToUInt64(m.Groups[1].Value, 16) / 8));
            }
            else if ((m = InsnLine().Match(line)).Success && current != null)
            {
                var bytes = m.Groups[2].Value.Split(' ').Select(b => Convert.ToByte(b, 16)).ToArray();
                last = new ObjdumpInsn(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), bytes, m.Groups[3].Value);
                current[last.Slot] = last;
            }
            else if ((m = RelocLine().Match(line)).Success && last != null)
            {
                last.RelocType = m.Groups[1].Value;
                last.RelocSymbol = m.Groups[2].Value;
            }
        }
        return listing;
    }

    [GeneratedRegex(@" <[^>]+>$")]
    private static partial Regex LabelSuffix();

    [GeneratedRegex(@"-?0x[0-9a-f]+")]
    private static partial Regex HexNumber();

    [GeneratedRegex(@"^call \S+#(\d+)$")]
    private static partial Regex NamedHelperCall();

    [GeneratedRegex(@"^(r\d+) = (-?\d+) ll$")]
    private static partial Regex LdImm64Constant();

    /// <summary>Normalises only syntax: labels, hex vs decimal, helper names, ld_imm64 constants as unsigned.</summary>
    static string Normalise(string text)
    {
        text = LabelSuffix().Replace(text.Trim(), "");
        text = HexNumber().Replace(text, h =>
        {
            bool neg = h.Value.StartsWith('-');
            ulong v = Convert.ToUInt64(h.Value[(neg ? 3 : 2)..], 16);
            return neg ? "-" + v.ToString(CultureInfo.InvariantCulture) : v.ToString(CultureInfo.InvariantCulture);
        });
        text = NamedHelperCall().Replace(text, "call $1");
        var c = LdImm64Constant().Match(text);
        if (c.Success)
            text = $"{c.Groups[1].Value} = {unchecked((ulong)long.Parse(c.Groups[2].Value, CultureInfo.InvariantCulture))} ll";
        return text;
    }

    static IEnumerable<string> Names() => Corpus.Names();

    [GeneratedRegex(@"^call pc([+-]\d+)$")]
    private static partial Regex LocalCall();

    [TestCaseSource(nameof(Names))]
    public void UnlinkedSectionsMatchLlvmObjdump(string name)
    {
        // Every slot of every executable section, before linking and relocation: the ELF reader and
        // decoder must see exactly what llvm-objdump sees (unused functions included).
        string? objdump = FindObjdump();
        if (objdump == null) Assert.Ignore("llvm-objdump is not installed; the oracle cannot run");
        string path = Corpus.ObjectPath(name);
        var listing = RunObjdump(objdump, path);
        var elf = ElfFile.Parse(File.ReadAllBytes(path), name);
        var code = elf.Sections.Where(sec => sec.IsExecutable && sec.Size > 0).ToList();
        Assert.That(code.Select(sec => sec.Name), Is.EquivalentTo(listing.Sections.Keys), "the same executable sections");
        int compared = 0;
        foreach (var section in code)
        {
            var slots = Decoder.Decode(elf.Data(section));
            var expected = listing.Sections[section.Name];
            for (int i = 0; i < slots.Length; i++)
            {
                Assert.That(expected.TryGetValue(i, out var e), $"{section.Name}: slot {i} missing from llvm-objdump");
                Assert.That(Encoder.Encode(slots.AsSpan(i, slots[i].IsLdImm64 ? 2 : 1)), Is.EqualTo(e!.Bytes), $"{section.Name}: slot {i} bytes");
                string mine = LocalCall().Replace(Normalise(Disassembler.Format(slots, i)), m => "call " + m.Groups[1].Value.TrimStart('+'));
                Assert.That(mine, Is.EqualTo(Normalise(e.Text)), $"{name}: {section.Name}: slot {i}");
                compared++;
                if (slots[i].IsLdImm64) i++;
            }
            Assert.That(expected.Keys.Max(), Is.LessThan(slots.Length), $"{section.Name}: llvm-objdump shows more slots");
        }
        Assert.That(compared, Is.GreaterThan(0));
    }

    [TestCaseSource(nameof(Names))]
    public void DisassemblyMatchesLlvmObjdump(string name) => CheckLinkedPrograms(Corpus.ObjectPath(name));

    /// <summary>The linked-program oracle for one object; also used on a freshly rebuilt corpus.</summary>
    internal static void CheckLinkedPrograms(string path)
    {
        string? objdump = FindObjdump();
        if (objdump == null) Assert.Ignore("llvm-objdump is not installed; the oracle cannot run");
        string name = Path.GetFileNameWithoutExtension(path);
        var listing = RunObjdump(objdump, path);
        var spec = ObjectFile.Load(path);
        Assert.That(spec.Programs, Is.Not.Empty);

        int compared = 0;
        foreach (var prog in spec.Programs)
        {
            var refs = prog.MapReferences.ToDictionary(r => r.InstructionIndex);
            foreach (var fn in prog.Functions)
            {
                Assert.That(listing.Sections.TryGetValue(fn.SectionName, out var insns), $"llvm-objdump shows no section {fn.SectionName}");
                for (int k = 0; k < fn.Length; k++)
                {
                    int at = fn.InstructionIndex + k;
                    var mine = prog.Instructions[at];
                    string where = $"{name}: program {prog.Name}: {fn.Name}+{k} ({fn.SectionName} slot {fn.SectionOffset + k})";
                    Assert.That(insns!.TryGetValue(fn.SectionOffset + k, out var expected), $"{where}: llvm-objdump has no instruction here");
                    Assert.That(Instruction.Read(expected!.Bytes).Opcode, Is.EqualTo(mine.Opcode), where);
                    string mineText = Normalise(Disassembler.Format(prog.Instructions, at));
                    string expectedText = Normalise(expected.Text);

                    if (mine.IsLdImm64 && expected.RelocType != null)
                    {
                        Assert.That(expected.RelocType, Is.EqualTo("R_BPF_64_64"), where);
                        if (mine.Src == (byte)Ld64Source.Func)
                        {
                            Assert.That(prog.Functions.Any(f => f.InstructionIndex == at + 1 + mine.Imm), $"{where}: function address does not start a function");
                        }
                        else
                        {
                            Assert.That(refs.TryGetValue(at, out var r), $"{where}: relocated ld_imm64 has no map reference");
                            Assert.That(r!.SymbolName, Is.EqualTo(expected.RelocSymbol), where);
                            Assert.That(mine.Src, Is.EqualTo((byte)(r.Kind == MapReferenceKind.Map ? Ld64Source.MapIdx : Ld64Source.MapIdxValue)), where);
                            Assert.That(spec.Maps[mine.Imm].Name, Is.EqualTo(r.MapName), where);
                        }
                        mineText = Regex.Replace(mineText, @"= .* ll$", "= <reloc> ll");
                        expectedText = Regex.Replace(expectedText, @"= .* ll$", "= <reloc> ll");
                    }
                    else if (mine.IsCall && mine.Src == (byte)CallKind.Local)
                    {
                        // Where llvm-objdump's call lands: the relocation's symbol + imm + 1, or pc-relative.
                        var raw = Instruction.Read(expected.Bytes);
                        (string Section, int Slot) target = expected.RelocSymbol == null
                            ? (fn.SectionName, fn.SectionOffset + k + 1 + raw.Imm)
                            : listing.Sections.ContainsKey(expected.RelocSymbol)
                                ? (expected.RelocSymbol, raw.Imm + 1)
                                : (listing.Labels[expected.RelocSymbol].Section, listing.Labels[expected.RelocSymbol].Slot + raw.Imm + 1);
                        int landed = at + 1 + mine.Imm;
                        var callee = prog.Functions.Single(f => landed >= f.InstructionIndex && landed < f.InstructionIndex + f.Length);
                        Assert.That((callee.SectionName, callee.SectionOffset + landed - callee.InstructionIndex), Is.EqualTo(target), $"{where}: call lands elsewhere");
                        mineText = expectedText = "call <local>";
                    }
                    Assert.That(mineText, Is.EqualTo(expectedText), where);
                    compared++;
                    if (mine.IsLdImm64) k++;
                }
            }
        }
        TestContext.Out.WriteLine($"{name}: {compared} instructions agree with llvm-objdump");
        Assert.That(compared, Is.GreaterThan(0));
    }
}
