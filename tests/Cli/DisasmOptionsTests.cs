using System.Globalization;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;

namespace BpfJit.Tests.Cli;

/// <summary><c>disasm --opcodes</c> and <c>--linum</c>: the bytes shown are the slots' encoding, the locations are BTF's.</summary>
public class DisasmOptionsTests
{
    static string Object => CliHarness.Repo("tests", "programs", "redir_port.o");

    [Test]
    public void OpcodesAreTheSlotsBytes()
    {
        var (code, output, err) = CliHarness.Run("disasm", Object, "--opcodes");
        Assert.That(code, Is.EqualTo(0), err);
        var lines = output.ReplaceLineEndings("\n").Split('\n');
        var bytes = new List<byte>();
        for (int i = 0; i < lines.Length - 1; i++)
            if (System.Text.RegularExpressions.Regex.IsMatch(lines[i], @"^\s+\d+: ") && lines[i + 1].StartsWith("       ", StringComparison.Ordinal))
                bytes.AddRange(lines[i + 1].Trim().Split(' ').Select(h => byte.Parse(h, NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
        var program = ObjectFile.Load(Object).Programs.Single();
        Assert.That(bytes.ToArray(), Is.EqualTo(Encoder.Encode(program.Instructions)), "every slot's bytes, in order, ld_imm64 as 16");
    }

    [Test]
    public void LinumNamesFileAndLineOfEachLineInfo()
    {
        var program = ObjectFile.Load(Object).Programs.Single();
        var (code, output, err) = CliHarness.Run("disasm", Object, "--linum");
        Assert.That(code, Is.EqualTo(0), err);
        var shown = output.ReplaceLineEndings("\n").Split('\n').Where(l => l.StartsWith("; @ ", StringComparison.Ordinal)).ToList();
        Assert.That(shown, Is.Not.Empty);
        foreach (var info in program.LineInfos.DistinctBy(l => (l.FileName, l.LineNumber)))
            Assert.That(shown, Does.Contain($"; @ {Path.GetFileName(info.FileName)}:{info.LineNumber}"));

        var (_, both, _) = CliHarness.Run("disasm", Object, "--source", "--linum");
        Assert.That(both, Does.Contain("; if (ctx->local_port != DST_PORT) @ redir_port.c:21"));
    }

    [Test]
    public void JsonCarriesFileLineAndOpcodes()
    {
        var json = CliHarness.Json("disasm", Object);
        var first = json.GetProperty("programs")[0].GetProperty("instructions")[0];
        Assert.That(first.GetProperty("opcodes").GetString(), Is.EqualTo("bf 17 00 00 00 00 00 00"));
        Assert.That(first.GetProperty("file").GetString(), Does.EndWith("redir_port.c"));
        Assert.That(first.GetProperty("line").GetInt32(), Is.EqualTo(15));
    }
}
