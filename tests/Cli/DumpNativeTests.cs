using System.Runtime.InteropServices;
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
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).ToList();
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
}
