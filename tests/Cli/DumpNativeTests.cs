using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using BpfJit.Cli.Output;
using BpfJit.Frontend;
using BpfJit.IlEmitter;
using static BpfJit.Tests.Cli.CliHarness;

namespace BpfJit.Tests.Cli;

/// <summary><c>dump --native</c>: RyuJIT's machine code for the compiled program, disassembled.</summary>
public class DumpNativeTests
{
    static void RequireX64()
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64) Assert.Ignore($"--native disassembles x86-64; this is {RuntimeInformation.ProcessArchitecture}");
    }

    [Test]
    public void TheMethodIsReadToItsLastInstruction()
    {
        RequireX64();
        // r0 = r1 + 7: a method of a few instructions that ends in ret.
        var compiled = JitCompiler.Compile(Assembler.Assemble("mov %r0, %r1\nadd %r0, 7\nexit"), BpfJit.Runtime.HelperTable.Bench(), JitOptions.Default);
        Assert.That(compiled.Run(35), Is.EqualTo(42UL));
        var (address, code) = NativeListing.Read(compiled);
        Assert.That(address, Is.Not.EqualTo(0));
        string listing = NativeListing.Format(0, code);
        var lines = listing.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines[^1], Does.Contain("ret"), listing);
        Assert.That(listing, Does.Contain("add").Or.Contain("lea"), "the addition is in the code\n" + listing);
        Assert.That(code.Length, Is.LessThan(512), listing);
    }

    [Test]
    public void EveryBranchTargetIsInsideTheListing()
    {
        RequireX64();
        var (code, output, err) = Run("dump", Repo("tests", "programs", "redir_port.o"), "--native");
        Assert.That(code, Is.EqualTo(0), err);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith(';')).ToList();
        Assert.That(output, Does.StartWith("; native code of redir_port: "));
        var offsets = lines.Select(l => Convert.ToInt32(l[..4], 16)).ToHashSet();
        // Branches within the method are written as offsets from its start (the listing is based at 0).
        foreach (var l in lines.Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"\s(j[a-z]+)\s+(short )?[0-9A-F]+h$")))
        {
            int target = Convert.ToInt32(System.Text.RegularExpressions.Regex.Match(l, @"([0-9A-F]+)h$").Groups[1].Value, 16);
            Assert.That(offsets, Does.Contain(target), $"{l}\n{output}");
        }
    }

    [Test]
    public void JsonCarriesTheListing()
    {
        RequireX64();
        var json = Json("dump", Repo("examples", "asm", "ipv4_in_subnet.data"), "--native");
        var native = json.GetProperty("native");
        Assert.That(native.GetProperty("arch").GetString(), Is.EqualTo("x86-64"));
        Assert.That(native.GetProperty("bytes").GetInt32(), Is.GreaterThan(0));
        Assert.That(native.GetProperty("listing")[0].GetString(), Does.StartWith("0000: "));
    }

    static List<string> Lines(string text) => [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r'))];

    [TestCase("redir_port.o")]
    [TestCase("subprog_calls.o")]   // a bpf-to-bpf call's shared return is a jump table: the extent comes from the runtime
    [TestCase("bounded_loop.o")]
    public void TheListingIsInterleavedWithTheSlotsOfTheIlListing(string file)
    {
        RequireX64();
        var (code, output, err) = Run("dump", Repo("tests", "programs", file), "--native", "--il");
        Assert.That(code, Is.EqualTo(0), err);
        var lines = Lines(output);
        Assert.That(lines[1], Does.StartWith("; eBPF slots from the IL-to-native map of the same IL compiled as an ordinary method (the same "), output);
        var native = lines.Skip(2).TakeWhile(l => !l.StartsWith("//", StringComparison.Ordinal)).ToList();
        var il = lines.SkipWhile(l => !l.StartsWith("//", StringComparison.Ordinal)).ToList();
        Assert.That(native[0], Does.StartWith("; "), "every instruction is under a header");
        var offsets = native.Where(l => !l.StartsWith(';')).Select(NativeSlotMap.Offset).ToList();
        Assert.That(offsets, Is.Ordered.Ascending.And.Unique);
        // A slot's line is the IL listing's line for that slot.
        var ilHeaders = il.Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^; \d+: ")).ToHashSet();
        var slotHeaders = native.Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^; \d+: ")).ToList();
        Assert.That(slotHeaders, Is.Not.Empty);
        Assert.That(slotHeaders.Except(ilHeaders), Is.Empty);
        Assert.That(native.Where(l => l.StartsWith(';')).Except(slotHeaders).Distinct(), Is.SubsetOf(new[]
        {
            "; prologue", "; return from a bpf-to-bpf call (shared by every exit)", "; prolog (RyuJIT's frame setup)",
            "; epilog (RyuJIT's frame teardown)", "; no IL offset (code RyuJIT did not attribute)",
        }));
        // The listing runs to the method's end: its last instruction ends at the size the first line gives.
        string last = native.Last(l => !l.StartsWith(';'));
        int size = int.Parse(System.Text.RegularExpressions.Regex.Match(lines[0], @": (\d+) bytes of x86-64").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(NativeSlotMap.Offset(last) + last.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1].Length / 2, Is.EqualTo(size), last);
    }

    [Test]
    public void JsonGivesEachInstructionItsSlotsAndEverySlotWithCodeAppears()
    {
        RequireX64();
        var json = Json("dump", Repo("tests", "programs", "redir_port.o"), "--native", "--il");
        var native = json.GetProperty("native");
        Assert.That(native.GetProperty("interleaved").GetBoolean(), Is.True, native.GetProperty("note").GetString());
        var listing = native.GetProperty("listing").EnumerateArray().Select(l => NativeSlotMap.Offset(l.GetString()!)).ToList();
        var instructions = native.GetProperty("instructions").EnumerateArray().ToList();
        Assert.That(instructions.Select(i => i.GetProperty("offset").GetInt32()), Is.EqualTo(listing));
        foreach (var i in instructions)
            Assert.That(i.GetProperty("slots").GetArrayLength() > 0 || i.TryGetProperty("part", out _), Is.True, i.ToString());
        var listed = instructions.SelectMany(i => i.GetProperty("slots").EnumerateArray().Select(s => s.GetInt32())).ToHashSet();
        // Every slot that emitted IL appears, from the first whose IL RyuJIT names on (r7 = r1 before it folds into
        // registers, code of no IL offset of its own).
        var withIl = json.GetProperty("il").GetProperty("blocks").EnumerateArray()
            .Where(b => b.GetProperty("slot").ValueKind == JsonValueKind.Number && b.GetProperty("il").EnumerateArray().Any(l => l.GetString()!.StartsWith("IL_", StringComparison.Ordinal)))
            .Select(b => b.GetProperty("slot").GetInt32()).ToList();
        int first = withIl.FindIndex(listed.Contains);
        Assert.That(first, Is.GreaterThanOrEqualTo(0).And.LessThan(4));
        Assert.That(withIl.Skip(first).Where(s => !listed.Contains(s)), Is.Empty);
    }

    [Test]
    public void WithoutTheDiagnosticsIpcTheListingSaysWhyItIsNotInterleaved()
    {
        RequireX64();
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "bpfjit.dll"), "dump", Repo("tests", "programs", "redir_port.o"), "--native" })
            psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_EnableDiagnostics"] = "0";
        using var process = Process.Start(psi)!;
        string output = process.StandardOutput.ReadToEnd();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.That(process.ExitCode, Is.EqualTo(0), error);
        var lines = Lines(output);
        Assert.That(lines[1], Is.EqualTo("; not interleaved with the eBPF slots: no EventPipe session: DOTNET_EnableDiagnostics=0 turns off the diagnostics IPC"));
        Assert.That(lines.Skip(2).All(l => !l.StartsWith(';')), Is.True, output);
        Assert.That(lines[2], Does.StartWith("0000: "));
    }
}
